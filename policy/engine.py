"""Evaluate a loaded policy against a patient's facts (loading it is ``policy.loading``)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import cast

from facts.kept import Kept
from facts.model import PatientRecord
from policy.criteria import (
    HBA1C_RULES,
    JUDGEMENT_RULES,
    RULES,
    SELF_CONFIRMING_RULES,
    Context,
    CriterionSpec,
    confirmation_context,
    confirmation_result,
    hba1c_after_today,
    latest_confirmation,
)
from policy.decisive import (
    Logic,
    composites_resting_on,
    decided_by,
    decisive_unknowns,
    one_judgement_away,
)
from policy.expr import deciding_leaves, evaluate_expr, evaluate_values, expr_ids
from policy.loading import DerivedSpec, Policy
from policy.model import (
    CriterionResult,
    Decision,
    Evidence,
    Outcome,
    PathwayResult,
    Tri,
)

_DERIVED_REASON = {
    Tri.MET: "Met through: ",
    Tri.NOT_MET: "Not met: ",
    Tri.UNKNOWN: "Unknown until these are known: ",
}


def _derived_result(
    d: DerivedSpec, policy: Policy, results: Mapping[str, CriterionResult]
) -> CriterionResult:
    value = evaluate_expr(d.expression, results)
    leaves = list(dict.fromkeys(deciding_leaves(d.expression, value, results)))

    def label(cid: str, negated: bool) -> str:
        title = policy.title_of(cid)
        return f"{title}: {results[cid].result.value.replace('-', ' ')}" if negated else title

    names = "; ".join(label(i, n) for i, n in leaves)
    reason = f"{_DERIVED_REASON[value]}{names}."
    # A "not" branch cites what it rests on (e.g. the birth date).
    evidence = (
        _unique([e for cid, _ in leaves for e in results[cid].evidence]) if value is Tri.MET else ()
    )
    return CriterionResult(d.id, d.title, value, reason, evidence, confirmable=d.confirmable)


def _unique(evidence: list[Evidence]) -> tuple[Evidence, ...]:
    """``evidence`` without repeats, in order: linear however many results a record holds,
    and without hashing each Evidence whole (most differ in their record or summary, whose
    hashes Python keeps)."""
    out: list[Evidence] = []
    seen: dict[tuple[str, str], list[Evidence]] = {}
    for e in evidence:
        same = seen.get((e.ref, e.summary))
        if same is None:
            seen[(e.ref, e.summary)] = [e]
        elif e in same:
            continue
        else:
            same.append(e)
        out.append(e)
    return tuple(out)


def _without_ended_prescriptions(record: PatientRecord, today: date) -> PatientRecord:
    """The record without insulin orders whose validity period ended before ``today``.

    An order still marked active after its validity period is a record nobody closed, not a
    current prescription; it is named in the warnings so the card says it was not used.
    """
    ended = {
        o.ref: o.valid_until for o in record.insulin if o.valid_until and o.valid_until < today
    }
    if not ended:
        return record
    return replace(
        record,
        insulin=tuple(o for o in record.insulin if o.ref not in ended),
        warnings=record.warnings
        + tuple(
            f"{ref} not used: the insulin prescription's validity period ended on {end}."
            for ref, end in ended.items()
        ),
    )


def _current_prescriptions(record: PatientRecord, today: date) -> PatientRecord:
    """``_without_ended_prescriptions``, made once per record and day and kept with the
    record (None kept when it is the record itself), so every policy reads the same one."""
    key = (_CURRENT, today)
    found = record.memo.get(key, _CURRENT)
    if found is _CURRENT:
        current = _without_ended_prescriptions(record, today)
        found = record.memo[key] = None if current is record else current
    return record if found is None else cast(PatientRecord, found)


_CURRENT = "current prescriptions"


@dataclass(frozen=True)
class Assessment:
    """A policy read against one record: every criterion's result, each pathway's and the
    outcome. What a card explains (deciding criteria, decisive unknowns, the reason) is built
    from it by ``explain`` only for a decision that is shown or may speak."""

    policy: Policy
    record: PatientRecord  # without insulin orders whose validity period has ended
    ctx: Context
    results: dict[str, CriterionResult]
    pathways: tuple[PathwayResult, ...]
    outcome: Outcome
    chosen: PathwayResult | None


def evaluate(policy: Policy, record: PatientRecord, today: date) -> Decision:
    """The policy's decision for one patient on ``today`` (a date in Europe/London).

    Pure: no I/O, no clock. Every criterion is evaluated (the card shows them all);
    a clinician's confirmation, where recorded, decides its criterion.
    """
    return explain(assess(policy, record, today))


def assess(policy: Policy, record: PatientRecord, today: date) -> Assessment:
    """Every criterion, pathway and the outcome of ``policy`` for ``record`` on ``today``; a
    patient recorded as deceased is not assessed (no pathway, not enough information)."""
    record = _current_prescriptions(record, today)
    ctx = Context(
        today=today,
        hba1c_lookback_months=policy.hba1c_lookback_months,
        confirmation_valid_months=policy.confirmation_valid_months,
        hba1c_plausible_mmol_mol=policy.hba1c_plausible_mmol_mol,
    )
    results: dict[str, CriterionResult] = {}
    # A criterion several policies include is read once for the record on the day: by the
    # day and how long a confirmation counts, and for a rule that reads HbA1c results also by
    # the policy's lookback and plausible range (the rest of the context).
    memo = record.memo
    kept = memo.setdefault((_CRITERIA, ctx.today, ctx.confirmation_valid_months), {})
    kept_hba1c = memo.setdefault((_CRITERIA, ctx), {})
    for spec in policy.criteria:
        where = kept_hba1c if spec.rule in HBA1C_RULES else kept
        found = where.get(spec.key)
        if found is None:
            found = where[spec.key] = _criterion(spec, record, ctx)
        results[spec.id] = found
    for d in policy.derived:
        # Shared too, when another policy derives it alike from the same results.
        key, ids = _derived_key(policy, d)
        parts = tuple([results[i] for i in ids])
        done = kept.get(key)
        if done is not None and all(a is b for a, b in zip(done[0], parts, strict=True)):
            results[d.id] = done[1]
            continue
        if record.confirmations:
            found = _derived_result(d, policy, results)
            found = _ignoring_confirmation(found, record, ctx, d.confirmable)
        else:
            found = _derived_alone(d, policy, results, key, parts)
        kept[key] = (parts, found)
        results[d.id] = found
    if record.deceased:
        return Assessment(policy, record, ctx, results, (), Outcome.INSUFFICIENT, None)
    pathways = tuple(
        PathwayResult(
            p.id,
            p.title,
            evaluate_expr(p.expression, results),
            p.criteria,
            p.diagnosis,
        )
        for p in policy.pathways
    )
    outcome, chosen = _outcome(pathways, results)
    return Assessment(policy, record, ctx, results, pathways, outcome, chosen)


_CRITERIA = "criteria"  # ``assess``'s results kept with the record, by context

# Each derived criterion's key (what its result is made of besides its parts' results: its id,
# title, confirmability, expression and the titles it names) and the ids of its parts, by
# the id of its spec, which the entry keeps along with its policy.
_DERIVED_KEYS: Kept[int, tuple[Policy, DerivedSpec, str, tuple[str, ...]]] = Kept(4096)


def _derived_key(policy: Policy, d: DerivedSpec) -> tuple[str, tuple[str, ...]]:
    found = _DERIVED_KEYS.get(id(d))
    if found is None or found[0] is not policy or found[1] is not d:
        ids = tuple(dict.fromkeys(expr_ids(d.expression)))
        words = [d.id, d.title, d.confirmable, d.expression, [policy.title_of(i) for i in ids]]
        key = "derived " + json.dumps(words, sort_keys=True, default=repr)
        found = _DERIVED_KEYS.keep(id(d), (policy, d, key, ids))
    return found[2], found[3]


# Derived results that are not met, by their key and their parts' values: such a result (no
# evidence: only a met one cites its parts') follows from them alone. Immutable, so shared by
# every record, request and thread.
_DERIVED_BY_VALUES: Kept[tuple[str, tuple[Tri, ...]], CriterionResult] = Kept(4096)


def _derived_alone(
    d: DerivedSpec,
    policy: Policy,
    results: Mapping[str, CriterionResult],
    key: str,
    parts: tuple[CriterionResult, ...],
) -> CriterionResult:
    """``_derived_result`` for a record with no confirmations, made once for each combination
    of its parts' values when it is not met."""
    values = (key, tuple([p.result for p in parts]))
    found = _DERIVED_BY_VALUES.get(values)
    if found is None:
        found = _derived_result(d, policy, results)
        if found.result is not Tri.MET:
            _DERIVED_BY_VALUES.keep(values, found)
    return found


