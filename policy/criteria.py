"""Named rules: each reads a ``PatientRecord`` and returns met / not met / unknown with evidence.

A policy file binds criterion ids to these rules and their parameters; the rules know no
policy. Absence of a finding-type record is *unknown* (it may be recorded elsewhere), never
*not met*; only absence of a diagnosis is *not met*.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from facts.model import Finding, HbA1cResult, InsulinOrder, PatientRecord
from policy.model import CriterionResult, Evidence, Tri


@dataclass(frozen=True)
class CriterionSpec:
    id: str
    title: str
    rule: str
    params: Mapping[str, Any]
    confirmable: bool = True
    policy_text: str = ""


@dataclass(frozen=True)
class Context:
    today: date
    hba1c_lookback_months: int


Rule = Callable[[PatientRecord, CriterionSpec, Context], CriterionResult]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return register


# -- helpers -------------------------------------------------------------------------------------
def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (clamped to the month's last day)."""
    year, m0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, m0 + 1, min(day.day, calendar.monthrange(year, m0 + 1)[1]))


def _fmt(d: date | None) -> str:
    return d.isoformat() if d else "undated"


def finding_evidence(f: Finding) -> Evidence:
    how = f"matched by term '{f.matched_on}'" if f.matched_by == "term" else f.matched_on
    return Evidence(
        f.ref, f"{f.display or f.value_set} ({how}), {_fmt(f.date)}", f.date, f.matched_by
    )


def hba1c_evidence(h: HbA1cResult) -> Evidence:
    shown = (
        f"{h.original}"
        if h.original.endswith("mmol/mol")
        else f"{h.original} = {h.mmol_mol:g} mmol/mol"
    )
    return Evidence(h.ref, f"HbA1c {shown} on {h.date.isoformat()}", h.date)


def insulin_evidence(o: InsulinOrder) -> Evidence:
    per_day = (
        "frequency not stated" if o.injections_per_day is None else f"{o.injections_per_day:g}/day"
    )
    how = ", matched by term" if o.matched_by == "term" else ""
    return Evidence(o.ref, f"{o.display} ({o.action}, {per_day}{how})", o.date, o.matched_by)


def _recent(findings: tuple[Finding, ...], since: date | None, today: date) -> list[Finding]:
    """Findings dated within [since, today]; undated findings count only when no window is set."""
    if since is None:
        return [f for f in findings if f.date is None or f.date <= today]
    return [f for f in findings if f.date is not None and since <= f.date <= today]


def _window(params: Mapping[str, Any], key: str, today: date) -> date | None:
    months = params.get(key)
    return months_before(today, int(months)) if months is not None else None


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def latest_hba1c(record: PatientRecord, ctx: Context) -> HbA1cResult | None:
    """The most recent HbA1c within the lookback; results after today are ignored."""
    since = months_before(ctx.today, ctx.hba1c_lookback_months)
    usable = [h for h in record.hba1c if since <= h.date <= ctx.today]
    return max(usable, key=lambda h: (h.date, h.at or _EARLIEST, h.ref)) if usable else None


def _latest_or_unknown(
    record: PatientRecord, spec: CriterionSpec, ctx: Context
) -> HbA1cResult | CriterionResult:
    """The latest usable HbA1c, or the *unknown* result that says why there is none to use.

    An unreadable result newer than every readable one blocks the older ones: the newest
    result is the one the policy reads, and it cannot be read.
    """
    latest = latest_hba1c(record, ctx)
    since = months_before(ctx.today, ctx.hba1c_lookback_months)
    newer_unusable = sorted(
        (d, ref)
        for ref, d in record.hba1c_unusable
        if since <= d <= ctx.today and (latest is None or d > latest.date)
    )
    if newer_unusable:
        d, ref = newer_unusable[-1]
        return _result(
            spec,
            Tri.UNKNOWN,
            f"The newest HbA1c ({ref}, {d.isoformat()}) could not be read; an older result "
            "must not decide.",
            missing="a readable HbA1c result",
        )
    if latest is None:
        return _result(
            spec,
            Tri.UNKNOWN,
            f"No HbA1c result in the last {ctx.hba1c_lookback_months} months.",
            missing="an HbA1c result",
        )
    return latest


_SYMBOL = {">=": "≥", ">": ">"}


def _compare(value: float, op: str, threshold: float) -> bool:
    if op == ">=":
        return value >= threshold
    if op == ">":
        return value > threshold
    raise ValueError(f"unsupported comparison {op!r}")


