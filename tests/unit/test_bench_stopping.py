"""A benchmark stopped by a signal unwinds, so that it removes its scratch store."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A stand-in benchmark: it makes a scratch folder that only its unwinding removes, says
# where, and waits to be stopped.
BENCH = """
import sys, tempfile, time
from bench import stopping

def main() -> int:
    with tempfile.TemporaryDirectory(dir=sys.argv[1]) as scratch:
        print(scratch, flush=True)
        time.sleep(60)
    return 0

stopping.run(main)
"""


def _started(tmp_path: Path, ignore_sigint: bool) -> tuple[subprocess.Popen[str], Path]:
    def as_a_background_job() -> None:
        # What a shell without job control does to a command put in the background.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_a_background_job if ignore_sigint else None,  # noqa: PLW1509
    )
    assert bench.stdout is not None
    scratch = Path(bench.stdout.readline().strip())
    assert scratch.is_dir()
    return bench, scratch


@pytest.mark.parametrize(
    ("signum", "ignore_sigint"),
    [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGINT, False)],
    ids=["SIGTERM", "SIGINT-in-background", "SIGINT"],
)
def test_a_signal_unwinds_the_run_and_its_scratch_goes(
    tmp_path: Path, signum: signal.Signals, ignore_sigint: bool
) -> None:
    bench, scratch = _started(tmp_path, ignore_sigint)
    bench.send_signal(signum)
    _, stderr = bench.communicate(timeout=30)
    assert bench.returncode == 128 + signum
    assert not scratch.exists()
    assert f"stopped by {signum.name}: cleaning up" in stderr