def _criterion(spec: CriterionSpec, record: PatientRecord, ctx: Context) -> CriterionResult:
    """One criterion's result: the record's, or a clinician's confirmation that decides it."""
    if not record.confirmations:  # most records: the rule's result is the criterion's
        return RULES[spec.rule](record, spec, ctx)
    confirmed = None
    if spec.confirmable and spec.rule not in SELF_CONFIRMING_RULES:
        confirmed = confirmation_result(record, spec, ctx)
    from_record = RULES[spec.rule](record, spec, ctx)
    if confirmed is not None:
        # The record's own evidence stays beside the confirmation that decides: a funding
        # panel reads what the clinician's judgement rests on (a needle phobia in 2021).
        return replace(
            confirmed,
            context=(*confirmed.context, *from_record.evidence, *from_record.context),
        )
    return _ignoring_confirmation(from_record, record, ctx, spec.confirmable)


def outcome_if_confirmed(
    assessed: Assessment, confirmed: PatientRecord, criteria: Collection[str]
) -> Outcome:
    """The outcome ``assess`` gives for ``confirmed``: the assessed record with ``criteria``
    (each unknown and confirmable) confirmed met by a clinician on the assessment's day.

    Only what those confirmations can change is read again. An unknown confirmable criterion
    has no valid confirmation (one would have decided it), so the new one decides it: met. A
    rule that weighs its own confirmation (``SELF_CONFIRMING_RULES``: an HbA1c part the
    confirmation cannot meet) is run again on ``confirmed``. The derived criteria and the
    pathways are then combined again over the three-valued results."""
    policy, ctx = assessed.policy, assessed.ctx
    if assessed.record.deceased:
        return Outcome.INSUFFICIENT
    values = {cid: r.result for cid, r in assessed.results.items()}
    record: PatientRecord | None = None
    for spec in policy.criteria:
        if spec.id not in criteria or not spec.confirmable:
            continue
        if spec.rule in SELF_CONFIRMING_RULES:
            record = record or _without_ended_prescriptions(confirmed, ctx.today)
            values[spec.id] = RULES[spec.rule](record, spec, ctx).result
        else:
            values[spec.id] = Tri.MET
    for d in policy.derived:
        values[d.id] = evaluate_values(d.expression, values)
    return outcome_of([evaluate_values(p.expression, values) for p in policy.pathways])


