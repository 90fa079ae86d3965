"""Reads and writes on a Connection: inserts, look-ups, retention, analytics and export.

Every function takes an open ``Connection``; the caller owns the transaction. Only portable
SQL (SQLite and PostgreSQL): grouping is by stored day columns, percentiles by window
functions; the figures are plain typed rows (shaped for the dashboard by ``dashboard.figures``).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, case, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

from facts.london import LONDON, london_day
from store.models import (
    AccessEvent,
    AccessRefusal,
    AnalyticsLoginFailure,
    AnalyticsSession,
    AuditCriterion,
    AuditEvent,
    Base,
    Feedback,
    IssuedCard,
    SeenToken,
)
from store.records import (
    AccessRecord,
    AuditRecord,
    FeedbackRecord,
    IssuedCardInfo,
    RefusalRecord,
    utc,
)

S = TypeVar("S", bound=Select[*tuple[Any, ...]])
OUTCOMES = ("meets-criteria", "does-not-meet-criteria", "insufficient-information")
NO_DECISION = "no-decision"  # an order hook with no i-Port draft: evaluated, nothing to say
UNKNOWN_PLACE = "unknown"  # places.UNKNOWN (store/ stays free of the places package)
_PG_LOGIN_LOCK = 0x1B0_27CD6  # pg_advisory_xact_lock key: one sign-in try counted at a time


def schema_version() -> Any:
    """The migration the database is at: a cheap query that needs the schema to be there."""
    return text("SELECT version_num FROM alembic_version")


def _insert(conn: Connection, model: type[Base], ignore_duplicate: str | None = None) -> Insert:
    """INSERT; with ``ignore_duplicate`` (a unique column), a row already there is skipped."""
    if conn.dialect.name == "postgresql":
        pg = pg_insert(model)
        return (
            pg.on_conflict_do_nothing(index_elements=[ignore_duplicate]) if ignore_duplicate else pg
        )
    lite = sqlite_insert(model)
    return (
        lite.on_conflict_do_nothing(index_elements=[ignore_duplicate]) if ignore_duplicate else lite
    )


# -- writes ---------------------------------------------------------------------------------------
def insert_audit(conn: Connection, records: Sequence[AuditRecord]) -> None:
    """One batch of evaluations: events, their criteria, their cards (a reissued card uuid is
    kept once: the first issue wins)."""
    if not records:
        return
    conn.execute(
        _insert(conn, AuditEvent),
        [
            {
                "id": r.id,
                "recorded_at": utc(r.recorded_at),
                "recorded_on": london_day(r.recorded_at),
                "service_id": r.service_id,
                "hook": r.hook,
                "hook_instance": r.hook_instance,
                "patient_hash": r.patient_hash,
                "outcome": r.outcome,
                "pathway": r.pathway,
                "policy_id": r.policy_id,
                "policy_version": r.policy_version,
                "card_count": len(r.cards),
                "prefetch_keys": list(r.prefetch_keys),
                "fetched_keys": list(r.fetched_keys),
                "prefetch_used": len(r.prefetch_keys),
                "fetched_count": len(r.fetched_keys),
                "fhir_requests": r.fhir_requests,
                "fetch_ms": r.fetch_ms,
                "total_ms": r.total_ms,
                "practice_code": r.practice_code,
                "place": r.place,
            }
            for r in records
        ],
    )
    criteria = [
        {"audit_id": r.id, "criterion_id": c.id, "result": c.result, "on_pathway": c.on_pathway}
        for r in records
        for c in r.criteria
    ]
    if criteria:
        conn.execute(_insert(conn, AuditCriterion), criteria)
    cards = [
        {
            "card_uuid": c.uuid,
            "audit_id": r.id,
            "service_id": r.service_id,
            "issued_at": utc(r.recorded_at),
            "suggestion_uuids": list(c.suggestion_uuids),
            "override_codes": [list(o) for o in c.override_codes],
            "suggestion_criteria": dict(c.suggestion_criteria),
        }
        for r in records
        for c in r.cards
    ]
    if cards:
        conn.execute(_insert(conn, IssuedCard, ignore_duplicate="card_uuid"), cards)


def insert_access(conn: Connection, records: Sequence[AccessRecord]) -> None:
    """One batch of access audit records."""
    if not records:
        return
    conn.execute(
        _insert(conn, AccessEvent),
        [
            {
                "id": r.id,
                "recorded_at": utc(r.recorded_at),
                "recorded_on": london_day(r.recorded_at),
                "service_id": r.service_id[:64],
                "status": r.status,
                "outcome": r.outcome[:64],
                "issuer": r.issuer[:255] if r.issuer else None,
                "subject": r.subject[:255] if r.subject else None,
                "tenant": r.tenant[:128] if r.tenant else None,
                "ehr_user": r.ehr_user[:128] if r.ehr_user else None,
                "patient_hash": r.patient_hash,
                "request_id": r.request_id[:128],
            }
            for r in records
        ],
    )


def insert_refusals(conn: Connection, records: Sequence[RefusalRecord]) -> None:
    """Add a batch of refused calls to their clients' per-minute counts."""
    counts: Counter[tuple[datetime, str, int, str, str, str]] = Counter()
    for r in records:
        minute = utc(r.recorded_at).replace(second=0, microsecond=0)
        key = (minute, r.service_id[:64], r.status, r.outcome[:64], r.address_hash, r.issuer[:255])
        counts[key] += 1
    for (minute, service_id, status, outcome, address_hash, issuer), calls in counts.items():
        insert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(
            AccessRefusal
        ).values(
            minute=minute,
            service_id=service_id,
            status=status,
            outcome=outcome,
            address_hash=address_hash,
            issuer=issuer,
            recorded_on=london_day(minute),
            calls=calls,
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=list(_REFUSAL_KEY),
                set_={"calls": AccessRefusal.calls + insert.excluded.calls},
            )
        )


