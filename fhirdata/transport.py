"""Deadlines that hold and bulkheads between FHIR servers, beneath ``FhirClient``.

A socket timeout bounds each read, not the request: a server that drips one byte a second
never trips it, and a thread blocked in ``recv`` cannot be cancelled. So every connection a
request uses is registered with that request's ``Watch``; when the deadline passes, the
``Watchdog`` shuts those sockets down, the blocked read returns at once, and the connection is
discarded (never handed back to the pool).

Each FHIR origin gets its own bounded executor (``OriginExecutors``) and its own connection
pool, so a slow server holds at most its own threads and connections, never another's.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()  # the Watch of the request this thread is sending, if any


class Watch:
    """The connections one hook request is using now; ``expire`` drops them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: set[HTTPConnection] = set()
        self.expired = False

    def add(self, conn: HTTPConnection) -> None:
        with self._lock:
            if self.expired:
                _drop(conn)
            self._conns.add(conn)

    def discard(self, conns: list[HTTPConnection]) -> None:
        with self._lock:
            self._conns.difference_update(conns)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            conns, self._conns = self._conns, set()
        for conn in conns:
            _drop(conn)

    def sending(self) -> _Sending:
        """``with watch.sending():`` around one HTTP exchange on this thread."""
        return _Sending(self)


class _Sending:
    def __init__(self, watch: Watch) -> None:
        self._watch = watch
        self._conns: list[HTTPConnection] = []

    def __enter__(self) -> None:
        _current.watch, _current.conns = self._watch, self._conns

    def __exit__(self, *_exc: object) -> None:
        _current.watch = _current.conns = None
        # Done with them: the pool may hand them to another request, which this watch must
        # then never touch.
        self._watch.discard(self._conns)


def _drop(conn: HTTPConnection) -> None:
    sock = conn.sock
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _register(conn: HTTPConnection) -> None:
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        _current.conns.append(conn)
        watch.add(conn)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


MAX_ORIGIN_POOLS = 64  # connection pools (one per FHIR origin) kept per worker