def insulin_injections(record: PatientRecord) -> tuple[float, bool, list[Evidence], str]:
    """Insulin injections a day over active prescriptions: (known total, some unknown, evidence,
    how it was counted).

    Each *kind* of insulin counts once, at its highest stated frequency: the same product
    issued twice, or two products of the same action (two basal insulins are a switch or a
    duplicate, not two regimens). A kind whose every prescription states no frequency makes the
    total uncertain; the known part can still reach a threshold, never exceed the truth.
    """
    known: dict[str, InsulinOrder] = {}
    unstated: dict[str, InsulinOrder] = {}
    for o in record.insulin:
        kind = o.action if o.action != "unknown" else o.product
        if o.injections_per_day is None:
            unstated.setdefault(kind, o)
            continue
        best = known.get(kind)
        if best is None or (best.injections_per_day or 0) < o.injections_per_day:
            known[kind] = o
    unstated = {k: o for k, o in unstated.items() if k not in known}
    evidence = [insulin_evidence(o) for o in [*known.values(), *unstated.values()]]
    total = sum(o.injections_per_day or 0 for o in known.values())
    parts = " + ".join(f"{o.injections_per_day:g}" for o in known.values())
    how = f"{parts} = {total:g}/day" if len(known) > 1 else f"{total:g}/day"
    if unstated:
        how = f"known {how}; {len(unstated)} prescription(s) state no frequency"
    return total, bool(unstated), evidence, how


def _injections_at_least(record: PatientRecord, minimum: float) -> tuple[Tri, list[Evidence], str]:
    if not record.insulin:
        return (
            Tri.UNKNOWN,
            [],
            "no active insulin prescription in the record (it may be prescribed elsewhere)",
        )
    total, some_unstated, evidence, how = insulin_injections(record)
    if total >= minimum:
        return Tri.MET, evidence, how
    return (Tri.UNKNOWN if some_unstated else Tri.NOT_MET), evidence, how


def _result(spec: CriterionSpec, result: Tri, reason: str, **kw: Any) -> CriterionResult:
    return CriterionResult(spec.id, spec.title, result, reason, confirmable=spec.confirmable, **kw)


# -- rules ---------------------------------------------------------------------------------------
def _recorded_or_not_met(
    record: PatientRecord, spec: CriterionSpec, ctx: Context, met: str, absent: str
) -> CriterionResult:
    """Met by any record in the value set (``met`` names the earliest); absence is *not met*."""
    found = _recent(record.findings_in(spec.params["valueSet"]), None, ctx.today)
    if spec.params.get("codedOnly"):
        found = [f for f in found if f.matched_by == "code"]
    excluded = tuple(f"{t}/" for t in spec.params.get("excludeResourceTypes", ()))
    found = [f for f in found if not f.ref.startswith(excluded)] if excluded else found
    if not found:
        return _result(spec, Tri.NOT_MET, absent)
    first = min(found, key=lambda f: (f.date or date.max, f.ref))
    what = f"{first.display or first.matched_on} ({_fmt(first.date)})"
    return _result(
        spec, Tri.MET, met.format(what=what), evidence=tuple(finding_evidence(f) for f in found)
    )


