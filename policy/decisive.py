"""Which criteria decided an outcome, and which unknowns could still change it.

A card has room for a few lines: the criteria that gave the outcome and the unknowns whose
answer matters. Both are computed here from the policy's own pathway expressions, so a card
never guesses at the logic it presents.

An unknown is *decisive* when evaluating the policy with it set to *met*, and again with it
set to *not met*, gives two different outcomes: its answer could change what the clinician is
told. For a type 2 patient with needle phobia recorded and no specialist recommendation yet,
only the recommendation is decisive; "MDI impractical" would change nothing either way. When
no single unknown can change it (the outcome waits on two answers at once), every unknown on a
pathway branch still open is decisive: each is part of an answer that could.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from policy.expr import Expr, deciding_leaves, evaluate_expr, evaluate_values, expr_ids
from policy.model import CriterionResult, Outcome, PathwayResult, Tri

# The outcome from the pathways' results alone (``policy.engine.outcome_of``).
OutcomeOf = Callable[[Sequence[Tri]], Outcome]


@dataclass(frozen=True)
class Logic:
    """The parts of a policy the what-if evaluation needs: expressions, in reading order."""

    derived: Mapping[str, Expr]  # derived criterion id → expression (earlier ones first)
    pathways: Sequence[tuple[PathwayResult, Expr]]
    outcome_of: OutcomeOf


def _outcome_with(logic: Logic, values: Mapping[str, Tri], cid: str, v: Tri) -> Outcome:
    """The outcome were ``cid``'s result ``v``: the derived criteria and pathways combined
    again over the three-valued results (the criteria themselves are not re-read)."""
    trial = dict(values)
    trial[cid] = v
    for did, expr in logic.derived.items():
        if did != cid:
            trial[did] = evaluate_values(expr, trial)
    return logic.outcome_of([evaluate_values(e, trial) for _, e in logic.pathways])


def _values(results: Mapping[str, CriterionResult]) -> dict[str, Tri]:
    return {cid: r.result for cid, r in results.items()}


def decisive_unknowns(
    logic: Logic, results: Mapping[str, CriterionResult], outcome: Outcome
) -> tuple[str, ...]:
    """Unknown criteria whose answer could change ``outcome``, in the policy's reading order.

    Only criteria read from the record (not derived ones) are candidates: a derived criterion
    is settled by its parts, and those are what a clinician can record.
    """
    if outcome is not Outcome.INSUFFICIENT:
        return ()  # a met or failed pathway stays so whatever an unknown turns out to be
    order = [i for _, e in logic.pathways for i in expr_ids(e)]
    for expr in logic.derived.values():
        order += expr_ids(expr)
    candidates = [
        cid
        for cid in dict.fromkeys(order)
        if cid not in logic.derived and results[cid].result is Tri.UNKNOWN
    ]
    values = _values(results)
    alone = tuple(
        cid
        for cid in candidates
        if _outcome_with(logic, values, cid, Tri.MET)
        is not _outcome_with(logic, values, cid, Tri.NOT_MET)
    )
    if alone:
        return alone
    # No one answer changes the outcome (a pathway needing two unknowns at once: an adult whose
    # HbA1c is unusable and who has no i-Port reason recorded yet). Each unknown on a branch
    # still open is then part of an answer that could, and a card must still say what is missing.
    still_open: set[str] = set()
    for p, e in logic.pathways:
        if p.result is Tri.UNKNOWN:
            still_open.update(_open_unknowns(logic, e, results))
    return tuple(cid for cid in candidates if cid in still_open)


def one_judgement_away(
    logic: Logic,
    results: Mapping[str, CriterionResult],
    outcome: Outcome,
    confirmable: Sequence[str],
) -> tuple[str, ...]:
    """The ``confirmable`` unknown criteria a clinician's confirmation of which would, on its
    own, make the outcome "meets": the patient is one clinician judgement away. Empty unless
    the outcome waits on information."""
    if outcome is not Outcome.INSUFFICIENT:
        return ()
    values = _values(results)
    return tuple(
        cid
        for cid in confirmable
        if cid not in logic.derived
        and results[cid].result is Tri.UNKNOWN
        and _outcome_with(logic, values, cid, Tri.MET) is Outcome.MEETS
    )


def _open_unknowns(logic: Logic, expr: Expr, results: Mapping[str, CriterionResult]) -> list[str]:
    """The unknown criteria on the unknown branches of ``expr``, derived ones opened."""
    out: list[str] = []
    for cid, _ in deciding_leaves(expr, Tri.UNKNOWN, results):
        inner = logic.derived.get(cid)
        out += [cid] if inner is None else _open_unknowns(logic, inner, results)
    return out


def decided_by(
    logic: Logic,
    results: Mapping[str, CriterionResult],
    outcome: Outcome,
    chosen: PathwayResult | None,
) -> tuple[str, ...]:
    """The criteria that gave the outcome, derived criteria opened into their own parts.

    Meets: the branch that met the pathway. Does not meet: what failed (every diagnosis when no
    pathway applies). Not enough information: what is already settled on the branches that
    can still be met (a child's age, not an HbA1c that only the adult route reads).
    """
    if chosen is None:
        return tuple(dict.fromkeys(p.diagnosis for p, _ in logic.pathways))
    expr = next(e for p, e in logic.pathways if p.id == chosen.id)
    if outcome is Outcome.INSUFFICIENT:
        return tuple(dict.fromkeys(_still_open(logic, expr, results)))
    value = Tri.MET if outcome is Outcome.MEETS else Tri.NOT_MET
    # A negated part that failed ("not aged 12 or over" for an adult) only says a route
    # did not apply: it is not why the outcome is what it is.
    ids = [i for i, neg in deciding_leaves(expr, value, results) if value is Tri.MET or not neg]
    out: list[str] = []
    for cid in dict.fromkeys(ids):
        inner = logic.derived.get(cid)
        if inner is None:
            out.append(cid)
        else:
            leaves = deciding_leaves(inner, results[cid].result, results)
            out += [i for i, neg in leaves if value is Tri.MET or not neg] or [cid]
    return tuple(dict.fromkeys(out))


def _still_open(logic: Logic, expr: Expr, results: Mapping[str, CriterionResult]) -> list[str]:
    """The settled criteria on the branches of ``expr`` that are not already failed."""
    value = evaluate_expr(expr, results)
    if value is Tri.NOT_MET:
        return []
    if isinstance(expr, str):
        inner = logic.derived.get(expr)
        if inner is not None:
            return _still_open(logic, inner, results)
        return [expr] if value is Tri.MET else []
    ((op, arg),) = expr.items()
    if op == "not":  # met because its part failed ("under 12"): that part is what is settled
        return (
            [i for i, _ in deciding_leaves(arg, Tri.NOT_MET, results)] if value is Tri.MET else []
        )
    out: list[str] = []
    for e in arg:
        if op == "any" and value is Tri.UNKNOWN and evaluate_expr(e, results) is Tri.NOT_MET:
            # An alternative already failed is settled too: it is why the others are asked
            # about (an HbA1c that has not remained high leaves disabling hypoglycaemia).
            out += _failed(logic, e, results)
        else:
            out += _still_open(logic, e, results)
    return out


def _failed(logic: Logic, expr: Expr, results: Mapping[str, CriterionResult]) -> list[str]:
    """The criteria that make ``expr`` not met, derived ones opened; not a negated part (an
    adult's age is not why the under-12 route failed to help)."""
    out: list[str] = []
    for cid, negated in deciding_leaves(expr, Tri.NOT_MET, results):
        if negated:
            continue
        inner = logic.derived.get(cid)
        out += [cid] if inner is None else (_failed(logic, inner, results) or [cid])
    return out


def composites_resting_on(
    logic: Logic,
    results: Mapping[str, CriterionResult],
    ids: Sequence[str],
    chosen: PathwayResult | None,
) -> tuple[str, ...]:
    """The derived criteria on the chosen pathway that hold one of ``ids`` (the criteria the
    outcome rests on: those that decided it by being met, and the decisive unknowns) and have
    not failed.

    A composite can carry a clause of its own that none of its parts reads ("despite best
    possible management with at least 1 of" CSII or CGM): the card states it whenever the
    outcome rests on one of the parts.
    """
    if chosen is None:
        return ()
    expr = next(e for p, e in logic.pathways if p.id == chosen.id)

    opened: dict[str, set[str]] = {}  # each criterion's parts, opened once

    def parts(cid: str) -> set[str]:
        found = opened.get(cid)
        if found is None:
            inner = logic.derived.get(cid)
            found = opened[cid] = (
                {cid} if inner is None else {cid}.union(*(parts(i) for i in expr_ids(inner)))
            )
        return found

    on_path = set().union(*(parts(i) for i in expr_ids(expr)))
    wanted = set(ids)
    return tuple(
        did
        for did in logic.derived
        if did in on_path and results[did].result is not Tri.NOT_MET and parts(did) & wanted
    )
