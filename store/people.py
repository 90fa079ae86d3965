"""Commissioners' figures in SQL: people (not calls), places, evaluation trend, feedback split
by whether the card offered anything to accept, blocking criteria with their denominators, and
the rows of the self-service export.

Every function takes an open ``Connection`` and returns plain rows; shaping them for the page
(names, percentages, bins) is the web layer's job. Portable SQL (SQLite ≥ 3.25 and PostgreSQL):
window functions and ``json_array_length`` exist on both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, case, func, select

from store.models import AuditCriterion, AuditEvent, Feedback, IssuedCard
from store.repository import UNKNOWN_PLACE, Filter, _events, _feedback, day_outcome_counts

MEETS = "meets-criteria"


def _place() -> Any:
    return func.coalesce(AuditEvent.place, UNKNOWN_PLACE)


@dataclass(frozen=True)
class PeopleRow:
    """People whose latest evaluation (of one policy, in the filter) had this result."""

    policy_id: str
    pathway: str | None
    outcome: str
    place: str
    people: int


def latest_outcomes(conn: Connection, f: Filter) -> list[PeopleRow]:
    """Each person's latest decided evaluation per policy, counted by policy × pathway ×
    outcome × place. A person evaluated 20 times counts once, with their latest result."""
    ranked = _events(
        f,
        select(
            AuditEvent.policy_id,
            AuditEvent.pathway,
            AuditEvent.outcome,
            _place().label("place"),
            func.row_number()
            .over(
                partition_by=(AuditEvent.patient_hash, AuditEvent.policy_id),
                order_by=(AuditEvent.recorded_at.desc(), AuditEvent.id.desc()),
            )
            .label("rank"),
        ).where(AuditEvent.outcome.is_not(None), AuditEvent.policy_id.is_not(None)),
    ).subquery()
    rows = conn.execute(
        select(ranked.c.policy_id, ranked.c.pathway, ranked.c.outcome, ranked.c.place, func.count())
        .where(ranked.c.rank == 1)
        .group_by(ranked.c.policy_id, ranked.c.pathway, ranked.c.outcome, ranked.c.place)
        .order_by(ranked.c.policy_id, ranked.c.pathway, ranked.c.outcome, ranked.c.place)
    )
    return [
        PeopleRow(str(p), None if pw is None else str(pw), str(o), str(pl), int(str(n)))
        for p, pw, o, pl, n in rows
    ]


def people_assessed(conn: Connection, f: Filter) -> int:
    """Distinct people (patient hash) with at least one decided evaluation in the filter."""
    return int(
        conn.execute(
            _events(
                f,
                select(func.count(func.distinct(AuditEvent.patient_hash))).where(
                    AuditEvent.outcome.is_not(None)
                ),
            )
        ).scalar_one()
    )


def evaluations_by_place(conn: Connection, f: Filter) -> dict[str, dict[str, int]]:
    """Evaluations (calls) per place and outcome."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    place = _place()
    for pl, outcome, n in conn.execute(
        _events(
            f,
            select(place, AuditEvent.outcome, func.count()).where(AuditEvent.outcome.is_not(None)),
        ).group_by(place, AuditEvent.outcome)
    ):
        out[str(pl)][str(outcome)] = int(str(n))
    return dict(out)


def evaluations_per_day(conn: Connection, f: Filter) -> dict[date, dict[str, int]]:
    """Evaluations per Europe/London day and outcome (``no-decision`` for order hooks with no
    i-Port draft), and ``cards`` issued that day."""
    out: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, outcome, n, n_cards in day_outcome_counts(conn, f):
        out[day][outcome or "no-decision"] += int(n)
        out[day]["cards"] += int(n_cards)
    return {d: dict(v) for d, v in out.items()}


def feedback_by_offer(conn: Connection, f: Filter) -> dict[bool, dict[str, int]]:
    """Feedback outcomes split by whether the card offered suggestions: a card with nothing
    to accept can only be overridden (or left alone), so it has no acceptance to count."""
    offered = func.json_array_length(IssuedCard.suggestion_uuids) > 0
    out: dict[bool, dict[str, int]] = {True: {}, False: {}}
    for has, outcome, n in conn.execute(
        _feedback(
            f,
            select(offered, Feedback.outcome, func.count())
            .select_from(Feedback)
            .join(IssuedCard, IssuedCard.card_uuid == Feedback.card_uuid),
        ).group_by(offered, Feedback.outcome)
    ):
        out[bool(has)][str(outcome)] = int(str(n))
    return out


