"""Document-encryption benchmark: streaming envelope vs one-shot AES-GCM, and streaming memory.

What is measured
----------------
1. Throughput (MB/s, 1 MB = 10^6 bytes of plaintext per second) of
   ``keys.envelope.seal_document`` and ``keys.envelope.open_document`` on a 1 MiB and a
   64 MiB document of random bytes, beside one-shot
   ``AESGCM(key).encrypt(nonce, data, aad)`` / ``.decrypt`` on the same bytes in the same run.
   The inputs follow the path the vault really takes:

   * seal is fed an iterable of 1 MiB ``bytes`` pieces, as ``Documents._seal_and_store`` does
     (it reads uploads 1 MiB at a time and passes them on through a generator);
   * open is fed the sealed bytes as an iterable of 256 KiB pieces, as the local and S3 blob
     stores' ``get`` yield them (``READ_BYTES``, 1 MiB), i.e. not aligned to sealed chunks.

   The pieces are cut before the clock starts; the output iterators are consumed without
   storing the output (a blob store or an HTTP response would write each chunk out).
   Each figure is the best of several repetitions; a 1 MiB repetition loops enough times to
   last a few tens of milliseconds. Goal: ours / one-shot >= 0.8 per size and direction.

2. Memory: a large document (1 GiB; 64 MiB with ``--quick``) is streamed through seal and
   straight into open (seal's output iterator is open's input), with plaintext generated
   lazily in 1 MiB pieces (cycling through 16 pre-made random pieces) and the output counted
   and dropped. Peak RSS growth over the RSS just before the pass is sampled every ~10 ms with
   psutil in a background thread; the growth of ``ru_maxrss`` (the process's high-water mark,
   read just before and after) is shown beside it. This part runs first, in a fresh process
   state, so that the throughput part's large buffers cannot raise the high-water mark
   beforehand; its results are printed last. Goal: growth < 64 MiB. The MB/s of the pass
   (plaintext bytes / wall time for seal + open together) is printed too.

Run from the project root::

    .venv/bin/python -m bench.crypto            # full: 1 MiB and 64 MiB, 1 GiB streamed
    .venv/bin/python -m bench.crypto --quick    # smoke test, well under 30 s
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.blobs_local import READ_BYTES
from bench import stopping
from bench.tables import print_table
from keys.envelope import CHUNK_BYTES, new_document_key, open_document, seal_document

MiB = 1024 * 1024
MB = 1_000_000
GOAL_RATIO = 0.8
GOAL_GROWTH_MIB = 64.0
SEAL_PIECE = MiB  # Documents._seal_and_store reads uploads 1 MiB at a time
OPEN_PIECE = READ_BYTES  # what the blob stores' get() yields
MIN_REP_SECONDS = 0.05
DOCUMENT_ID = "6f1c2d9e-8a4b-4c1e-9d3f-2b7a5e0c1d42"
RESIDENT_ID = "resident-000042"


@dataclass(frozen=True)
class Throughput:
    size: int
    direction: str
    ours: float  # MB/s
    baseline: float  # MB/s
    chunked: float  # MB/s of bare AESGCM calls, one per chunk: the cost of chunking itself

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


@dataclass(frozen=True)
class StreamResult:
    size: int
    seconds: float
    bytes_out: int
    rss_before: int
    rss_peak: int
    maxrss_before: int
    maxrss_after: int
    samples: int

    @property
    def growth_mib(self) -> float:
        return (self.rss_peak - self.rss_before) / MiB

    @property
    def maxrss_growth_mib(self) -> float:
        return max(0, self.maxrss_after - self.maxrss_before) / MiB


def split(data: bytes, piece: int) -> list[bytes]:
    return [data[i : i + piece] for i in range(0, len(data), piece)]


def drain(chunks: Iterable[bytes]) -> int:
    total = 0
    for chunk in chunks:
        total += len(chunk)
    return total


def seal(key: bytes, source: Iterable[bytes], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    return seal_document(
        key, source, document_id=DOCUMENT_ID, resident_id=RESIDENT_ID, chunk_bytes=chunk_bytes
    )


def unseal(key: bytes, sealed: Iterable[bytes]) -> Iterator[bytes]:
    return open_document(key, sealed, document_id=DOCUMENT_ID, resident_id=RESIDENT_ID)


def best_rate(run: Callable[[], object], nbytes: int, reps: int) -> float:
    """Best MB/s over ``reps`` repetitions; small inputs loop so a repetition is measurable."""
    start = time.perf_counter()
    run()  # warm-up, also sizes the inner loop
    once = max(time.perf_counter() - start, 1e-9)
    loops = max(1, int(MIN_REP_SECONDS / once))
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(loops):
            run()
        best = min(best, (time.perf_counter() - start) / loops)
    return nbytes / best / MB


def measure_size(size: int, reps: int, chunk_bytes: int) -> list[Throughput]:
    data = os.urandom(size)
    key = new_document_key()
    plain_pieces = split(data, SEAL_PIECE)
    sealed = b"".join(seal(key, plain_pieces, chunk_bytes))
    sealed_pieces = split(sealed, OPEN_PIECE)
    del sealed

    aead = AESGCM(key)
    nonce = os.urandom(12)
    aad = (DOCUMENT_ID + RESIDENT_ID).encode()
    one_shot = aead.encrypt(nonce, data, aad)

    view = memoryview(data)
    chunk_starts = range(0, size, chunk_bytes)
    sealed_chunks = [aead.encrypt(nonce, view[i : i + chunk_bytes], aad) for i in chunk_starts]

    seal_ours = best_rate(lambda: drain(seal(key, plain_pieces, chunk_bytes)), size, reps)
    seal_base = best_rate(lambda: aead.encrypt(nonce, data, aad), size, reps)
    seal_bare = best_rate(
        lambda: [aead.encrypt(nonce, view[i : i + chunk_bytes], aad) for i in chunk_starts],
        size,
        reps,
    )
    open_ours = best_rate(lambda: drain(unseal(key, sealed_pieces)), size, reps)
    open_base = best_rate(lambda: aead.decrypt(nonce, one_shot, aad), size, reps)
    open_bare = best_rate(lambda: [aead.decrypt(nonce, c, aad) for c in sealed_chunks], size, reps)
    return [
        Throughput(size, "seal", seal_ours, seal_base, seal_bare),
        Throughput(size, "open", open_ours, open_base, open_bare),
    ]


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds in a daemon thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = self._process.memory_info().rss
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def lazy_plaintext(size: int, blocks: list[bytes]) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB pieces, cycling through pre-made random blocks."""
    remaining = size
    for block in itertools.cycle(blocks):
        if remaining <= 0:
            return
        piece = block if remaining >= len(block) else block[:remaining]
        remaining -= len(piece)
        yield piece


