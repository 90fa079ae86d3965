"""Admission of hook calls: a bound per worker, and a share of it per FHIR server.

Queued past the FHIR deadline, a hook answer is useless to the EHR and holds a thread that
the probes need, so a call that finds no free slot is answered 503 with ``Retry-After`` at
once. Two bounds, both per worker process:

- ``limit`` hook calls in flight (HOOKS_IN_FLIGHT_MAX, default gunicorn's THREADS less two,
  so /healthz and /readyz always find a free thread);
- ``per_server`` of them for any one tenant's ``fhirServer`` origin (FHIR_SERVER_HOOKS_MAX,
  default the limit less two), taken first: however slow one FHIR server is, and however
  hard its EHR retries, hooks for the other servers (and other tenants) still find a slot.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhirdata.allowlist import normalise_base
from fhirdata.transport import DEPLOYMENT, BulkheadKey, TenantKey, bulkhead_of


def hooks_in_flight_max(config: Mapping[str, Any]) -> int:
    """HOOKS_IN_FLIGHT_MAX, or gunicorn's THREADS less two (kept for probes and discovery)."""
    configured = config.get("HOOKS_IN_FLIGHT_MAX")
    if configured:
        return max(1, int(configured))
    return max(1, int(config.get("THREADS") or 8) - 2)


def hooks_per_fhir_server(config: Mapping[str, Any]) -> int:
    """FHIR_SERVER_HOOKS_MAX, or all but two of a worker's hook slots."""
    configured = config.get("FHIR_SERVER_HOOKS_MAX")
    if configured:
        return max(1, int(configured))
    in_flight = hooks_in_flight_max(config)
    return in_flight - 2 if in_flight > 2 else in_flight


@dataclass(frozen=True)
class Ticket:
    server: BulkheadKey | None  # the tenant × FHIR origin whose share was taken, if any


class HookAdmission:
    def __init__(self, limit: int, per_server: int) -> None:
        self.limit = limit
        self.per_server = per_server
        self._lock = threading.Lock()
        self._in_flight = 0
        self._per_server: dict[BulkheadKey, int] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HookAdmission:
        return cls(hooks_in_flight_max(config), hooks_per_fhir_server(config))

    def admit(self, fhir_server: str | None, tenant: TenantKey = DEPLOYMENT) -> Ticket | None:
        """A ticket to release when the call is answered, or None: answer 503 now. The
        share is the tenant's on that server: two tenants on one host and port (two paths of
        one engine) each have their own."""
        server = _origin(fhir_server, tenant)
        with self._lock:
            waiting = self._per_server.get(server, 0) if server else 0
            if self._in_flight >= self.limit or waiting >= self.per_server:
                return None
            self._in_flight += 1
            if server:
                self._per_server[server] = waiting + 1
            return Ticket(server)

    def release(self, ticket: Ticket) -> None:
        with self._lock:
            self._in_flight -= 1
            if ticket.server:
                left = self._per_server.get(ticket.server, 1) - 1
                if left > 0:
                    self._per_server[ticket.server] = left
                else:
                    del self._per_server[ticket.server]


def _origin(url: str | None, tenant: TenantKey) -> BulkheadKey | None:
    """(tenant, (scheme, host[:port])) as the allowlist spells it: another spelling of the
    same server (case, a default port) shares its slots."""
    if not url:
        return None
    try:
        return bulkhead_of(normalise_base(url), tenant)
    except ValueError:
        return None