def explain(assessed: Assessment) -> Decision:
    """The decision as a card and the assessment app present it: the reason, the criteria
    that decided it, the unknowns that could change it, the judgements a clinician can
    record."""
    policy, record, ctx, results = assessed.policy, assessed.record, assessed.ctx, assessed.results
    today, pathways, outcome, chosen = (
        ctx.today,
        assessed.pathways,
        assessed.outcome,
        assessed.chosen,
    )
    if record.deceased:
        return _deceased_decision(policy, record, today, results)
    shown = _shown_criteria(policy, chosen, pathways)
    logic = Logic(
        derived={d.id: d.expression for d in policy.derived},
        pathways=[(r, p.expression) for r, p in zip(pathways, policy.pathways, strict=True)],
        outcome_of=outcome_of,
    )
    deciding = decided_by(logic, results, outcome, chosen)
    decisive = decisive_unknowns(logic, results, outcome)
    # A judgement a clinician can record now: one no record can show (a confirmation-only
    # criterion such as "MDI impractical"), or one the record already holds evidence for
    # (a needle phobia last recorded years ago, impaired awareness of hypoglycaemia). A
    # finding with nothing in the record (a pregnancy, a device in use) is a fact to record,
    # not a judgement.
    judgements = [
        c.id
        for c in policy.criteria
        if c.confirmable
        and (c.rule in JUDGEMENT_RULES or results[c.id].evidence or results[c.id].context)
    ]
    return Decision(
        policy=policy.info,
        outcome=outcome,
        pathway=chosen.id if chosen else None,
        reason=_reason(outcome, chosen, pathways, results, policy),
        criteria=results,
        pathways=pathways,
        evaluated_on=today,
        assumptions=policy.assumptions,
        warnings=record.warnings,
        not_theirs=record.not_theirs,
        policy_overdue=today > policy.info.review_due,
        shown_criteria=shown,
        notices=tuple(
            _notice(text, results[when])
            for when, text in policy.notices
            if results[when].result is Tri.MET
        ),
        decided_by=deciding,
        decisive=decisive,
        one_judgement_away=one_judgement_away(logic, results, outcome, judgements),
        meets_if_confirmed=one_judgement_away(
            logic, results, outcome, [c.id for c in policy.criteria if c.confirmable]
        ),
        composites=composites_resting_on(
            logic,
            results,
            [*(c for c in deciding if results[c].result is Tri.MET), *decisive],
            chosen,
        ),
        not_used=tuple(hba1c_after_today(record, ctx))
        if any(spec.rule in HBA1C_RULES for spec in policy.criteria)
        else (),
        withdrawn=tuple(w for w in record.withdrawn if w.criterion in results),
    )