def maxrss_bytes() -> int:
    kib_or_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib_or_bytes if sys.platform == "darwin" else kib_or_bytes * 1024


def measure_stream(size: int) -> StreamResult:
    key = new_document_key()
    blocks = [os.urandom(SEAL_PIECE) for _ in range(16)]
    rss_before = psutil.Process().memory_info().rss
    maxrss_before = maxrss_bytes()
    with RssSampler() as sampler:
        start = time.perf_counter()
        sealed = seal(key, lazy_plaintext(size, blocks))
        bytes_out = drain(unseal(key, sealed))
        seconds = time.perf_counter() - start
    return StreamResult(
        size=size,
        seconds=seconds,
        bytes_out=bytes_out,
        rss_before=rss_before,
        rss_peak=sampler.peak,
        maxrss_before=maxrss_before,
        maxrss_after=maxrss_bytes(),
        samples=sampler.samples,
    )


def human(size: int) -> str:
    return f"{size // (1024 * MiB)} GiB" if size >= 1024 * MiB else f"{size // MiB} MiB"


def report_throughput(results: list[Throughput], chunk_kib: int) -> bool:
    print(
        f"Throughput (MB/s = 10^6 plaintext bytes/s, best of repetitions); goal: "
        f"ours/one-shot >= {GOAL_RATIO}"
    )
    print(
        f"  ours: seal fed {SEAL_PIECE // 1024} KiB pieces, open fed {OPEN_PIECE // 1024} KiB "
        f"pieces, {chunk_kib} KiB sealed chunks; baseline: one AESGCM call"
    )
    print()
    rows = [
        [
            human(r.size),
            r.direction,
            f"{r.ours:,.0f}",
            f"{r.baseline:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.chunked / r.baseline:.2f}",
            f">= {GOAL_RATIO}",
            "yes" if r.ratio >= GOAL_RATIO else "no",
        ]
        for r in results
    ]
    print_table(
        ["size", "dir", "ours MB/s", "one-shot MB/s", "ratio", "bare-chunk ratio", "goal", "met"],
        rows,
    )
    print(
        f"  bare-chunk ratio: one AESGCM call per {chunk_kib} KiB chunk, no framing, over"
        " one-shot: the ceiling for any stream chunked that way through this library"
    )
    met = all(r.ratio >= GOAL_RATIO for r in results)
    print(f"goal met: {'yes' if met else 'no'}")
    return met


