"""A circuit breaker per tenant × FHIR origin: a server that stops answering is left alone.

The bulkheads (``service.admission``, ``fhirdata.transport``) bound what one slow server can
hold, but each hook for it still holds a slot until the deadline; two or three such servers
together can hold every slot of a worker. After ``failures`` reads of one origin in a row end
without an answer (the deadline passed, or it could not be reached), the breaker opens: hooks
that would read from that origin are answered at once (412) for ``cool_off_s``. Then one hook
is let through as a trial (half-open): an answer closes the breaker, another failure opens it
for a further ``cool_off_s``. Per worker: each process learns for itself, at the cost of
``failures`` slow hooks per worker, and nothing is shared that could go stale.

pybreaker (the usual Python library) holds one lock for the whole guarded call, which would
make the hooks for a healthy server wait for each other; hence this small state machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fhirdata.transport import DEPLOYMENT, MAX_ORIGIN_POOLS, BulkheadKey, TenantKey, bulkhead_of


class FhirNotAnswering(Exception):
    """The breaker of this FHIR server is open: no request is sent to it now."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "the FHIR server has not been answering; no request is sent to it for "
            f"{retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Pass:
    """Leave to read from the origin; ``trial`` when it is the half-open breaker's one try."""

    breaker: Breaker
    trial: bool = False


class Breaker:
    def __init__(
        self, failures: int, cool_off_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures, self.cool_off_s, self._clock = failures, cool_off_s, clock
        self._lock = threading.Lock()
        self._count = 0  # reads in a row that got no answer
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._trial_out or self._clock() >= self._opened_at + self.cool_off_s:
                return "half-open"
            return "open"

    def refusing(self) -> int | None:
        """Seconds until a read may be tried again, or None when one may go now."""
        with self._lock:
            return self._refusing()

    def _refusing(self) -> int | None:
        if self._opened_at is None or self.failures <= 0:
            return None
        wait_s = self._opened_at + self.cool_off_s - self._clock()
        if wait_s > 0:
            return max(1, round(wait_s))
        return 1 if self._trial_out else None

    def admit(self) -> Pass:
        """A pass to read, or FhirNotAnswering while open (or while the trial is out)."""
        with self._lock:
            wait_s = self._refusing()
            if wait_s is not None:
                raise FhirNotAnswering(wait_s)
            if self._opened_at is None or self.failures <= 0:
                return Pass(self)
            self._trial_out = True
            return Pass(self, trial=True)

    def record(self, granted: Pass, answered: bool | None) -> None:
        """How the read under ``granted`` ended: True when the server answered (whatever it
        said), False when it did not (deadline, unreachable), None when nothing was read."""
        with self._lock:
            if granted.trial:
                self._trial_out = False
                if answered:
                    self._count, self._opened_at = 0, None
                elif answered is False:
                    self._opened_at = self._clock()
                return
            if answered is None or self._opened_at is not None:
                return  # a read that began before the breaker opened does not decide it
            if answered:
                self._count = 0
                return
            self._count += 1
            if self.failures > 0 and self._count >= self.failures:
                self._opened_at = self._clock()


class OriginBreakers:
    """A ``Breaker`` per tenant × FHIR origin (scheme, host, port), made on first use: one
    tenant's path that stops answering does not open the breaker of another tenant's path
    on the same host and port."""

    def __init__(
        self, failures: int, cool_off_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 0 or cool_off_s < 0:
            raise ValueError(
                "FHIR_BREAKER_FAILURES and FHIR_BREAKER_COOL_OFF_SECONDS must be 0 or more"
            )
        self.failures, self.cool_off_s, self._clock = failures, cool_off_s, clock
        self._lock = threading.Lock()
        self._breakers: dict[BulkheadKey, Breaker] = {}

    def for_url(self, url: str, tenant: TenantKey = DEPLOYMENT) -> Breaker:
        origin = bulkhead_of(url, tenant)
        with self._lock:
            found = self._breakers.get(origin)
            if found is None:
                found = Breaker(self.failures, self.cool_off_s, self._clock)
                if len(self._breakers) < MAX_ORIGIN_POOLS:  # beyond (any loopback server): unkept
                    self._breakers[origin] = found
            return found


__all__ = ["Breaker", "FhirNotAnswering", "OriginBreakers", "Pass"]