@dataclass(frozen=True)
class BlockingRow:
    """One criterion of one policy: evaluations where the deciding pathway read it, and of
    those, how many did not reach 'meets' with this criterion not met or unknown."""

    policy_id: str
    criterion_id: str
    evaluations: int
    not_met: int
    unknown: int


def blocking(conn: Connection, f: Filter) -> list[BlockingRow]:
    blocked = AuditEvent.outcome != MEETS
    rows = conn.execute(
        _events(
            f,
            select(
                AuditEvent.policy_id,
                AuditCriterion.criterion_id,
                func.count(),
                func.sum(case((blocked & (AuditCriterion.result == "not-met"), 1), else_=0)),
                func.sum(case((blocked & (AuditCriterion.result == "unknown"), 1), else_=0)),
            )
            .select_from(AuditCriterion)
            .join(AuditEvent, AuditEvent.id == AuditCriterion.audit_id)
            .where(AuditEvent.outcome.is_not(None), AuditCriterion.on_pathway.is_(True)),
        ).group_by(AuditEvent.policy_id, AuditCriterion.criterion_id)
    )
    return [
        BlockingRow(str(p), str(c), int(str(n)), int(str(nm or 0)), int(str(u or 0)))
        for p, c, n, nm, u in rows
    ]


# -- the self-service export ------------------------------------------------------------------
def export_evaluations(conn: Connection, f: Filter, chunk: int = 1000) -> Iterator[dict[str, Any]]:
    """Evaluations in the filter, oldest first, each with ``criteria`` {id: result}; read
    ``chunk`` at a time (keyset pagination: memory stays flat)."""
    cols = (
        AuditEvent.id,
        AuditEvent.recorded_at,
        AuditEvent.service_id,
        AuditEvent.hook,
        AuditEvent.patient_hash,
        AuditEvent.outcome,
        AuditEvent.pathway,
        AuditEvent.policy_id,
        AuditEvent.policy_version,
        AuditEvent.practice_code,
        _place().label("place"),
        AuditEvent.card_count,
    )
    base = _events(f, select(*cols)).order_by(AuditEvent.recorded_at, AuditEvent.id).limit(chunk)
    stmt = base
    while True:
        events = conn.execute(stmt).all()
        if not events:
            return
        criteria: dict[Any, dict[str, str]] = defaultdict(dict)
        for audit_id, cid, result in conn.execute(
            select(
                AuditCriterion.audit_id, AuditCriterion.criterion_id, AuditCriterion.result
            ).where(AuditCriterion.audit_id.in_([e.id for e in events]))
        ):
            criteria[audit_id][cid] = result
        for e in events:
            yield {**e._asdict(), "criteria": criteria[e.id]}
        last = events[-1]
        stmt = base.where(
            (AuditEvent.recorded_at > last.recorded_at)
            | ((AuditEvent.recorded_at == last.recorded_at) & (AuditEvent.id > last.id))
        )


def export_feedback(conn: Connection, f: Filter, chunk: int = 1000) -> Iterator[dict[str, Any]]:
    """Feedback items in the filter joined to the card they are about: its outcome, policy,
    pathway, place, and which criterion each accepted suggestion confirms."""
    cols: Sequence[Any] = (
        Feedback.id,
        Feedback.outcome_at,
        Feedback.received_at,
        Feedback.service_id,
        Feedback.outcome,
        Feedback.accepted_suggestions,
        Feedback.reason_code,
        Feedback.reason_display,
        Feedback.user_comment,
        Feedback.user_comment_chars,
        IssuedCard.suggestion_criteria,
        AuditEvent.outcome.label("card_outcome"),
        AuditEvent.policy_id,
        AuditEvent.policy_version,
        AuditEvent.pathway,
        _place().label("place"),
    )
    base = _feedback(
        f,
        select(*cols)
        .select_from(Feedback)
        .join(IssuedCard, IssuedCard.card_uuid == Feedback.card_uuid)
        .join(AuditEvent, AuditEvent.id == IssuedCard.audit_id),
    )
    last_id = 0
    while True:
        rows = conn.execute(
            base.where(Feedback.id > last_id).order_by(Feedback.id).limit(chunk)
        ).all()
        if not rows:
            return
        last_id = rows[-1].id
        for r in rows:
            named = r.suggestion_criteria or {}
            yield {
                **r._asdict(),
                "accepted_criteria": [
                    named.get(s, "unknown") for s in r.accepted_suggestions or ()
                ],
            }