def new_session(pool_size: int) -> requests.Session:
    """A keep-alive session: per origin a pool of ``pool_size`` connections (a request waits
    for one rather than opening more), no retries (the deadline is too short), connections
    dropped by their request's ``Watch`` when its deadline passes."""
    session = requests.Session()
    adapter = _WatchedAdapter(
        pool_connections=MAX_ORIGIN_POOLS, pool_maxsize=pool_size, max_retries=0, pool_block=True
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # no proxies or .netrc credentials picked up from the host
    return session


class Watchdog:
    """One thread per process that runs callbacks at their (monotonic) time.

    Nearly every callback is cancelled long before its time (a deadline that was kept), so
    cancelling is O(1) and wakes nobody: the callback is forgotten at once and its heap entry
    is skipped when it comes due, or dropped sooner when cancelled entries outnumber the live
    ones. The thread is woken only when a new time is earlier than every pending one.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._pid = -1

    def at(self, when: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` at ``when`` (time.monotonic()); the id cancels it."""
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked worker: no thread yet
                self._pid = os.getpid()
                self._heap, self._live = [], {}
                threading.Thread(target=self._run, name="fhir-watchdog", daemon=True).start()
            ident = next(self._ids)
            self._live[ident] = callback
            heapq.heappush(self._heap, (when, ident))
            if self._heap[0][1] == ident:  # earlier than the time the thread waits for
                self._cond.notify()
            return ident

    def cancel(self, ident: int) -> None:
        with self._cond:
            if self._live.pop(ident, None) is not None and len(
                self._heap
            ) > WATCHDOG_SLACK + 2 * len(self._live):
                self._heap = [entry for entry in self._heap if entry[1] in self._live]
                heapq.heapify(self._heap)

    def pending(self) -> int:
        """Callbacks not yet run or cancelled."""
        with self._cond:
            return len(self._live)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, ident = heapq.heappop(self._heap)
                callback = self._live.pop(ident, None)
            if callback is None:
                continue  # cancelled
            try:
                callback()
            except Exception:  # noqa: S112 (a failed drop must not stop the watchdog)
                continue


WATCHDOG_SLACK = 256  # cancelled heap entries tolerated before the heap is compacted


WATCHDOG = Watchdog()


def origin_of(url: str) -> tuple[str, str]:
    """A URL's origin (scheme, host and port), the unit of every per-server bound."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


TenantKey = tuple[str | None, str | None]
"""The tenant whose access token a read carries: (issuer, tenant id); (None, None) for the
deployment's own allowlist. Every bulkhead is per tenant × origin, so two tenants whose FHIR
servers share a host and port (two paths of one engine) cannot hold each other's capacity."""

DEPLOYMENT: TenantKey = (None, None)

BulkheadKey = tuple[TenantKey, tuple[str, str]]


def bulkhead_of(url: str, tenant: TenantKey = DEPLOYMENT) -> BulkheadKey:
    return tenant, origin_of(url)


class TenantSessions:
    """A keep-alive session (``new_session``) per tenant, so that each tenant has its own
    connection pool per origin: one tenant's dripping path cannot hold the connections
    another tenant on the same host and port needs. Tenants come from the configuration,
    so they are few; those beyond ``max_tenants`` share one more session."""

    def __init__(self, pool_size: int, max_tenants: int = MAX_ORIGIN_POOLS) -> None:
        self.pool_size, self._max = pool_size, max_tenants
        self._lock = threading.Lock()
        self._sessions: dict[TenantKey, requests.Session] = {}
        self._overflow = new_session(pool_size)

    def for_tenant(self, tenant: TenantKey = DEPLOYMENT) -> requests.Session:
        with self._lock:
            found = self._sessions.get(tenant)
            if found is None:
                if len(self._sessions) >= self._max:
                    return self._overflow
                found = self._sessions[tenant] = new_session(self.pool_size)
            return found


class OriginExecutors:
    """A bounded executor per tenant × FHIR origin (scheme, host, port): the bulkheads.

    A slow server's reads queue behind its own ``per_origin`` threads; another server's reads
    (or another tenant's on the same server) never wait for them. Origins beyond
    ``max_origins`` (only possible when any loopback server is allowed) share one more
    executor.
    """

    def __init__(self, per_origin: int, max_origins: int = MAX_ORIGIN_POOLS) -> None:
        self.per_origin = per_origin
        self._max = max_origins
        self._lock = threading.Lock()
        self._executors: dict[BulkheadKey, ThreadPoolExecutor] = {}
        self._overflow = ThreadPoolExecutor(per_origin, thread_name_prefix="fhir-other")

    def for_url(self, url: str, tenant: TenantKey = DEPLOYMENT) -> ThreadPoolExecutor:
        origin = bulkhead_of(url, tenant)
        with self._lock:
            found = self._executors.get(origin)
            if found is None:
                if len(self._executors) >= self._max:
                    return self._overflow
                found = ThreadPoolExecutor(
                    self.per_origin, thread_name_prefix=f"fhir-{len(self._executors)}"
                )
                self._executors[origin] = found
            return found


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return trim if callable(trim) else None


_TRIM = _malloc_trim()  # glibc's; None elsewhere (musl, macOS)


def release_freed_memory() -> None:
    """Give the memory freed by an answer refused for its size back to the system.

    The pieces of a refused answer were read by several threads, each into its own malloc
    arena, between small objects that live on; freed, glibc keeps them, and a worker would
    grow by megabytes with every refused answer. ``malloc_trim`` hands them back: called
    only after a refusal, so its cost (a walk over the arenas) is not paid on the usual path.
    """
    if _TRIM is not None:
        _TRIM(0)


__all__ = [
    "DEPLOYMENT",
    "WATCHDOG",
    "OriginExecutors",
    "TenantKey",
    "TenantSessions",
    "Watch",
    "Watchdog",
    "bulkhead_of",
    "new_session",
    "release_freed_memory",
]
