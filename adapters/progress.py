"""Progress for long work on the command line: count, rate and time left, on stderr."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Redraws one line on a terminal; elsewhere prints a line every few seconds."""

    def __init__(
        self, label: str, *, stream: TextIO, total: int | None = None, every: float = 0.2
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every if self.tty else 5.0
        self.started = time.monotonic()
        self.last_drawn = self.started
        self.count = 0

    def update(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        if now - self.last_drawn >= self.every:
            self.last_drawn = now
            self._draw(now)

    def done(self) -> None:
        self._draw(time.monotonic())
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        text = f"{self.label}: {self.count}"
        if self.total is not None:
            text += f"/{self.total}"
        text += f" ({rate:,.0f}/s"
        if self.total is not None and rate > 0:
            text += f", {max(self.total - self.count, 0) / rate:,.0f}s left"
        return text + ")"

    def _draw(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r" + self.line(now))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()
