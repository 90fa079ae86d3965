"""What keeps the assessment app's launch cheap to abuse: it is reachable without signing in.

``LaunchLimiter``: launches per client address per minute (past it, 429 with Retry-After), so
that a flood of launches neither fills the session table nor makes the service a relay of
discovery requests to the EHR. ``DiscoveryCache``: one ``.well-known/smart-configuration``
read per FHIR server at a time (other launches meanwhile are refused, not queued), its answer
(or its failure) kept a while, each read under a total deadline (``smart.discover``). Both
per worker, in memory: a bound, not an account.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from review_app.smart import LaunchError, SmartConfiguration

MAX_ADDRESSES = 4096  # addresses remembered per worker; beyond, the quiet ones are forgotten


class LaunchLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("REVIEW_APP_LAUNCHES_PER_MINUTE must be 1 or more")
        self.per_minute, self._clock = per_minute, clock
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def refuse(self, address: str) -> int | None:
        """Seconds until ``address`` may launch again, or None (and the launch is counted)."""
        now = self._clock()
        with self._lock:
            if len(self._seen) >= MAX_ADDRESSES:
                self._seen = {a: s for a, s in self._seen.items() if s and s[-1] > now - 60}
            stamps = self._seen.setdefault(address, deque())
            while stamps and stamps[0] <= now - 60:
                stamps.popleft()
            if len(stamps) >= self.per_minute:
                return max(1, round(stamps[0] + 60 - now))
            stamps.append(now)
            return None


@dataclass(frozen=True)
class _Kept:
    config: SmartConfiguration | None
    failure: str | None
    until: float


class DiscoveryCache:
    """A FHIR server's SMART configuration for ``ttl_s`` seconds (a failure for
    ``failed_ttl_s``); concurrent launches for one server wait for one read."""

    def __init__(
        self, ttl_s: float, failed_ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s, self.failed_ttl_s, self._clock = ttl_s, failed_ttl_s, clock
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}
        self._reading: dict[str, threading.Lock] = {}

    def get(self, base: str, read: Callable[[], SmartConfiguration]) -> SmartConfiguration:
        """The configuration of ``base``, read with ``read`` when not kept; LaunchError as
        ``read`` raised it (kept too, so a failing server is not asked again at once), or
        when another launch is reading it now: launches do not queue behind a slow server,
        each holding a thread the probes need."""
        kept = self._fresh(base)
        if kept is None:
            with self._lock:
                one_read = self._reading.setdefault(base, threading.Lock())
            if not one_read.acquire(blocking=False):
                raise LaunchError(
                    "the FHIR server's SMART configuration is being read; launch again in a moment"
                )
            try:
                kept = self._fresh(base) or self._read(base, read)
            finally:
                one_read.release()
        if kept.config is None:
            raise LaunchError(kept.failure or "the FHIR server's SMART configuration failed")
        return kept.config

    def _fresh(self, base: str) -> _Kept | None:
        with self._lock:
            kept = self._kept.get(base)
        return kept if kept is not None and kept.until > self._clock() else None

    def _read(self, base: str, read: Callable[[], SmartConfiguration]) -> _Kept:
        try:
            kept = _Kept(read(), None, self._clock() + self.ttl_s)
        except LaunchError as exc:
            kept = _Kept(None, str(exc), self._clock() + self.failed_ttl_s)
        with self._lock:
            if len(self._kept) >= MAX_ADDRESSES:  # bases are tenants' servers: few
                self._kept.clear()
            self._kept[base] = kept
        return kept
