"""Progress lines on stderr for long operations: redrawn in place on a terminal, one line
every few seconds otherwise (logs, CI). Never shows patient identifiers, only counts."""

from __future__ import annotations

import time
from typing import TextIO


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    def __init__(
        self,
        stream: TextIO,
        label: str,
        total: int | None = None,
        unit: str = "",
        every_s: float | None = None,
    ) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        self.unit = unit
        self.tty = _isatty(stream)
        self.every_s = every_s if every_s is not None else (0.2 if self.tty else 5.0)
        self.started = time.perf_counter()
        self._last = 0.0
        self._shown: int | None = None
        self.count = 0

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        of = f" / {self.total:,}" if self.total is not None else ""
        pct = f" ({100 * self.count / self.total:.0f}%)" if self.total else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label}: {self.count:,}{of}{unit}{pct}, {elapsed:.1f} s, {rate:,.0f}/s"

    def update(self, count: int) -> None:
        self.count = count
        now = time.perf_counter()
        if now - self._last < self.every_s:
            return
        self._last = now
        self._shown = count
        if self.tty:
            self.stream.write("\r" + self._line() + "\x1b[K")
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def done(self, count: int | None = None) -> float:
        """Print the final line; return the elapsed seconds."""
        if count is not None:
            self.count = count
        if not self.tty and self._shown == self.count:
            return time.perf_counter() - self.started  # that line is already on screen
        self.stream.write(
            ("\r" if self.tty else "") + self._line() + ("\x1b[K\n" if self.tty else "\n")
        )
        self.stream.flush()
        return time.perf_counter() - self.started