def _notice(text: str, result: CriterionResult) -> str:
    """A notice's sentence with ``{evidence}`` naming what met its criterion ("Omnipod 5
    (hybrid closed loop) in use since 3 Mar 2025")."""
    named = result.evidence[0].summary if result.evidence else result.reason.rstrip(".")
    return text.replace("{evidence}", named)


def _ignoring_confirmation(
    result: CriterionResult, record: PatientRecord, ctx: Context, confirmable: bool
) -> CriterionResult:
    """A confirmation that does not decide the result is shown beside it with the reason: a
    criterion read from data is never confirmed, and a judgement's confirmation expires."""
    if confirmable:
        # Say so when the only confirmation there is has expired.
        old = latest_confirmation(record, result.id, ctx, expired_too=True)
        if old is None or latest_confirmation(record, result.id, ctx) is not None:
            return result
        why = f"it is older than {ctx.confirmation_valid_months} months"
        return replace(result, context=(*result.context, confirmation_context(old, why)))
    c = latest_confirmation(record, result.id, ctx)
    if c is None:
        return result
    note = confirmation_context(c, "this criterion is read from the record, not confirmed")
    return replace(result, context=(*result.context, note))


def _deceased_decision(
    policy: Policy, record: PatientRecord, today: date, results: dict[str, CriterionResult]
) -> Decision:
    """A patient recorded as deceased: no eligibility is assessed, and the outcome never meets.

    A recorded death that cannot be true as recorded (a date of death after today) leaves
    whether the patient is alive *unknown*: they may have died on another date. Such a patient
    is not assessed either — a card must never prompt a device for someone who may be dead —
    and the reason asks for the record to be corrected.
    """
    doubt = record.death_implausible_on(today)
    reason = (
        f"The patient is recorded as deceased, but {doubt}: not plausible, so whether the "
        "patient is alive is unknown. No eligibility is assessed until the record is corrected."
        if doubt
        else f"The patient is recorded as deceased ({record.deceased}): no eligibility is assessed."
    )
    return Decision(
        policy=policy.info,
        outcome=Outcome.INSUFFICIENT,
        pathway=None,
        reason=reason,
        criteria=results,
        pathways=(),
        evaluated_on=today,
        warnings=record.warnings,
        not_theirs=record.not_theirs,
        policy_overdue=today > policy.info.review_due,
        deceased=True,
        deceased_implausible=doubt,
    )