_REFUSAL_KEY = ("minute", "service_id", "status", "outcome", "address_hash", "issuer")


def claim_token(conn: Connection, token_key: str, expires_at: datetime) -> bool:
    """Remember a token id; True when it was not seen before (the primary key decides, so two
    workers racing with the same token cannot both win)."""
    # RETURNING, not rowcount: drivers disagree on rowcount for a skipped conflicting row.
    stmt = _insert(conn, SeenToken, ignore_duplicate="token_key").returning(SeenToken.token_key)
    row = conn.execute(stmt, {"token_key": token_key, "expires_at": utc(expires_at)}).first()
    return row is not None


def purge_seen_tokens(conn: Connection, now: datetime) -> int:
    """Forget token ids whose tokens can no longer be accepted anyway."""
    deleted = conn.execute(delete(SeenToken).where(SeenToken.expires_at < utc(now))).rowcount
    return max(deleted, 0)


def start_session(conn: Connection, session_hash: str, expires_at: datetime) -> None:
    conn.execute(delete(AnalyticsSession).where(AnalyticsSession.expires_at < datetime.now(UTC)))
    conn.execute(
        _insert(conn, AnalyticsSession),
        {"session_hash": session_hash, "expires_at": utc(expires_at)},
    )


def session_live(conn: Connection, session_hash: str, now: datetime) -> bool:
    found = conn.execute(
        select(AnalyticsSession.expires_at).where(AnalyticsSession.session_hash == session_hash)
    ).scalar()
    return found is not None and utc(found if found.tzinfo else found.replace(tzinfo=UTC)) > now


def end_session(conn: Connection, session_hash: str) -> None:
    conn.execute(delete(AnalyticsSession).where(AnalyticsSession.session_hash == session_hash))


