"""What the web app asks of its database: the ``AuditStore`` protocol.

``store.Store`` implements it explicitly (it subclasses the protocol, so mypy checks every
signature against it); the app's state (``service.state.AppState``) holds an ``AuditStore``.
Tests use the real ``Store`` on SQLite wherever the app needs one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from store.records import (
    AccessRecord,
    AuditRecord,
    FeedbackRecord,
    IssuedCardInfo,
    LoginClaim,
    RefusalRecord,
)
from store.repository import Filter, Summary


class AuditStore(Protocol):
    """The audit trail, feedback, token claims, dashboard sessions and figures."""

    url: str
    engine: Engine  # the SQLAlchemy engine, for read-only queries (``store.people``)

    @property
    def backend(self) -> str: ...

    def ping(self) -> bool: ...

    def record(self, record: AuditRecord) -> None: ...

    def record_access(self, record: AccessRecord | RefusalRecord) -> None: ...

    def claim_token(self, iss: str, jti: str, expires_at: float) -> bool: ...

    def start_session(self, expires_at: datetime) -> str: ...

    def session_live(self, session_id: str, now: datetime) -> bool: ...

    def end_session(self, session_id: str) -> None: ...

    def claim_login_try(
        self, address_hash: str, now: datetime, window: timedelta, per_address: int, overall: int
    ) -> LoginClaim: ...

    def release_login_try(self, claim: LoginClaim) -> None: ...

    def flush(self, timeout: float = 30.0) -> bool: ...

    def issued_cards(
        self, uuids: Iterable[str], wait_s: float = 0.0
    ) -> dict[str, IssuedCardInfo]: ...

    def add_feedback(self, items: Iterable[FeedbackRecord]) -> int: ...

    def forget_feedback_comments(self) -> int: ...

    def set_retention(self, days: int | None, clock: Callable[[], datetime]) -> None: ...

    def apply_retention(self) -> tuple[int, int]: ...

    def purge_before(self, cutoff: datetime) -> tuple[int, int]: ...

    def summary(self, f: Filter) -> Summary: ...

    def counts(self) -> dict[str, int]: ...

    def access_counts(self, f: Filter) -> list[tuple[int, str, int]]: ...

    def export(
        self, what: str, since: date, until: date | None = None
    ) -> Iterator[dict[str, Any]]: ...

    def close(self, timeout: float = 30.0) -> None: ...
