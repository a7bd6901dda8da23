"""Stopping a benchmark so that it cleans up after itself.

A benchmark's scratch store (a ``bench_*`` schema on PostgreSQL, a temporary folder of
SQLite files and blobs) is removed by the ``finally`` blocks and context managers that made
it, which run only if the run unwinds. Python unwinds on SIGINT as ``KeyboardInterrupt``,
but a shell without job control starts a command put in the background (``cmd &``) with
SIGINT ignored, and SIGTERM ends a process without unwinding at all. :func:`run` makes
both unwind, so ``kill PID`` (or Ctrl-C) stops a long run without leaving its store
behind.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn


def _unwind(signum: int, _frame: FrameType | None) -> NoReturn:
    print(f"stopped by {signal.Signals(signum).name}: cleaning up", file=sys.stderr)
    raise SystemExit(128 + signum)


def run(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's ``main``, SIGINT and SIGTERM unwinding it; exit with its status."""
    signal.signal(signal.SIGINT, _unwind)
    signal.signal(signal.SIGTERM, _unwind)
    raise SystemExit(main())
