"""The audit trail and clinician feedback, in SQLite (embedded default) or PostgreSQL.

``open_store(url)`` gives the process's one ``Store`` for a database (created, migrated and
shared by every app on that URL); ``Store.record`` queues an evaluation for the background
writer; feedback is written synchronously and idempotently. Nothing here knows Flask.
"""

from __future__ import annotations

import atexit
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from store import repository
from store.db import make_engine, migrate, normalise_url, sqlite_url
from store.interface import AuditStore
from store.keys import hash_key
from store.records import (
    AccessRecord,
    AuditRecord,
    CardRecord,
    CriterionRecord,
    FeedbackRecord,
    IssuedCardInfo,
    LoginClaim,
    RefusalRecord,
    patient_hash,
)
from store.repository import Filter, Summary
from store.writer import AuditWriter

__all__ = [
    "AccessRecord",
    "AuditRecord",
    "AuditStore",
    "CardRecord",
    "CriterionRecord",
    "FeedbackRecord",
    "Filter",
    "IssuedCardInfo",
    "LoginClaim",
    "RefusalRecord",
    "Store",
    "Summary",
    "close_all",
    "hash_key",
    "open_store",
    "patient_hash",
    "sqlite_url",
]


TOKEN_PURGE_EVERY_S = 60.0  # how often a process deletes token ids past their expiry
CLAIM_WAIT_S = 2.0  # SQLite: how long a token claim waits for another writer's lock