def report_stream(result: StreamResult) -> bool:
    print(
        f"Streaming seal -> open of {human(result.size)} (lazy 1 MiB plaintext pieces, "
        "sealed output chained straight into open)"
    )
    print()
    rows = [
        [
            "peak RSS growth (psutil, ~10 ms samples)",
            f"{result.growth_mib:.1f} MiB",
            f"< {GOAL_GROWTH_MIB:.0f} MiB",
        ],
        [
            "ru_maxrss growth (high-water mark)",
            f"{result.maxrss_growth_mib:.1f} MiB",
            f"< {GOAL_GROWTH_MIB:.0f} MiB",
        ],
        [
            "throughput, seal + open together",
            f"{result.size / result.seconds / MB:,.0f} MB/s",
            "-",
        ],
    ]
    print_table(["measure", "value", "goal"], rows)
    print(
        f"  RSS before {result.rss_before / MiB:.1f} MiB, peak {result.rss_peak / MiB:.1f} MiB "
        f"({result.samples} samples); {result.bytes_out:,} bytes out of "
        f"{result.size:,} in {result.seconds:.2f} s"
    )
    met = result.growth_mib < GOAL_GROWTH_MIB and result.maxrss_growth_mib < GOAL_GROWTH_MIB
    print(f"goal met: {'yes' if met else 'no'}")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--reps", type=int, help="repetitions per measurement (best is kept)")
    parser.add_argument(
        "--chunk-kib",
        type=int,
        default=CHUNK_BYTES // 1024,
        help=f"sealed chunk size to measure (default: the vault's {CHUNK_BYTES // 1024} KiB)",
    )
    args = parser.parse_args(argv)
    reps: int = args.reps or (2 if args.quick else 7)
    stream_size = 64 * MiB if args.quick else 1024 * MiB

    print(
        f"civicvault crypto benchmark — Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, reps={reps}"
        f"{' (quick)' if args.quick else ''}"
    )
    print(
        f"(streaming {human(stream_size)} first for a clean memory high-water mark...)",
        file=sys.stderr,
    )
    stream = measure_stream(stream_size)
    results: list[Throughput] = []
    for size in (MiB, 64 * MiB):
        results += measure_size(size, reps, args.chunk_kib * 1024)
    print()
    report_throughput(results, args.chunk_kib)
    print()
    report_stream(stream)
    return 0


if __name__ == "__main__":
    stopping.run(main)
