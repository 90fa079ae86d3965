"""Floods of refused calls are cheap to refuse: a limit per client on calls the service refuses.

A client is its address (as ``TRUSTED_PROXY_HOPS`` reads it) and the issuer its token names,
read without checking the signature (only to tell clients behind one integration engine
apart; nothing about the token is trusted or kept). Each refusal (401: no valid token) takes
one from the client's bucket of ``REFUSED_CALLS_BURST``, refilled at
``REFUSED_CALLS_PER_MINUTE``; one address, whatever issuers its tokens name, has four times
that. With the bucket empty the client's calls are answered 429 with ``Retry-After`` before
the token is read, logged or audited one by one (the access audit counts refusals per client
per minute: ``store``). Calls the service answers do not count.

The buckets are per worker process, in memory: a check costs a dictionary look-up, never a
database round trip, which is the point. A deployment's limit is so the setting times workers
times pods. At most ``MAX_CLIENTS`` clients are remembered; the least recently refused are
forgotten first.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask, Response, g, request

from service.errors import operation_outcome

MAX_CLIENTS = 10_000
ADDRESS_FACTOR = 4  # an address's bucket, whatever issuers its tokens name, to a client's
_ISSUER_CHARS = 255


_Key = tuple[str, str | None]  # (address, issuer); issuer None: the address's own bucket


@dataclass
class _Bucket:
    tokens: float
    at: float


class RefusalLimiter:
    """Token buckets of refusals per client and per address; thread-safe."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if burst < 1 or per_minute <= 0:
            raise ValueError("REFUSED_CALLS_BURST and REFUSED_CALLS_PER_MINUTE must be positive")
        self.burst, self.rate = burst, per_minute / 60.0
        self._clock, self._max = clock, max_clients
        self._buckets: OrderedDict[_Key, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, address: str, issuer: str) -> tuple[tuple[_Key, float, float], ...]:
        """(key, bucket size, refill per second) of the client and of its address."""
        return (
            ((address, issuer), float(self.burst), self.rate),
            ((address, None), float(self.burst * ADDRESS_FACTOR), self.rate * ADDRESS_FACTOR),
        )

    def retry_after(self, address: str, issuer: str) -> int | None:
        """Seconds until this client's calls may go on, or None when they may now."""
        now = self._clock()
        waits = []
        with self._lock:
            for key, size, rate in self._keys(address, issuer):
                bucket = self._buckets.get(key)
                if bucket is None:
                    continue
                tokens = min(size, bucket.tokens + (now - bucket.at) * rate)
                if tokens < 1:
                    waits.append(math.ceil((1 - tokens) / rate))
        return max(waits) if waits else None

    def refused(self, address: str, issuer: str) -> None:
        """Count one refusal of this client."""
        now = self._clock()
        with self._lock:
            for key, size, rate in self._keys(address, issuer):
                bucket = self._buckets.pop(key, None) or _Bucket(size, now)
                tokens = min(size, bucket.tokens + (now - bucket.at) * rate)
                self._buckets[key] = _Bucket(max(tokens - 1, 0.0), now)  # the most recent last
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)


def claimed_issuer(authorization: str) -> str:
    """The ``iss`` a bearer JWT names, unchecked ("" when there is none to read)."""
    scheme, _, token = authorization.partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3 or len(parts[1]) > 8192:
        return ""
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return ""
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss[:_ISSUER_CHARS] if isinstance(iss, str) else ""


def init_app(app: Flask, limiter: RefusalLimiter) -> None:
    """Check the limit before authentication (register this first) and count 401s after."""

    @app.before_request
    def throttle_refused_clients() -> Response | None:
        if not _limited(request.path):
            return None
        address = request.remote_addr or "unknown"
        g.claimed_issuer = claimed_issuer(request.headers.get("Authorization", ""))
        wait_s = limiter.retry_after(address, g.claimed_issuer)
        if wait_s is None:
            return None
        g.refusal_throttled = True
        return Response(
            orjson.dumps(operation_outcome("throttled", _THROTTLED)),
            status=429,
            mimetype="application/json",
            headers={"Retry-After": str(wait_s)},
        )

    @app.after_request
    def count_refusals(resp: Response) -> Response:
        if resp.status_code == 401 and _limited(request.path):
            issuer: Any = g.get("claimed_issuer", "")
            limiter.refused(request.remote_addr or "unknown", str(issuer))
        return resp


_THROTTLED = "too many refused calls from this client; retry after the time given"


def _limited(path: str) -> bool:
    """The CDS Hooks API: what a CDS client's token is checked for."""
    return path.startswith("/cds-services")