class Store(AuditStore):
    """The real ``AuditStore``: SQLite or PostgreSQL, migrated on open."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            migrate(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self.writer = AuditWriter(self.engine)
        # Token claims are on the request path: on SQLite they wait briefly for another
        # writer (a long export, a backup), then the call is refused 503 instead of held.
        self._claims = (
            make_engine(url, sqlite_busy_timeout_s=CLAIM_WAIT_S)
            if self.backend == "sqlite"
            else self.engine
        )
        self.closed = False
        self._retention: tuple[int, Callable[[], datetime]] | None = None
        self._next_token_purge = 0.0

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> bool:
        """True when the database answers a query on its schema (readiness).

        Raises the driver's error when it cannot be reached. A SQLite file that has been
        deleted is not ready: pooled connections would keep writing to the unlinked file.
        """
        database = self.engine.url.database
        if self.backend == "sqlite" and database and not Path(database).exists():
            return False
        with self.engine.connect() as conn:
            return conn.execute(repository.schema_version()).scalar() is not None

    # -- audit ------------------------------------------------------------------------------
    def record(self, record: AuditRecord) -> None:
        """Queue one evaluation for the background writer (returns at once)."""
        self.writer.submit(record)

    def record_access(self, record: AccessRecord | RefusalRecord) -> None:
        """Queue one access audit record, or one refused call to be counted, for the background
        writer (returns at once)."""
        self.writer.submit(record)

    # -- replay protection ------------------------------------------------------------------
    def claim_token(self, iss: str, jti: str, expires_at: float) -> bool:
        """True the first time (``iss``, ``jti``) is claimed, in any process using this
        database; remembered until ``expires_at`` (epoch seconds). Raises the driver's error
        when the database cannot be asked."""
        key = hashlib.sha256(f"{iss}\x00{jti}".encode()).hexdigest()
        now = time.time()
        with self._claims.connect().execution_options(write=True) as conn, conn.begin():
            if now >= self._next_token_purge:
                self._next_token_purge = now + TOKEN_PURGE_EVERY_S
                repository.purge_seen_tokens(conn, datetime.fromtimestamp(now, UTC))
            return repository.claim_token(conn, key, datetime.fromtimestamp(expires_at, UTC))

    # -- dashboard sessions -----------------------------------------------------------------
    def start_session(self, expires_at: datetime) -> str:
        """A new session id, valid in every process until ``expires_at`` or ``end_session``."""
        session_id = secrets.token_urlsafe(32)
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            repository.start_session(conn, _session_hash(session_id), expires_at)
        return session_id

    def session_live(self, session_id: str, now: datetime) -> bool:
        with self.engine.connect() as conn:
            return repository.session_live(conn, _session_hash(session_id), now)

    def end_session(self, session_id: str) -> None:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            repository.end_session(conn, _session_hash(session_id))

    # -- dashboard sign-in throttle ---------------------------------------------------------
    def claim_login_try(
        self, address_hash: str, now: datetime, window: timedelta, per_address: int, overall: int
    ) -> LoginClaim:
        """One sign-in try from a hashed client address, claimed and counted as a failure in
        one step, for every process alike (at most ``per_address`` from one address and
        ``overall`` from all per window; so concurrent tries can never exceed them); or the
        seconds until one may be tried. A right token gives its count back
        (``release_login_try``). Failures older than the window are deleted."""
        since = now - window
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            repository.lock_login_throttle(conn)
            for n, address in ((per_address, address_hash), (overall, None)):
                nth = repository.nth_login_failure(conn, since, n, address)
                if nth is not None:
                    return LoginClaim(int((nth + window - now).total_seconds()) + 1, None)
            return LoginClaim(0, repository.record_login_failure(conn, address_hash, now, window))

    def release_login_try(self, claim: LoginClaim) -> None:
        """The claimed try's token was right: it is not a failure."""
        if claim.try_id is None:
            return
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            repository.forget_login_failure(conn, claim.try_id)

    def flush(self, timeout: float = 30.0) -> bool:
        return self.writer.flush(timeout)

    def issued_cards(self, uuids: Iterable[str], wait_s: float = 0.0) -> dict[str, IssuedCardInfo]:
        """The cards among ``uuids`` that this service issued, written or still queued.

        ``wait_s``: how long to keep looking for the rest (another process may not have
        written its record yet).
        """
        wanted = set(uuids)
        found: dict[str, IssuedCardInfo] = {}
        for card_uuid in wanted:  # queued here first: a written card leaves the queue after
            pending = self.writer.pending_card(card_uuid)
            if pending is not None:
                service_id, card = pending
                found[card_uuid] = IssuedCardInfo(
                    service_id, frozenset(card.suggestion_uuids), frozenset(card.override_codes)
                )
        deadline = time.monotonic() + wait_s
        while True:
            missing = wanted - set(found)
            if not missing:
                return found
            with self.engine.connect() as conn:
                found.update(repository.issued_cards(conn, missing))
            if set(found) == wanted or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    # -- feedback ---------------------------------------------------------------------------
    def add_feedback(self, items: Iterable[FeedbackRecord]) -> int:
        """Store feedback items in one transaction; returns how many were new."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            return repository.insert_feedback(conn, list(items))

    def forget_feedback_comments(self) -> int:
        """Delete the text of every stored feedback comment, keeping its length (done at start-up
        unless FEEDBACK_STORE_COMMENTS is on); returns how many comments were deleted."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            return repository.forget_feedback_comments(conn)

    # -- retention --------------------------------------------------------------------------
    def set_retention(self, days: int | None, clock: Callable[[], datetime]) -> None:
        """Keep records for ``days`` (None or 0: for ever); applied now and every 6 hours."""
        self._retention = (days, clock) if days else None
        self.writer.housekeeping = self.apply_retention if days else None

    def apply_retention(self) -> tuple[int, int]:
        if self._retention is None:
            return 0, 0
        days, clock = self._retention
        return self.purge_before(clock() - timedelta(days=days))

    def purge_before(self, cutoff: datetime) -> tuple[int, int]:
        """Delete evaluations and feedback older than ``cutoff``: (evaluations, feedback)."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            return repository.purge_before(conn, cutoff)

    # -- reading ----------------------------------------------------------------------------
    def summary(self, f: Filter) -> Summary:
        """The dashboard's summary counts and percentiles (``dashboard.figures`` shapes them)."""
        with self.engine.connect() as conn, conn.begin():
            return repository.summary(conn, f)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return repository.counts(conn)

    def access_counts(self, f: Filter) -> list[tuple[int, str, int]]:
        with self.engine.connect() as conn, conn.begin():
            return repository.access_counts(conn, f)

    def export(self, what: str, since: date, until: date | None = None) -> Iterator[dict[str, Any]]:
        """Rows of ``what`` ("audit", "feedback", "access" or "refusals") for the days given."""
        with self.engine.connect() as conn, conn.begin():
            if what == "feedback":
                yield from repository.export_feedback(conn, since, until)
            elif what == "access":
                yield from repository.export_access(conn, since, until)
            elif what == "refusals":
                yield from repository.export_refusals(conn, since, until)
            else:
                yield from repository.export_audit(conn, since, until)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then release the database. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.writer.close(timeout)
        self.engine.dispose()
        self._claims.dispose()
        with _lock:
            if _stores.get(self._key) is self:
                del _stores[self._key]

    @property
    def _key(self) -> str:
        return _registry_key(self.url)


def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def _registry_key(url: str) -> str:
    return normalise_url(url).render_as_string(hide_password=False)


def open_store(url: str) -> Store:
    """The process's Store for ``url``: one engine, one writer thread, migrated once."""
    key = _registry_key(url)
    with _lock:
        found = _stores.get(key)
        if found is None or found.closed:
            found = Store(url)
            _stores[key] = found
        return found


def close_all() -> None:
    """Write every queued record and release every database (run at interpreter exit)."""
    with _lock:
        stores = list(_stores.values())
    for s in stores:
        s.close()


atexit.register(close_all)