@rule("diagnosis")
def diagnosis(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Met by an active, not refuted diagnosis in the value set; absence is *not met*."""
    return _recorded_or_not_met(
        record,
        spec,
        ctx,
        f"{spec.title} is recorded: {{what}}.",
        f"No active {spec.title.lower()} diagnosis in the record.",
    )


@rule("age-at-least")
def age_at_least(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    years = int(spec.params["years"])
    b = record.birth_date
    if b is None:
        return _result(
            spec, Tri.UNKNOWN, "Date of birth is not in the record.", missing="date of birth"
        )

    def age(born: date) -> int:
        return (
            ctx.today.year - born.year - ((ctx.today.month, ctx.today.day) < (born.month, born.day))
        )

    youngest, oldest = age(b.latest), age(b.earliest)
    ev = (Evidence(record.patient_ref or "Patient", f"born {b.recorded}", b.earliest),)
    if youngest >= years:
        return _result(spec, Tri.MET, f"Aged {youngest} (born {b.recorded}).", evidence=ev)
    if oldest < years:
        return _result(
            spec, Tri.NOT_MET, f"Aged {oldest} (born {b.recorded}): under {years}.", evidence=ev
        )
    return _result(
        spec,
        Tri.UNKNOWN,
        f"Birth date {b.recorded} is partial: age {youngest} or {oldest}.",
        evidence=ev,
        missing="full date of birth",
    )


@rule("finding")
def finding(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Met by a recorded finding (coded, or by clinical term); absence is *unknown*."""
    since = _window(spec.params, "lookbackMonths", ctx.today)
    found = _recent(record.findings_in(spec.params["valueSet"]), since, ctx.today)
    note = spec.params.get("note", "")
    if found:
        latest = max(found, key=lambda f: (f.date or date.min, f.ref))
        by_term = (
            " (matched by clinical term, not a code)"
            if all(f.matched_by == "term" for f in found)
            else ""
        )
        return _result(
            spec,
            Tri.MET,
            f"Recorded: {latest.display or latest.matched_on} ({_fmt(latest.date)})"
            f"{by_term}. {note}".strip(),
            evidence=tuple(finding_evidence(f) for f in found),
        )
    window = f" in the last {spec.params['lookbackMonths']} months" if since else ""
    return _result(
        spec,
        Tri.UNKNOWN,
        f"No record of {spec.title.lower()}{window}; absence is not evidence it is absent.",
        missing=f"a record of {spec.title.lower()}, or a clinician's confirmation",
    )


@rule("disabling-hypoglycaemia")
def disabling_hypoglycaemia(
    record: PatientRecord, spec: CriterionSpec, ctx: Context
) -> CriterionResult:
    """Met by a severe-hypoglycaemia / impaired-awareness record, or by repeated events.

    NICE: "repeated and unpredictable occurrence of hypoglycaemia that results in persistent
    anxiety about recurrence and is associated with a significant adverse effect on quality
    of life". One ordinary event is context, not evidence.
    """
    p = spec.params
    since = _window(p, "lookbackMonths", ctx.today)
    severe = _recent(record.findings_in(p["severeValueSet"]), since, ctx.today)
    events = _recent(record.findings_in(p["eventValueSet"]), since, ctx.today)
    min_events = int(p["minEvents"])
    window = f"in the last {p['lookbackMonths']} months" if since else "in the record"
    if severe:
        return _result(
            spec,
            Tri.MET,
            f"Severe hypoglycaemia or impaired awareness recorded {window}.",
            evidence=tuple(finding_evidence(f) for f in severe),
        )
    if len({(f.ref) for f in events}) >= min_events:
        return _result(
            spec,
            Tri.MET,
            f"{len(events)} hypoglycaemia records {window} "
            f"(at least {min_events} count as repeated).",
            evidence=tuple(finding_evidence(f) for f in events),
        )
    return _result(
        spec,
        Tri.UNKNOWN,
        f"No record of disabling hypoglycaemia {window}"
        + (f"; {len(events)} hypoglycaemia record(s), fewer than {min_events}." if events else "."),
        context=tuple(finding_evidence(f) for f in events),
        missing="a record of disabling hypoglycaemia, or a clinician's confirmation",
    )


@rule("hba1c-on-mdi")
def hba1c_on_mdi(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Latest HbA1c in the lookback at/above the threshold, and on multiple daily injections."""
    p = spec.params
    threshold, op, minimum = (
        float(p["threshold"]),
        str(p["comparison"]),
        float(p["minInjectionsPerDay"]),
    )
    latest = _latest_or_unknown(record, spec, ctx)
    if isinstance(latest, CriterionResult):
        return latest
    ev = [hba1c_evidence(latest)]
    if not _compare(latest.mmol_mol, op, threshold):
        return _result(
            spec,
            Tri.NOT_MET,
            f"Latest HbA1c {latest.mmol_mol:g} mmol/mol ({latest.date}) is below {threshold:g}.",
            evidence=tuple(ev),
        )
    on_mdi, insulin_ev, how = _injections_at_least(record, minimum)
    ev += insulin_ev
    head = (
        f"Latest HbA1c {latest.mmol_mol:g} mmol/mol ({latest.date}) is {_SYMBOL[op]} {threshold:g}"
    )
    if on_mdi is Tri.MET:
        return _result(spec, Tri.MET, f"{head}, on {how} insulin injections.", evidence=tuple(ev))
    if on_mdi is Tri.NOT_MET:
        return _result(
            spec,
            Tri.NOT_MET,
            f"{head}, but insulin is {how}: fewer than {minimum:g} injections a day.",
            evidence=tuple(ev),
        )
    return _result(
        spec,
        Tri.UNKNOWN,
        f"{head}; injections a day unknown: {how}.",
        evidence=tuple(ev),
        missing="insulin dosage with a stated frequency",
    )


@rule("hba1c-with-finding")
def hba1c_with_finding(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Latest HbA1c above the threshold *and* a documented finding (e.g. non-adherence)."""
    p = spec.params
    threshold, op = float(p["threshold"]), str(p["comparison"])
    latest = _latest_or_unknown(record, spec, ctx)
    if isinstance(latest, CriterionResult):
        return latest
    ev = [hba1c_evidence(latest)]
    if not _compare(latest.mmol_mol, op, threshold):
        return _result(
            spec,
            Tri.NOT_MET,
            f"Latest HbA1c {latest.mmol_mol:g} mmol/mol ({latest.date}) is not "
            f"{_SYMBOL[op]} {threshold:g}.",
            evidence=tuple(ev),
        )
    since = _window(p, "findingLookbackMonths", ctx.today)
    found = _recent(record.findings_in(p["valueSet"]), since, ctx.today)
    label = p.get("findingLabel", p["valueSet"])
    head = (
        f"Latest HbA1c {latest.mmol_mol:g} mmol/mol ({latest.date}) is {_SYMBOL[op]} {threshold:g}"
    )
    if found:
        ev += [finding_evidence(f) for f in found]
        return _result(spec, Tri.MET, f"{head}, and {label} is documented.", evidence=tuple(ev))
    return _result(
        spec,
        Tri.UNKNOWN,
        f"{head}, but no {label} is documented.",
        evidence=tuple(ev),
        missing=f"a record of {label}, or a clinician's confirmation",
    )


@rule("insulin-injections-at-least")
def insulin_injections_at_least(
    record: PatientRecord, spec: CriterionSpec, ctx: Context
) -> CriterionResult:
    minimum = float(spec.params["minInjectionsPerDay"])
    result, ev, how = _injections_at_least(record, minimum)
    if result is Tri.MET:
        reason = f"Active insulin: {how} injections."
    elif result is Tri.NOT_MET:
        reason = f"Active insulin is {how}: fewer than {minimum:g} injections a day."
    else:
        reason = f"Injections a day unknown: {how}."
    return _result(
        spec,
        result,
        reason,
        evidence=tuple(ev),
        missing=None if result is not Tri.UNKNOWN else "insulin dosage with a stated frequency",
    )


@rule("confirmation-only")
def confirmation_only(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Never read from coded data: only a clinician's confirmation decides it.

    Records in ``contextValueSet`` (e.g. a referral to a diabetologist) are shown as
    supporting context; they do not meet the criterion.
    """
    ctx_vs = spec.params.get("contextValueSet")
    context = tuple(finding_evidence(f) for f in record.findings_in(ctx_vs)) if ctx_vs else ()
    extra = f" Supporting context: {context[0].summary}." if context else ""
    return _result(
        spec,
        Tri.UNKNOWN,
        f"Needs a clinician's confirmation; it cannot be read from coded data.{extra}",
        context=context,
        missing="a clinician's confirmation",
    )


def confirmation_result(
    record: PatientRecord, spec: CriterionSpec, ctx: Context, valid_months: int | None
) -> CriterionResult | None:
    """The latest clinician confirmation of this criterion, if any; it overrides coded data."""
    since = months_before(ctx.today, valid_months) if valid_months else None
    mine = [
        c
        for c in record.confirmations
        if c.criterion == spec.id and c.date <= ctx.today and (since is None or c.date >= since)
    ]
    if not mine:
        return None
    c = max(mine, key=lambda c: (c.date, c.at or _EARLIEST, c.ref))
    who = c.performer or "a clinician"
    verdict = "met" if c.value else "not met"
    ev = Evidence(
        c.ref, f"confirmed {verdict} by {who} on {c.date.isoformat()}", c.date, "confirmation"
    )
    return _result(
        spec,
        Tri.MET if c.value else Tri.NOT_MET,
        f"{who} recorded on {c.date.isoformat()} that this is {verdict}.",
        evidence=(ev,),
    )


@rule("recorded")
def recorded(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Met by a record in the value set; absence is *not met* (e.g. no insulin pump recorded).

    For facts a record reliably holds when true (a pump is started and reviewed by a
    specialist service), unlike findings whose absence means little. ``codedOnly`` ignores
    term matches and ``excludeResourceTypes`` e.g. referrals: "referral for insulin pump
    assessment" is not a pump.
    """
    return _recorded_or_not_met(
        record, spec, ctx, "Recorded: {what}.", f"No record of {spec.title.lower()}."
    )