def lock_login_throttle(conn: Connection) -> None:
    """Make this transaction the only one counting sign-in tries until it ends. SQLite's
    write transactions already are (BEGIN IMMEDIATE); PostgreSQL takes an advisory lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOGIN_LOCK})


def record_login_failure(
    conn: Connection, address_hash: str, now: datetime, keep: timedelta
) -> uuid.UUID:
    """Count a wrong dashboard token from one (hashed) address; failures older than ``keep``
    are deleted, so an address is held no longer than the throttle needs it."""
    conn.execute(
        delete(AnalyticsLoginFailure).where(AnalyticsLoginFailure.failed_at <= utc(now - keep))
    )
    failure_id = uuid.uuid4()
    conn.execute(
        _insert(conn, AnalyticsLoginFailure),
        {"id": failure_id, "address_hash": address_hash, "failed_at": utc(now)},
    )
    return failure_id


def forget_login_failure(conn: Connection, failure_id: uuid.UUID) -> None:
    conn.execute(delete(AnalyticsLoginFailure).where(AnalyticsLoginFailure.id == failure_id))


def nth_login_failure(
    conn: Connection, since: datetime, n: int, address_hash: str | None
) -> datetime | None:
    """When the ``n``-th most recent failed sign-in after ``since`` was (from one hashed
    address, or from anywhere when None); None when there were fewer than ``n``."""
    query = select(AnalyticsLoginFailure.failed_at).where(
        AnalyticsLoginFailure.failed_at > utc(since)
    )
    if address_hash is not None:
        query = query.where(AnalyticsLoginFailure.address_hash == address_hash)
    found = conn.execute(
        query.order_by(AnalyticsLoginFailure.failed_at.desc()).offset(n - 1).limit(1)
    ).scalar()
    return None if found is None else found if found.tzinfo else found.replace(tzinfo=UTC)


def insert_feedback(conn: Connection, items: Sequence[FeedbackRecord]) -> int:
    """Store feedback items; one already stored (same dedup key) is skipped. Returns how many
    were new."""
    stored = 0
    # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
    stmt = _insert(conn, Feedback, ignore_duplicate="dedup_key").returning(Feedback.dedup_key)
    for f in items:
        row = conn.execute(
            stmt,
            {
                "dedup_key": f.dedup_key,
                "service_id": f.service_id,
                "card_uuid": f.card_uuid,
                "outcome": f.outcome,
                "outcome_at": utc(f.outcome_at),
                "outcome_on": london_day(f.outcome_at),
                "received_at": utc(f.received_at),
                "accepted_suggestions": list(f.accepted_suggestions),
                "reason_system": f.reason_system,
                "reason_code": f.reason_code,
                "reason_display": f.reason_display,
                "user_comment": f.user_comment,
                "user_comment_chars": f.user_comment_chars,
            },
        ).first()
        stored += row is not None
    return stored


def issued_cards(conn: Connection, uuids: Iterable[str]) -> dict[str, IssuedCardInfo]:
    wanted = sorted(set(uuids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(
            IssuedCard.card_uuid,
            IssuedCard.service_id,
            IssuedCard.suggestion_uuids,
            IssuedCard.override_codes,
        ).where(IssuedCard.card_uuid.in_(wanted))
    )
    return {
        r.card_uuid: IssuedCardInfo(
            service_id=r.service_id,
            suggestion_uuids=frozenset(r.suggestion_uuids or ()),
            override_codes=frozenset((str(s), str(c)) for s, c in (r.override_codes or ())),
        )
        for r in rows
    }


def forget_feedback_comments(conn: Connection) -> int:
    """Delete the text of every stored feedback comment (its length stays); returns how many."""
    done = conn.execute(
        update(Feedback).where(Feedback.user_comment.is_not(None)).values(user_comment=None)
    )
    return max(done.rowcount, 0)


def purge_before(conn: Connection, cutoff: datetime) -> tuple[int, int]:
    """Delete evaluations (with their criteria and cards) and feedback older than ``cutoff``.
    Returns (evaluations, feedback items) deleted."""
    cutoff = utc(cutoff)
    old = select(AuditEvent.id).where(AuditEvent.recorded_at < cutoff).scalar_subquery()
    conn.execute(delete(AuditCriterion).where(AuditCriterion.audit_id.in_(old)))
    conn.execute(delete(IssuedCard).where(IssuedCard.audit_id.in_(old)))
    events = conn.execute(delete(AuditEvent).where(AuditEvent.recorded_at < cutoff)).rowcount
    feedback = conn.execute(delete(Feedback).where(Feedback.received_at < cutoff)).rowcount
    conn.execute(delete(AccessEvent).where(AccessEvent.recorded_at < cutoff))
    conn.execute(delete(AccessRefusal).where(AccessRefusal.minute < cutoff))
    return max(events, 0), max(feedback, 0)


def counts(conn: Connection) -> dict[str, int]:
    """Rows per table (tests and the CLI's summary)."""
    out: dict[str, int] = {}
    for model in (AuditEvent, AuditCriterion, IssuedCard, Feedback, AccessEvent):
        out[model.__tablename__] = int(
            conn.execute(select(func.count()).select_from(model)).scalar_one()
        )
    return out


# -- analytics ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    start: date  # inclusive, Europe/London days
    end: date  # inclusive
    service_id: str | None = None
    service_ids: tuple[str, ...] = ()  # a policy's services (the policy filter)
    place: str | None = None  # a place key (places.UNKNOWN: neither practice nor tenant said)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def _filtered(f: Filter, stmt: S, day: Any, service: Any) -> S:
    """``stmt`` limited to the filter's days (on column ``day``) and services."""
    stmt = stmt.where(day >= f.start, day <= f.end)
    if f.service_id:
        stmt = stmt.where(service == f.service_id)
    if f.service_ids:
        stmt = stmt.where(service.in_(f.service_ids))
    return stmt


def _events(f: Filter, stmt: S) -> S:
    stmt = _filtered(f, stmt, AuditEvent.recorded_on, AuditEvent.service_id)
    return stmt.where(place_is(f.place)) if f.place else stmt


def _feedback(f: Filter, stmt: S) -> S:
    stmt = _filtered(f, stmt, Feedback.outcome_on, Feedback.service_id)
    if not f.place:
        return stmt
    at_place = (
        select(IssuedCard.card_uuid)
        .join(AuditEvent, AuditEvent.id == IssuedCard.audit_id)
        .where(place_is(f.place))
    )
    return stmt.where(Feedback.card_uuid.in_(at_place))


def place_is(place: str) -> Any:
    """Evaluations counted at ``place``; records without a place count as unknown."""
    return func.coalesce(AuditEvent.place, UNKNOWN_PLACE) == place


def day_outcome_counts(conn: Connection, f: Filter) -> Sequence[Any]:
    """(day, outcome or None, evaluations, cards) rows of the filter."""
    return conn.execute(
        _events(
            f,
            select(
                AuditEvent.recorded_on,
                AuditEvent.outcome,
                func.count(),
                func.coalesce(func.sum(AuditEvent.card_count), 0),
            ),
        ).group_by(AuditEvent.recorded_on, AuditEvent.outcome)
    ).all()


@dataclass(frozen=True)
class Percentiles:
    """Nearest-rank percentiles of a column, computed in SQL (None when there are no rows)."""

    count: int
    at: dict[int, float | None]  # percentile point (50, 90, …) → value
    max: float | None


@dataclass(frozen=True)
class PrefetchCounts:
    keys_prefetched: int
    keys_fetched: int
    decided: int  # evaluations with an outcome
    fully_prefetched: int  # of those, with nothing fetched


@dataclass(frozen=True)
class Summary:
    """The dashboard's counts for a filter, as the database grouped them (shaped for JSON by
    ``dashboard.figures``)."""

    days: Sequence[tuple[date, str | None, int, int]]  # day, outcome, evaluations, cards
    feedback: Sequence[tuple[str, str | None, str | None, int]]  # outcome, reason code, display, n
    feedback_by_card: Sequence[tuple[str | None, str, int]]  # card outcome, feedback outcome, n
    blocking: Sequence[tuple[str, str, int]]  # criterion id, not-met | unknown, n
    prefetch: PrefetchCounts
    latency_ms: Percentiles
    fhir_fetch_ms: Percentiles


PERCENTILE_POINTS = (50, 90, 95, 99)


def percentiles_of(
    conn: Connection, f: Filter, column: Any, *where: Any, points: Sequence[int] = PERCENTILE_POINTS
) -> Percentiles:
    """Nearest-rank percentiles of ``column`` over the filter's evaluations, in SQL: the row
    whose rank (by value) is ceil(p × n / 100), in integer arithmetic (SQLite and PostgreSQL)."""
    ranked = _events(
        f,
        select(
            column.label("v"),
            func.row_number().over(order_by=column).label("rn"),
            func.count().over().label("n"),
        ).where(column.is_not(None), *where),
    ).subquery()
    picks = [
        func.max(case((ranked.c.rn == (p * ranked.c.n + 99) // 100, ranked.c.v))) for p in points
    ]
    row = conn.execute(select(func.count(), func.max(ranked.c.v), *picks).select_from(ranked)).one()
    count, top, *values = (None if v is None else float(v) for v in row)
    return Percentiles(
        count=int(count or 0),
        at=dict(zip(points, values, strict=True)),
        max=top,
    )


def summary(conn: Connection, f: Filter) -> Summary:
    """Every count the dashboard's summary shows, for the days, services and place in ``f``."""
    feedback_rows = conn.execute(
        _feedback(
            f,
            select(Feedback.outcome, Feedback.reason_code, Feedback.reason_display, func.count()),
        ).group_by(Feedback.outcome, Feedback.reason_code, Feedback.reason_display)
    ).all()
    by_card = conn.execute(
        _feedback(
            f,
            select(AuditEvent.outcome, Feedback.outcome, func.count())
            .select_from(Feedback)
            .join(IssuedCard, IssuedCard.card_uuid == Feedback.card_uuid)
            .join(AuditEvent, AuditEvent.id == IssuedCard.audit_id),
        ).group_by(AuditEvent.outcome, Feedback.outcome)
    ).all()
    blocking = conn.execute(
        _events(
            f,
            select(AuditCriterion.criterion_id, AuditCriterion.result, func.count())
            .select_from(AuditCriterion)
            .join(AuditEvent, AuditEvent.id == AuditCriterion.audit_id)
            .where(
                AuditEvent.outcome.in_(OUTCOMES[1:]),
                AuditCriterion.on_pathway.is_(True),
                AuditCriterion.result != "met",
            ),
        ).group_by(AuditCriterion.criterion_id, AuditCriterion.result)
    ).all()
    used, fetched, decided, fully = (
        int(v or 0)
        for v in conn.execute(
            _events(
                f,
                select(
                    func.coalesce(func.sum(AuditEvent.prefetch_used), 0),
                    func.coalesce(func.sum(AuditEvent.fetched_count), 0),
                    func.count(),
                    func.coalesce(func.sum(case((AuditEvent.fetched_count == 0, 1), else_=0)), 0),
                ).where(AuditEvent.outcome.is_not(None)),
            )
        ).one()
    )
    return Summary(
        days=[(d, o, int(n), int(c)) for d, o, n, c in day_outcome_counts(conn, f)],
        feedback=[(o, code, display, int(n)) for o, code, display, n in feedback_rows],
        feedback_by_card=[(co, fo, int(n)) for co, fo, n in by_card],
        blocking=[(cid, result, int(n)) for cid, result, n in blocking],
        prefetch=PrefetchCounts(used, fetched, decided, fully),
        latency_ms=percentiles_of(conn, f, AuditEvent.total_ms),
        fhir_fetch_ms=percentiles_of(conn, f, AuditEvent.fetch_ms, AuditEvent.fetched_count > 0),
    )


# -- export ---------------------------------------------------------------------------------------
AUDIT_COLUMNS = (
    "recorded_at",
    "recorded_on",
    "service_id",
    "hook",
    "hook_instance",
    "patient_hash",
    "outcome",
    "pathway",
    "policy_id",
    "policy_version",
    "card_uuids",
    "criteria",
    "prefetch_keys",
    "fetched_keys",
    "fhir_requests",
    "fetch_ms",
    "total_ms",
    "practice_code",
    "place",
)
FEEDBACK_COLUMNS = (
    "received_at",
    "outcome_at",
    "service_id",
    "card_uuid",
    "outcome",
    "accepted_suggestions",
    "reason_system",
    "reason_code",
    "reason_display",
    "user_comment",
    "user_comment_chars",
)


ACCESS_COLUMNS = (
    "recorded_at",
    "service_id",
    "status",
    "outcome",
    "issuer",
    "subject",
    "tenant",
    "ehr_user",
    "patient_hash",
    "request_id",
)


def export_access(
    conn: Connection, since: date, until: date | None = None, chunk: int = 1000
) -> Iterator[dict[str, Any]]:
    """Access audit records on or after ``since`` (to ``until``), oldest first, in chunks."""
    for events in _chunks(conn, AccessEvent, since, until, chunk):
        for e in events:
            row = {c: getattr(e, c) for c in ACCESS_COLUMNS}
            row["recorded_at"] = _iso(e.recorded_at)
            yield row


def access_counts(conn: Connection, f: Filter) -> list[tuple[int, str, int]]:
    """Calls to the hooks in the date range: (HTTP status, outcome, calls) rows."""
    stmt = _filtered(
        f,
        select(AccessEvent.status, AccessEvent.outcome, func.count()),
        AccessEvent.recorded_on,
        AccessEvent.service_id,
    )
    rows = conn.execute(stmt.group_by(AccessEvent.status, AccessEvent.outcome))
    counts: Counter[tuple[int, str]] = Counter()
    for status, outcome, n in rows:
        counts[(int(status), str(outcome))] += int(n)
    refused = _filtered(
        f,
        select(AccessRefusal.status, AccessRefusal.outcome, func.sum(AccessRefusal.calls)),
        AccessRefusal.recorded_on,
        AccessRefusal.service_id,
    )
    for status, outcome, n in conn.execute(
        refused.group_by(AccessRefusal.status, AccessRefusal.outcome)
    ):
        counts[(int(status), str(outcome))] += int(n)
    return [(status, outcome, n) for (status, outcome), n in counts.items()]


REFUSAL_COLUMNS = (*_REFUSAL_KEY, "calls")


def export_refusals(
    conn: Connection, since: date, until: date | None = None
) -> Iterator[dict[str, Any]]:
    """Refused calls per client per minute on or after ``since`` (to ``until``), oldest
    first."""
    stmt = select(AccessRefusal).where(AccessRefusal.recorded_on >= since)
    if until is not None:
        stmt = stmt.where(AccessRefusal.recorded_on <= until)
    for r in conn.execute(stmt.order_by(AccessRefusal.minute)):
        row = {c: getattr(r, c) for c in REFUSAL_COLUMNS}
        row["minute"] = _iso(r.minute)
        yield row


def _since(moment: datetime | date) -> datetime:
    return utc(moment) if isinstance(moment, datetime) else utc(_day_start(moment))


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LONDON)


def export_audit(
    conn: Connection, since: date, until: date | None = None, chunk: int = 1000
) -> Iterator[dict[str, Any]]:
    """Evaluations recorded on or after ``since`` (and on or before ``until``), oldest first."""
    for events in _chunks(conn, AuditEvent, since, until, chunk):
        yield from _audit_rows(conn, events)


def _chunks(
    conn: Connection,
    model: type[AuditEvent] | type[AccessEvent],
    since: date,
    until: date | None,
    chunk: int,
) -> Iterator[Sequence[Any]]:
    """Rows of ``model`` recorded on the days given, oldest first, ``chunk`` at a time (keyset
    pagination: memory stays flat for any range)."""
    base = select(*model.__table__.columns).where(model.recorded_on >= since)
    if until is not None:
        base = base.where(model.recorded_on <= until)
    base = base.order_by(model.recorded_at, model.id).limit(chunk)
    stmt = base
    while True:
        rows = conn.execute(stmt).all()
        if not rows:
            return
        yield rows
        last = rows[-1]
        stmt = base.where(tuple_(model.recorded_at, model.id) > tuple_(last.recorded_at, last.id))


def _audit_rows(conn: Connection, events: Sequence[Any]) -> Iterator[dict[str, Any]]:
    ids = [e.id for e in events]
    criteria: dict[Any, list[str]] = defaultdict(list)
    for audit_id, cid, result in conn.execute(
        select(AuditCriterion.audit_id, AuditCriterion.criterion_id, AuditCriterion.result)
        .where(AuditCriterion.audit_id.in_(ids))
        .order_by(AuditCriterion.audit_id, AuditCriterion.criterion_id)
    ):
        criteria[audit_id].append(f"{cid}={result}")
    card_uuids: dict[Any, list[str]] = defaultdict(list)
    for audit_id, card in conn.execute(
        select(IssuedCard.audit_id, IssuedCard.card_uuid).where(IssuedCard.audit_id.in_(ids))
    ):
        card_uuids[audit_id].append(card)
    for e in events:
        yield {
            "recorded_at": _iso(e.recorded_at),
            "recorded_on": e.recorded_on.isoformat(),
            "service_id": e.service_id,
            "hook": e.hook,
            "hook_instance": e.hook_instance,
            "patient_hash": e.patient_hash,
            "outcome": e.outcome or "",
            "pathway": e.pathway or "",
            "policy_id": e.policy_id or "",
            "policy_version": e.policy_version or "",
            "card_uuids": " ".join(sorted(card_uuids[e.id])),
            "criteria": ";".join(criteria[e.id]),
            "prefetch_keys": " ".join(e.prefetch_keys or ()),
            "fetched_keys": " ".join(e.fetched_keys or ()),
            "fhir_requests": e.fhir_requests,
            "fetch_ms": "" if e.fetch_ms is None else e.fetch_ms,
            "total_ms": e.total_ms,
            "practice_code": e.practice_code or "",
            "place": e.place or UNKNOWN_PLACE,
        }


def export_feedback(
    conn: Connection, since: date, until: date | None = None
) -> Iterator[dict[str, Any]]:
    base = select(*Feedback.__table__.columns).where(Feedback.received_at >= _since(since))
    if until is not None:
        base = base.where(Feedback.received_at < _since(until + timedelta(days=1)))
    last_id = 0
    while True:
        rows = conn.execute(
            base.where(Feedback.id > last_id).order_by(Feedback.id).limit(1000)
        ).all()
        if not rows:
            return
        last_id = rows[-1].id
        yield from (_feedback_row(fb) for fb in rows)


def _feedback_row(fb: Any) -> dict[str, Any]:
    return {
        "received_at": _iso(fb.received_at),
        "outcome_at": _iso(fb.outcome_at),
        "service_id": fb.service_id,
        "card_uuid": fb.card_uuid,
        "outcome": fb.outcome,
        "accepted_suggestions": " ".join(fb.accepted_suggestions or ()),
        "reason_system": fb.reason_system or "",
        "reason_code": fb.reason_code or "",
        "reason_display": fb.reason_display or "",
        "user_comment": fb.user_comment or "",
        "user_comment_chars": fb.user_comment_chars or "",
    }


def _iso(moment: datetime) -> str:
    """Stored timestamps are UTC (SQLite returns them naive)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc(moment).isoformat(timespec="milliseconds")