def outcome_of(pathways: Sequence[Tri]) -> Outcome:
    """Meets if any pathway is met; does not meet if all are not met; else insufficient."""
    return _OUTCOME_OF_ANY[Tri.any_of(pathways)]


_OUTCOME_OF_ANY = {
    Tri.MET: Outcome.MEETS,
    Tri.NOT_MET: Outcome.DOES_NOT_MEET,
    Tri.UNKNOWN: Outcome.INSUFFICIENT,
}


def _outcome(
    pathways: Sequence[PathwayResult], results: Mapping[str, CriterionResult]
) -> tuple[Outcome, PathwayResult | None]:
    """The outcome (``outcome_of``) and the pathway it names: the one that decided, or the
    most relevant: one whose diagnosis is recorded, preferring an undecided pathway over a
    failed one.
    """
    outcome = outcome_of([p.result for p in pathways])
    if outcome is Outcome.MEETS:
        return outcome, next(p for p in pathways if p.result is Tri.MET)

    def relevance(p: PathwayResult) -> tuple[bool, bool]:
        return (results[p.diagnosis].result is Tri.MET, p.result is Tri.UNKNOWN)

    ranked = sorted(pathways, key=relevance, reverse=True)
    best = ranked[0] if ranked and results[ranked[0].diagnosis].result is not Tri.NOT_MET else None
    if outcome is Outcome.DOES_NOT_MEET:
        return outcome, best
    undecided = [p for p in ranked if p.result is Tri.UNKNOWN]
    return Outcome.INSUFFICIENT, best if best in undecided else undecided[0]


def _shown_criteria(
    policy: Policy, chosen: PathwayResult | None, pathways: Sequence[PathwayResult]
) -> tuple[str, ...]:
    """Criteria in the order a clinician reads them: the deciding pathway's, or all diagnoses."""
    if chosen is None:
        return tuple(dict.fromkeys(p.diagnosis for p in pathways))
    derived_ids = {d.id: d for d in policy.derived}
    out: list[str] = []
    for cid in chosen.criteria:
        out.append(cid)
        if cid in derived_ids:
            out.extend(expr_ids(derived_ids[cid].expression))
    return tuple(dict.fromkeys(out))


def _reason(
    outcome: Outcome,
    chosen: PathwayResult | None,
    pathways: Sequence[PathwayResult],
    results: Mapping[str, CriterionResult],
    policy: Policy,
) -> str:
    if chosen is None:
        names = dict.fromkeys(policy.title_of(p.diagnosis).lower() for p in pathways)
        diagnoses = " or ".join(names)
        return f"Does not meet the criteria: no {diagnoses} diagnosis is recorded."
    ids = [i for i in chosen.criteria if i != chosen.diagnosis]
    diagnosis = results[chosen.diagnosis]
    if outcome is Outcome.INSUFFICIENT and diagnosis.result is Tri.UNKNOWN:
        return f"Not enough information: {diagnosis.reason}"
    if outcome is Outcome.MEETS:
        expression = next(p.expression for p in policy.pathways if p.id == chosen.id)
        leaves = deciding_leaves(expression, Tri.MET, results)
        met = [
            policy.title_of(i) + (": not met" if negated else "")
            for i, negated in dict.fromkeys(leaves)
            if i != chosen.diagnosis
        ]
        return f"Meets the {chosen.title} pathway: " + "; ".join(met) + "."
    if outcome is Outcome.DOES_NOT_MEET:
        failed = [policy.title_of(i) for i in ids if results[i].result is Tri.NOT_MET]
        return f"Does not meet the {chosen.title} pathway: not met — " + "; ".join(failed) + "."
    unknown = [policy.title_of(i) for i in ids if results[i].result is Tri.UNKNOWN]
    return (
        f"Not enough information for the {chosen.title} pathway: unknown — "
        + "; ".join(unknown)
        + "."
    )
