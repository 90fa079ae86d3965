"""Named rules: each reads a ``PatientRecord`` and returns met / not met / unknown with evidence.

A policy file binds criterion ids to these rules and their parameters; the rules know no
policy. Absence of a finding-type record is *unknown* (it may be recorded elsewhere), never
*not met*; only absence of a diagnosis is *not met*.
"""

from __future__ import annotations

import calendar
import copy
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from facts.kept import Kept
from facts.model import (
    Confirmation,
    Finding,
    HbA1cResult,
    InsulinOrder,
    PatientRecord,
    TechnologyUse,
    age_on,
)
from policy.model import CriterionResult, Evidence, Tri
from policy.technology import SUPPLY_SOURCES, Reading, day_text, reading_of, what


@dataclass(frozen=True)
class CriterionSpec:
    id: str
    title: str
    rule: str
    params: Mapping[str, Any]
    confirmable: bool = True
    policy_text: tuple[str, ...] = ()  # the policy's words, as quoted (one or more places)
    # What a rule reads of its criterion (all but the policy's words, which no rule reads), as
    # one text: two specs with the same key are the same criterion, whose result for a record
    # on a day is the same in every policy that includes it.
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # The spec's parameters are its own copy: results are shared across requests under its
        # key (H15), so nothing that made the spec may change what the key stands for.
        object.__setattr__(self, "params", copy.deepcopy(dict(self.params)))
        fields = [self.id, self.title, self.rule, self.params, self.confirmable]
        object.__setattr__(self, "key", json.dumps(fields, sort_keys=True, default=repr))


@dataclass(frozen=True)
class Context:
    today: date
    hba1c_lookback_months: int
    confirmation_valid_months: int | None = 12
    hba1c_plausible_mmol_mol: tuple[float, float] = (20.0, 200.0)


Rule = Callable[[PatientRecord, CriterionSpec, Context], CriterionResult]
RULES: dict[str, Rule] = {}
# The parameter kinds a rule may declare (a trailing "?" marks one optional). A "value-set" or
# "value-sets" parameter names value sets the policy needs loaded.
PARAM_KINDS = frozenset(
    {"value-set", "value-sets", "int", "number", "bool", "text", "texts", "comparison"}
)
COMPARISONS = (">=", ">")
RULE_PARAMS: dict[str, dict[str, str]] = {}  # rule name -> parameter name -> kind
HBA1C_RULES: set[str] = set()  # rules that read HbA1c results (need hba1cLookbackMonths)


# Whether a record holds nothing a rule reads for a criterion: the rule's result then follows
# from the criterion alone (its title and parameters) and the policy's HbA1c lookback, not the
# record or the day.
Nothing = Callable[[PatientRecord, "CriterionSpec"], bool]


# The rules registered with ``nothing``: rule name -> (``nothing``, the rule as written).
NOTHING: dict[str, tuple[Nothing, Rule]] = {}


def rule(
    name: str, *, reads_hba1c: bool = False, nothing: Nothing | None = None, **params: str
) -> Callable[[Rule], Rule]:
    """Register a named rule with the parameters (and their kinds) a policy file may give it.
    ``nothing``: when the record holds nothing the rule reads (see ``Nothing``); its result
    for such a record is then made once per criterion and shared."""
    for kind in params.values():
        assert kind.rstrip("?") in PARAM_KINDS, kind

    def register(fn: Rule) -> Rule:
        RULES[name] = fn if nothing is None else _once_when(nothing, fn)
        if nothing is not None:
            NOTHING[name] = (nothing, fn)
        RULE_PARAMS[name] = dict(params)
        if reads_hba1c:
            HBA1C_RULES.add(name)
        return fn

    return register


# The results that follow from a criterion alone (``rule``'s ``nothing``), by criterion key and
# HbA1c lookback: most records hold nothing for most criteria ("no record of needle phobia").
# Immutable, so shared by every record, request and thread.
_FROM_SPEC: Kept[tuple[str, int], CriterionResult] = Kept(4096)


def _once_when(nothing: Nothing, fn: Rule) -> Rule:
    def run(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
        if not nothing(record, spec):
            return fn(record, spec, ctx)
        key = (spec.key, ctx.hba1c_lookback_months)
        found = _FROM_SPEC.get(key)
        return _FROM_SPEC.keep(key, fn(record, spec, ctx)) if found is None else found

    return run


# -- helpers -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)  # a run asks for a few (today, lookback) pairs, very often
def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (clamped to the month's last day)."""
    year, m0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, m0 + 1, min(day.day, calendar.monthrange(year, m0 + 1)[1]))


def _fmt(d: date | None) -> str:
    return d.isoformat() if d else "undated"


def _how(f: Finding) -> str:
    how = f"matched by term '{f.matched_on}'" if f.matched_by == "term" else f.matched_on
    return how if f.established else f"{how}; recorded as {f.tentative}"


def _product(f: Finding) -> str:
    """A prescribed product's name (a glucose sensor), which reasons quote."""
    return f.display if f.ref.startswith("MedicationRequest/") else ""


def finding_evidence(f: Finding) -> Evidence:
    return Evidence(
        f.ref,
        f"{f.display or f.value_set} ({_how(f)}), {_fmt(f.date)}",
        f.date,
        f.matched_by,
        _product(f),
    )


def hba1c_evidence(h: HbA1cResult) -> Evidence:
    shown = h.original if h.original.endswith("mmol/mol") else f"{h.original} = {h.mmol_text}"
    return Evidence(h.ref, f"HbA1c {shown} on {h.date.isoformat()}", h.date)


def insulin_evidence(o: InsulinOrder) -> Evidence:
    per_day = (
        "frequency not stated" if o.injections_per_day is None else f"{o.injections_per_day:g}/day"
    )
    how = ", matched by term" if o.matched_by == "term" else ""
    summary = f"{o.display} ({o.action}, {per_day}{how})"
    return Evidence(o.ref, summary, o.date, o.matched_by, o.display)


def before_birth(record: PatientRecord, ctx: Context, when: date | None) -> bool:
    """Whether ``when`` is before the patient's (plausible) date of birth: a record error.

    Evidence dated before birth cannot be about this patient as recorded, so it meets no
    criterion; a birth date that is itself implausible decides nothing here (the age criterion
    says so).
    """
    b = record.birth_date
    return (
        when is not None
        and b is not None
        and b.implausible_on(ctx.today) is None
        and when < b.earliest
    )


def before_birth_reason(record: PatientRecord, what: str, found: list[Finding]) -> str:
    """The reason a record of ``what`` dated before birth does not count."""
    first = min(f.date or date.max for f in found)
    born = record.birth_date.recorded if record.birth_date else "unknown"
    return (
        f"{what} is recorded on {first.isoformat()}, before the date of birth ({born}): "
        "dated before birth: check the record."
    )


def _recorded_by(findings: tuple[Finding, ...], today: date) -> list[Finding]:
    """Findings recorded by today (dated, or undated): for facts that do not go out of date."""
    return [f for f in findings if f.date is None or f.date <= today]


@dataclass(frozen=True)
class Currency:
    """Findings sorted by whether they are current: inside the window, older, or undated;
    and, apart, those recorded only as a query (unconfirmed, provisional, differential)."""

    current: list[Finding]
    stale: list[Finding]
    undated: list[Finding]
    months: int
    tentative: list[Finding] = field(default_factory=list)

    @property
    def not_current(self) -> list[Finding]:
        return [*self.stale, *self.undated, *self.tentative]


def currency(findings: tuple[Finding, ...], months: int, today: date) -> Currency:
    """A finding is current when its latest date is within ``months`` before ``today``.

    Records dated after today are neither current nor shown (a data error, not evidence).
    """
    since = months_before(today, months)
    if not findings:  # most criteria of most records
        return Currency([], [], [], months, [])
    established = [f for f in findings if f.established]
    return Currency(
        current=[f for f in established if f.date is not None and since <= f.date <= today],
        stale=[f for f in established if f.date is not None and f.date < since],
        undated=[f for f in established if f.date is None],
        months=months,
        tentative=[f for f in findings if not f.established and (f.date or today) <= today],
    )


def stale_evidence(f: Finding) -> Evidence:
    when = f"last recorded on {f.date.isoformat()}" if f.date else "undated"
    summary = f"{f.display or f.value_set} ({_how(f)}), {when}"
    return Evidence(f.ref, summary, f.date, f.matched_by, _product(f))


def _tentative_reason(found: list[Finding], what: str) -> str:
    statuses = " / ".join(sorted({f.tentative for f in found if f.tentative}))
    return (
        f"{what} is recorded only as {statuses} (its verification status): a query, not an "
        "established finding. A clinician may confirm it."
    )


def _not_current_reason(c: Currency, what: str) -> str:
    """Why records of ``what`` that exist do not count: too old, a query, or undated."""
    if c.tentative and not c.stale:
        return _tentative_reason(c.tentative, what)
    if c.stale:
        last = max(f.date for f in c.stale if f.date is not None)
        return (
            f"{what} last recorded on {last.isoformat()}, more than {c.months} months ago: "
            "not current evidence. A clinician may confirm it is still current."
        )
    return f"{what} is recorded without a date: an undated record is not enough on its own."


_EARLIEST = datetime.min.replace(tzinfo=UTC)


R = TypeVar("R")


def _kept(record: PatientRecord, ctx: Context, build: Callable[[PatientRecord, Context], R]) -> R:
    """``build(record, ctx)``, made once per record and reading of the HbA1c results (day,
    lookback, plausible range) and kept with the record: every HbA1c criterion of every
    policy reads the same results."""
    key = (build, ctx.today, ctx.hba1c_lookback_months, ctx.hba1c_plausible_mmol_mol)
    memo = record.memo
    found = memo.get(key, _NOT_KEPT)
    if found is _NOT_KEPT:
        found = memo[key] = build(record, ctx)
    return cast(R, found)


_NOT_KEPT = object()


def _in_lookback(record: PatientRecord, ctx: Context) -> list[HbA1cResult]:
    since = months_before(ctx.today, ctx.hba1c_lookback_months)
    return [h for h in record.hba1c if since <= h.date <= ctx.today]


def _plausible(h: HbA1cResult, ctx: Context) -> bool:
    low, high = ctx.hba1c_plausible_mmol_mol
    return low <= h.mmol_mol <= high


def _newest_first(results: list[HbA1cResult]) -> list[HbA1cResult]:
    return sorted(results, key=lambda h: (h.date, h.at or _EARLIEST, h.ref), reverse=True)


def _usable_newest_first(record: PatientRecord, ctx: Context) -> tuple[HbA1cResult, ...]:
    """The plausible results within the lookback, newest first (kept: ``_usable``)."""
    low, high = ctx.hba1c_plausible_mmol_mol
    return tuple(_newest_first([h for h in _in_lookback(record, ctx) if low <= h.mmol_mol <= high]))


def _usable(record: PatientRecord, ctx: Context) -> tuple[HbA1cResult, ...]:
    """The plausible HbA1c results within the lookback, newest first; results after today
    are ignored."""
    return _kept(record, ctx, _usable_newest_first)


def _evidence_of_usable(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    return tuple(hba1c_evidence(h) for h in _usable(record, ctx))


def _usable_evidence(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    """The evidence of each plausible result in the lookback, newest first."""
    return _kept(record, ctx, _evidence_of_usable)


def latest_hba1c(record: PatientRecord, ctx: Context) -> HbA1cResult | None:
    """The most recent plausible HbA1c within the lookback; results after today are ignored."""
    usable = _usable(record, ctx)
    return usable[0] if usable else None


def unused_evidence(ref: str, when: date, why: str, shown: str) -> Evidence:
    """An HbA1c result read and not used, named as recorded: "HbA1c 80 mmol/L (2026-10-15):
    unit 'mmol/L' not recognised (not mmol/mol or %), not used"."""
    value = f"HbA1c {shown}" if shown else "An HbA1c result"
    return Evidence(ref, f"{value} ({when.isoformat()}): {why}, not used", when)


def implausible_evidence(h: HbA1cResult) -> Evidence:
    return unused_evidence(h.ref, h.date, "implausible", h.original)


def _unusable_in_lookback_now(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    since = months_before(ctx.today, ctx.hba1c_lookback_months)
    out = [unused_evidence(u.ref, u.date, u.why, u.shown) for u in record.hba1c_unusable]
    out += [implausible_evidence(h) for h in record.hba1c if not _plausible(h, ctx)]
    return tuple(
        sorted(
            (e for e in out if e.date is not None and since <= e.date <= ctx.today),
            key=lambda e: (e.date or date.min, e.ref),
        )
    )


def _unusable_in_lookback(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    """Every result in the lookback that cannot be used (unreadable or implausible), oldest
    first."""
    return _kept(record, ctx, _unusable_in_lookback_now)


def _after_today(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    today = ctx.today
    dated = [(u.ref, u.date, u.shown) for u in record.hba1c_unusable if u.date > today]
    dated += [(h.ref, h.date, h.original) for h in record.hba1c if h.date > today]
    return tuple(
        unused_evidence(ref, d, "dated after today", shown)
        for ref, d, shown in sorted(dated, key=lambda x: (x[1], x[0]), reverse=True)
    )


def hba1c_after_today(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    """Results dated after today (a record error, never evidence), newest first."""
    return _kept(record, ctx, _after_today)


def _implausible_context_now(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    return (*_unusable_in_lookback(record, ctx), *hba1c_after_today(record, ctx))


def _implausible_context(record: PatientRecord, ctx: Context) -> tuple[Evidence, ...]:
    """What was read and not used: results in the lookback that cannot be used, and results
    dated after today."""
    return _kept(record, ctx, _implausible_context_now)


def _latest_or_unknown(
    record: PatientRecord, spec: CriterionSpec, ctx: Context
) -> HbA1cResult | CriterionResult:
    """The latest usable HbA1c, or the *unknown* result that says why there is none to use.

    An unreadable or implausible result newer than every usable one blocks the older ones:
    the newest result is the one the policy reads, and it cannot be used. The reason names
    the result not used, as recorded, so a clinician who sees it in the record knows why.
    """
    latest = latest_hba1c(record, ctx)
    newer_unusable = [
        e
        for e in _unusable_in_lookback(record, ctx)
        if latest is None or (e.date is not None and e.date > latest.date)
    ]
    context = _implausible_context(record, ctx)
    months = ctx.hba1c_lookback_months
    if newer_unusable:
        tail = (
            "it is the newest result, so an older one must not decide"
            if latest is not None
            else f"no usable HbA1c result in the last {months} months"
        )
        return _result(
            spec,
            Tri.UNKNOWN,
            f"{newer_unusable[-1].summary}; {tail}.",
            context=context,
            missing="a readable, plausible HbA1c result",
        )
    if latest is None:
        future = hba1c_after_today(record, ctx)
        named = f": {future[0].summary}" if future else ""
        return _result(
            spec,
            Tri.UNKNOWN,
            f"No {'usable ' if future else ''}HbA1c result in the last {months} months{named}.",
            context=context,
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


def compare_hba1c(h: HbA1cResult, op: str, threshold: float) -> Tri:
    """Whether the result is ``op threshold``: met or not met when every value the result
    allows agrees, *unknown* when they do not.

    A measured value decides; a censored one decides only in the direction it is certain:
    ">130" is ≥ 69, "<20" is not, ">60" may or may not be (the true value is anywhere above).
    """
    v = h.mmol_mol
    if h.bound == "":
        return Tri.MET if _compare(v, op, threshold) else Tri.NOT_MET
    if h.bound in (">", ">="):  # every value above v (or from v)
        certain = v > threshold if (h.bound, op) == (">=", ">") else v >= threshold
        return Tri.MET if certain else Tri.UNKNOWN
    # "<" or "<=": every value below v (or up to v)
    never = v < threshold if (h.bound, op) == ("<=", ">=") else v <= threshold
    return Tri.NOT_MET if never else Tri.UNKNOWN


def _beyond_range(h: HbA1cResult, op: str, threshold: float) -> str:
    """Why a censored result cannot decide: the values it allows lie either side."""
    return (
        f"HbA1c {h.mmol_text} ({h.date}) is beyond the analyser's range: it may or may not be "
        f"{_SYMBOL[op]} {threshold:g}"
    )


MEASURED = "a measured HbA1c value (not beyond the analyser's range)"


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


NO_INSULIN = "no active insulin prescription in the record (it may be prescribed elsewhere)"


def stopped_insulin(record: PatientRecord) -> Evidence | None:
    """The insulin most recently stopped, when no insulin is current: named so a clinician
    sees it was stopped on purpose. What settles such a criterion is never "a current
    insulin prescription": that would read as a prompt to restart what was stopped."""
    if record.insulin or not record.insulin_stopped:
        return None
    last = max(
        record.insulin_stopped,
        key=lambda s: (s.stopped or s.began or date.min, s.ref),
    )
    return Evidence(last.ref, last.said, last.stopped or last.began, product=last.display)


def _no_insulin(record: PatientRecord) -> str:
    """Why no insulin counts, in lower case: none in the record, or which was stopped."""
    stopped = stopped_insulin(record)
    return f"no active insulin prescription: {stopped.summary}" if stopped else NO_INSULIN


def _injections_at_least(record: PatientRecord, minimum: float) -> tuple[Tri, list[Evidence], str]:
    if not record.insulin:
        return Tri.UNKNOWN, [], _no_insulin(record)
    total, some_unstated, evidence, how = insulin_injections(record)
    if total >= minimum:
        return Tri.MET, evidence, how
    return (Tri.UNKNOWN if some_unstated else Tri.NOT_MET), evidence, how


def _on_mdi(record: PatientRecord, minimum: float) -> tuple[Tri, list[Evidence], str]:
    """NICE "multiple daily injections": a basal-bolus regimen, or ``minimum`` injections a day.

    Basal-bolus is an active basal (long- or intermediate-acting) insulin together with an
    active rapid- or short-acting one, whatever their stated frequency. Premixed insulin
    twice a day is not MDI. Unknown when a prescription's kind or frequency is not known and
    could change the answer.
    """
    if not record.insulin:
        return Tri.UNKNOWN, [], _no_insulin(record)
    basal = [o for o in record.insulin if o.action == "basal"]
    bolus = [o for o in record.insulin if o.action == "bolus"]
    if basal and bolus:
        evidence = [insulin_evidence(o) for o in (basal[0], bolus[0])]
        return (
            Tri.MET,
            evidence,
            f"basal-bolus: {basal[0].display} (basal) with {bolus[0].display} "
            "(rapid- or short-acting)",
        )
    total, some_unstated, evidence, how = insulin_injections(record)
    if total >= minimum:
        return Tri.MET, evidence, f"{how} insulin injections in all"
    products = {o.product for o in record.insulin}
    kind_unknown = any(o.action == "unknown" for o in record.insulin) and len(products) > 1
    if some_unstated or kind_unknown:
        why = "a prescription's frequency" if some_unstated else "an insulin's kind"
        return Tri.UNKNOWN, evidence, f"not shown to be basal-bolus, {how}; {why} is unknown"
    kinds = ", ".join(sorted({o.action for o in record.insulin}))
    return (
        Tri.NOT_MET,
        evidence,
        f"not basal-bolus ({kinds} insulin only) and {how}: fewer than {minimum:g} "
        "injections a day",
    )


def _result(spec: CriterionSpec, result: Tri, reason: str, **kw: Any) -> CriterionResult:
    return CriterionResult(spec.id, spec.title, result, reason, confirmable=spec.confirmable, **kw)


# -- what a record may hold nothing of (``rule``'s ``nothing``) ---------------------------------
def _no_finding(record: PatientRecord, spec: CriterionSpec) -> bool:
    return not record.findings_in(spec.params["valueSet"])


def _no_diagnosis(record: PatientRecord, spec: CriterionSpec) -> bool:
    """No diagnosis of either type, none in remission, no insulin, no unreadable Condition."""
    p = spec.params
    return (
        not any(record.findings_in(p[k]) for k in _DIAGNOSIS_SETS if p.get(k))
        and not record.insulin
        and "Condition" not in record.unreadable_types
    )


_DIAGNOSIS_SETS = ("valueSet", "otherTypeValueSet", "remissionValueSet")


def _no_hypoglycaemia(record: PatientRecord, spec: CriterionSpec) -> bool:
    p = spec.params
    return not record.findings_in(p["awarenessValueSet"]) and not any(
        record.findings_in(vs) for vs in p["eventValueSets"]
    )


def _no_hba1c(record: PatientRecord, spec: CriterionSpec) -> bool:
    """No HbA1c result, readable or not; no technology (a pump the HbA1c-on-MDI rule reads)
    and no confirmation (the one an HbA1c-with-finding criterion reads)."""
    return (
        not record.hba1c
        and not record.hba1c_unusable
        and not record.technology
        and not record.confirmations
    )


def _no_insulin_at_all(record: PatientRecord, spec: CriterionSpec) -> bool:
    return not record.insulin and not record.insulin_stopped


def _no_context(record: PatientRecord, spec: CriterionSpec) -> bool:
    ctx_vs = spec.params.get("contextValueSet")
    return not ctx_vs or not record.findings_in(ctx_vs)


def _no_technology(record: PatientRecord, spec: CriterionSpec) -> bool:
    """No record of the kind, and no device record set aside as not shown to be theirs."""
    return not record.technology_of(str(spec.params["kind"])) and not any(
        n.resource_type in DEVICE_RECORD_TYPES for n in record.not_theirs
    )


# -- rules ---------------------------------------------------------------------------------------
def _recorded_or_not_met(
    record: PatientRecord, spec: CriterionSpec, ctx: Context, met: str, absent: str
) -> CriterionResult:
    """Met by any record in the value set (``met`` names the earliest); absence is *not met*."""
    found = _recorded_by(record.findings_in(spec.params["valueSet"]), ctx.today)
    if spec.params.get("codedOnly"):
        found = [f for f in found if f.matched_by == "code"]
    excluded = tuple(f"{t}/" for t in spec.params.get("excludeResourceTypes", ()))
    found = [f for f in found if not f.ref.startswith(excluded)] if excluded else found
    prenatal = [f for f in found if before_birth(record, ctx, f.date)]
    found = [f for f in found if f not in prenatal]
    if not found and prenatal:
        return _result(
            spec,
            Tri.UNKNOWN,
            before_birth_reason(record, spec.title, prenatal),
            evidence=tuple(finding_evidence(f) for f in prenatal),
            missing=f"a correctly dated record of {spec.title.lower()}",
        )
    if not found:
        return _result(spec, Tri.NOT_MET, absent)
    first = min(found, key=lambda f: (f.date or date.max, f.ref))
    what = f"{first.display or first.matched_on} ({_fmt(first.date)})"
    return _result(
        spec, Tri.MET, met.format(what=what), evidence=tuple(finding_evidence(f) for f in found)
    )


def _diagnoses(
    record: PatientRecord, value_set: str, excluded: set[str], today: date
) -> list[Finding]:
    """Diagnosis records in ``value_set``: coded in any resource, by term only on a Condition
    (a problem-list entry; "type 2 diabetes review" on an encounter is not a diagnosis)."""
    return [
        f
        for f in _recorded_by(record.findings_in(value_set), today)
        if f.ref not in excluded and (f.matched_by == "code" or f.ref.startswith("Condition/"))
    ]


@rule(
    "diagnosis",
    nothing=_no_diagnosis,
    valueSet="value-set",
    otherTypeValueSet="value-set?",
    remissionValueSet="value-set?",
)
def diagnosis(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Met by an active, not refuted diagnosis in the value set; absence is *not met*.

    Records in ``remissionValueSet`` never count. When ``otherTypeValueSet`` (the other type
    of diabetes) is also recorded, the record contradicts itself: *unknown* until corrected.
    No diabetes diagnosis of either type but active insulin: the type is *unknown*.
    """
    p = spec.params
    remission = p.get("remissionValueSet")
    in_remission = list(record.findings_in(remission)) if remission else []
    excluded = {f.ref for f in in_remission}
    recorded = _diagnoses(record, p["valueSet"], excluded, ctx.today)
    prenatal = [f for f in recorded if before_birth(record, ctx, f.date)]
    recorded = [f for f in recorded if f not in prenatal]
    found = [f for f in recorded if f.established]
    tentative = [f for f in recorded if not f.established]
    other_set = p.get("otherTypeValueSet")
    # A possible diagnosis of the other type is enough to contradict: the laxer type 2 route
    # must not decide for someone who may have type 1.
    other = _diagnoses(record, other_set, excluded, ctx.today) if other_set else []
    context = tuple(stale_evidence(f) for f in in_remission)
    if found and other:
        return _result(
            spec,
            Tri.UNKNOWN,
            "Type 1 and type 2 diabetes are both recorded as active: the record contradicts "
            "itself and needs correcting before eligibility can be assessed.",
            evidence=tuple(finding_evidence(f) for f in [*found, *other]),
            missing="a corrected diabetes diagnosis (one type active, the other resolved or "
            "entered in error)",
        )
    if found:
        first = min(found, key=lambda f: (f.date or date.max, f.ref))
        by_term = " (matched by clinical term, not a code)" if first.matched_by == "term" else ""
        return _result(
            spec,
            Tri.MET,
            f"{spec.title} is recorded: {first.display or first.matched_on} "
            f"({_fmt(first.date)}){by_term}.",
            evidence=tuple(finding_evidence(f) for f in found),
            context=context,
        )
    if prenatal:  # a diagnosis before birth is a record error, not evidence either way
        return _result(
            spec,
            Tri.UNKNOWN,
            before_birth_reason(record, spec.title, prenatal),
            evidence=tuple(finding_evidence(f) for f in prenatal),
            context=context,
            missing=f"a correctly dated {spec.title.lower()} diagnosis",
        )
    if tentative:
        return _result(
            spec,
            Tri.UNKNOWN,
            _tentative_reason(tentative, spec.title).replace("finding", "diagnosis"),
            evidence=tuple(finding_evidence(f) for f in tentative),
            context=context,
            missing=f"a confirmed {spec.title.lower()} diagnosis",
        )
    if not other and record.insulin:
        return _result(
            spec,
            Tri.UNKNOWN,
            "No diabetes diagnosis is recorded, but insulin is prescribed: the type of "
            "diabetes is unknown.",
            context=tuple(insulin_evidence(o) for o in record.insulin) + context,
            missing="the diabetes diagnosis",
        )
    if "Condition" in record.unreadable_types:
        return _result(
            spec,
            Tri.UNKNOWN,
            f"No readable {spec.title.lower()} diagnosis, but a Condition in the record could "
            "not be read: it may be the diagnosis.",
            context=context,
            missing="a readable diagnosis record",
        )
    remission_note = " (a diagnosis in remission does not count)" if in_remission else ""
    return _result(
        spec,
        Tri.NOT_MET,
        f"No active {spec.title.lower()} diagnosis in the record{remission_note}.",
        context=context,
    )


@rule(
    "age-at-least",
    years="int",
)
def age_at_least(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    years = int(spec.params["years"])
    b = record.birth_date
    if b is None:
        return _result(
            spec, Tri.UNKNOWN, "Date of birth is not in the record.", missing="date of birth"
        )

    ev = (Evidence(record.patient_ref or "Patient", f"born {b.recorded}", b.earliest),)
    implausible = b.implausible_on(ctx.today)
    if implausible:  # a record error is not evidence of age, young or old
        return _result(
            spec,
            Tri.UNKNOWN,
            f"The {implausible}: not plausible, not used.",
            context=ev,
            missing="a correct date of birth",
        )
    youngest, oldest = age_on(b.latest, ctx.today), age_on(b.earliest, ctx.today)
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


@rule(
    "finding",
    nothing=_no_finding,
    valueSet="value-set",
    lookbackMonths="int",
    note="text?",
)
def finding(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Met by a current finding (coded, or by clinical term); an older or undated one, or none,
    is *unknown*: absence is not evidence of absence, and an old record is not evidence of now.
    """
    recorded = record.findings_in(spec.params["valueSet"])
    prenatal = [f for f in recorded if before_birth(record, ctx, f.date)]
    c = currency(
        tuple(f for f in recorded if f not in prenatal) if prenatal else recorded,
        int(spec.params["lookbackMonths"]),
        ctx.today,
    )
    note = spec.params.get("note", "")
    if c.current:
        latest = max(c.current, key=lambda f: (f.date or date.min, f.ref))
        by_term = (
            " (matched by clinical term, not a code)"
            if all(f.matched_by == "term" for f in c.current)
            else ""
        )
        return _result(
            spec,
            Tri.MET,
            f"Recorded: {latest.display or latest.matched_on} ({_fmt(latest.date)}, within "
            f"{c.months} months){by_term}. {note}".strip(),
            evidence=tuple(finding_evidence(f) for f in c.current),
        )
    if c.not_current:
        return _result(
            spec,
            Tri.UNKNOWN,
            _not_current_reason(c, spec.title),
            evidence=tuple(stale_evidence(f) for f in c.not_current),
            missing=f"a record of {spec.title.lower()} in the last {c.months} months, or a "
            "clinician's confirmation that it is still current",
        )
    if prenatal:
        return _result(
            spec,
            Tri.UNKNOWN,
            before_birth_reason(record, spec.title, prenatal),
            evidence=tuple(finding_evidence(f) for f in prenatal),
            missing=f"a correctly dated record of {spec.title.lower()}, or a clinician's "
            "confirmation",
        )
    return _result(
        spec,
        Tri.UNKNOWN,
        f"No record of {spec.title.lower()} in the last {c.months} months; absence is not "
        "evidence it is absent.",
        missing=f"a record of {spec.title.lower()}, or a clinician's confirmation",
    )


@rule(
    "disabling-hypoglycaemia",
    nothing=_no_hypoglycaemia,
    awarenessValueSet="value-set",
    eventValueSets="value-sets",
    minDays="int",
    lookbackMonths="int",
    recordsMeet="bool?",
    judgement="text",
    judgementMeans="text",
)
def disabling_hypoglycaemia(
    record: PatientRecord, spec: CriterionSpec, ctx: Context
) -> CriterionResult:
    """Repeated hypoglycaemia read from the record: a current record of impaired awareness of
    hypoglycaemia, or hypoglycaemia episodes on at least ``minDays`` distinct days within the
    window. With ``recordsMeet`` (default false) that meets the criterion; without it, it is
    the evidence for a clinician's judgement and the criterion stays *unknown* until confirmed.
    The words of that judgement are the policy's: ``judgement`` (e.g. "disabling") and
    ``judgementMeans``, what the policy says it means.

    NICE: "repeated and unpredictable occurrence of hypoglycaemia that results in persistent
    anxiety about recurrence and is associated with a significant adverse effect on quality
    of life" — the anxiety and the effect on quality of life are not in the record. Records of
    one day are one episode, whatever their type or severity: *unknown*, for a clinician to
    judge and confirm.
    """
    p = spec.params
    months = int(p["lookbackMonths"])
    records_meet = bool(p.get("recordsMeet", False))
    awareness = currency(record.findings_in(p["awarenessValueSet"]), months, ctx.today)
    if awareness.current:
        return _repeated(
            spec,
            records_meet,
            f"Impaired awareness of hypoglycaemia recorded in the last {months} months",
            tuple(finding_evidence(f) for f in awareness.current),
        )
    episodes: dict[str, Finding] = {}
    for vs in p["eventValueSets"]:
        for f in record.findings_in(vs):
            episodes.setdefault(f.ref, f)
    events = currency(tuple(episodes.values()), months, ctx.today)
    days = sorted({f.date for f in events.current if f.date is not None})
    min_days = int(p["minDays"])
    event_ev = tuple(finding_evidence(f) for f in events.current)
    if len(days) >= min_days:
        return _repeated(
            spec,
            records_meet,
            f"Hypoglycaemia recorded on {len(days)} different days in the last {months} months "
            f"(episodes on at least {min_days} days count as repeated)",
            event_ev,
        )
    parts = []
    if days:
        parts.append(
            f"Hypoglycaemia recorded on {len(days)} day ({days[0].isoformat()}) in the last "
            f"{months} months: one episode is not 'repeated'; a clinician may judge it "
            f"{p['judgement']} and confirm."
        )
    else:
        parts.append(f"No record of {spec.title.lower()} in the last {months} months.")
    if awareness.not_current:
        parts.append(_not_current_reason(awareness, "Impaired awareness of hypoglycaemia"))
    elif events.stale:
        parts.append(_not_current_reason(events, "Hypoglycaemia"))
    return _result(
        spec,
        Tri.UNKNOWN,
        " ".join(parts),
        evidence=tuple(stale_evidence(f) for f in awareness.not_current),
        context=event_ev
        + tuple(stale_evidence(f) for f in [*events.stale[:3], *events.tentative[:3]]),
        missing=f"a current record of {spec.title.lower()}, or a clinician's confirmation",
    )


def _repeated(
    spec: CriterionSpec, records_meet: bool, found: str, evidence: tuple[Evidence, ...]
) -> CriterionResult:
    """Repeated hypoglycaemia is in the record: met when the policy lets the record decide,
    otherwise the evidence for a clinician's judgement of whether it is what the policy asks
    (its ``judgement``, e.g. disabling)."""
    if records_meet:
        return _result(spec, Tri.MET, f"{found}.", evidence=evidence)
    judgement, means = spec.params["judgement"], spec.params["judgementMeans"]
    return _result(
        spec,
        Tri.UNKNOWN,
        f"{found}: whether it is {judgement} ({means}) is a clinician's judgement, not in "
        "the record.",
        evidence=evidence,
        missing=f"a clinician's confirmation that the hypoglycaemia is {judgement}",
    )


@rule(
    "hba1c-on-mdi",
    reads_hba1c=True,
    nothing=_no_hba1c,
    threshold="number",
    comparison="comparison",
    minInjectionsPerDay="number",
    pumpKind="value-set?",
    pumpSupplyMonths="int?",
)
def hba1c_on_mdi(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """HbA1c has "remained high": every result in the lookback at/above the threshold (at least
    one), and on multiple daily injections (see ``_on_mdi``).

    One plausible result certainly below the threshold makes it *not met* whatever else the
    lookback holds; short of that, a result that cannot be used, or a censored one that may
    be below, leaves it *unknown* — never *met*.
    """
    p = spec.params
    threshold, op, minimum = (
        float(p["threshold"]),
        str(p["comparison"]),
        float(p["minInjectionsPerDay"]),
    )
    results = _usable(record, ctx)
    context = _implausible_context(record, ctx)
    n = len(results)
    read = f"{n} result{'s' if n != 1 else ''} read in the last {ctx.hba1c_lookback_months} months"
    verdicts = [(h, compare_hba1c(h, op, threshold)) for h in results]
    low = [h for h, t in verdicts if t is Tri.NOT_MET]
    if low:
        # One plausible result below the threshold settles it: a newer result that cannot be
        # used (shown beside it) could not make the HbA1c have "remained" high.
        return _result(
            spec,
            Tri.NOT_MET,
            f"HbA1c {low[0].mmol_text} ({low[0].date}) is below {threshold:g}: "
            f"not 'remained high' ({read}).",
            evidence=_usable_evidence(record, ctx),
            context=context,
        )
    pump = _on_a_pump(record, spec, ctx)
    if pump is not None:
        # HbA1c reached on a pump (backup pens still prescribed) is not HbA1c "with MDI".
        return _result(
            spec,
            Tri.UNKNOWN,
            f"On an insulin pump ({pump}): HbA1c results while on a pump are not 'with MDI', "
            "whatever pens are prescribed as back-up; whether MDI failed before the pump is "
            "in the clinic's history, not read here.",
            evidence=_usable_evidence(record, ctx),
            context=context,
            missing="the HbA1c on MDI before the pump, from the diabetes service",
        )
    latest = _latest_or_unknown(record, spec, ctx)
    if isinstance(latest, CriterionResult):
        return latest
    ev = list(_usable_evidence(record, ctx))
    either = [h for h, t in verdicts if t is Tri.UNKNOWN]
    if either:
        return _result(
            spec,
            Tri.UNKNOWN,
            f"{_beyond_range(either[0], op, threshold)}, so 'remained high' is not known ({read}).",
            evidence=tuple(ev),
            context=context,
            missing=MEASURED,
        )
    unreadable = _unusable_in_lookback(record, ctx)
    if unreadable:
        return _result(
            spec,
            Tri.UNKNOWN,
            f"Every usable HbA1c is {_SYMBOL[op]} {threshold:g} ({read}), but "
            f"{unreadable[-1].summary}: it may have been lower.",
            evidence=tuple(ev),
            context=context,
            missing="a readable, plausible value for every HbA1c in the lookback",
        )
    head = (
        f"Every HbA1c is {_SYMBOL[op]} {threshold:g} mmol/mol ({read}; latest "
        f"{latest.mmol_text.removesuffix(' mmol/mol')} on {latest.date.isoformat()})"
    )
    on_mdi, insulin_ev, how = _on_mdi(record, minimum)
    ev += insulin_ev
    if on_mdi is Tri.MET:
        return _result(spec, Tri.MET, f"{head}, on MDI: {how}.", evidence=tuple(ev))
    if on_mdi is Tri.NOT_MET:
        return _result(spec, Tri.NOT_MET, f"{head}, but not on MDI: {how}.", evidence=tuple(ev))
    stopped = stopped_insulin(record)
    return _result(
        spec,
        Tri.UNKNOWN,
        f"{head}; MDI unknown: {how}.",
        evidence=tuple(ev),
        context=(stopped,) if stopped else (),
        missing=None
        if stopped
        else "insulin prescriptions showing a basal-bolus regimen, or a stated frequency",
    )


def _on_a_pump(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> str | None:
    """What says the patient is on a pump now (in use or paused: ``pumpKind``, a hybrid
    closed loop counting as a pump), in words; None when nothing does or the criterion names
    no ``pumpKind``."""
    kind = spec.params.get("pumpKind")
    if not kind:
        return None
    months = int(spec.params.get("pumpSupplyMonths") or 6)
    reading = reading_of(record, str(kind), ctx.today, months, None)
    found = reading.in_use or reading.held
    if not found:
        return None
    since = reading.since()
    state = "in use" if reading.in_use else "paused"
    return f"{what(found[0])} {state}" + (f" since {day_text(since)}" if since else "")


@rule(
    "hba1c-latest",
    reads_hba1c=True,
    nothing=_no_hba1c,
    threshold="number",
    comparison="comparison",
)
def hba1c_latest(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """The latest plausible HbA1c in the lookback compared with the threshold ("has an HbA1c of
    58 mmol/mol or more"); an unusable newest result is *unknown*, never decided by an older one.
    """
    threshold, op = float(spec.params["threshold"]), str(spec.params["comparison"])
    latest = _latest_or_unknown(record, spec, ctx)
    if isinstance(latest, CriterionResult):
        return latest
    return _latest_compared(spec, latest, op, threshold, _implausible_context(record, ctx))


def _latest_compared(
    spec: CriterionSpec,
    latest: HbA1cResult,
    op: str,
    threshold: float,
    context: tuple[Evidence, ...],
) -> CriterionResult:
    """The latest result against the threshold: met, not met, or *unknown* for a censored
    result on the wrong side of it."""
    met = compare_hba1c(latest, op, threshold)
    if met is Tri.UNKNOWN:
        reason, missing = f"Latest {_beyond_range(latest, op, threshold)}.", MEASURED
    else:
        verdict = "is" if met is Tri.MET else "is not"
        reason = (
            f"Latest HbA1c {latest.mmol_text} ({latest.date}) {verdict} "
            f"{_SYMBOL[op]} {threshold:g}."
        )
        missing = None
    return _result(
        spec, met, reason, evidence=(hba1c_evidence(latest),), context=context, missing=missing
    )


@rule(
    "hba1c-with-finding",
    reads_hba1c=True,
    nothing=_no_hba1c,
    threshold="number",
    comparison="comparison",
    valueSet="value-set",
    findingLabel="text?",
    findingLookbackMonths="int",
)
def hba1c_with_finding(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Latest HbA1c above the threshold *and* a current documented finding (poor adherence).

    A clinician's confirmation covers the finding part only ("is related to poor
    compliance"): it meets the criterion only when the HbA1c part is met from the record.
    """
    p = spec.params
    threshold, op = float(p["threshold"]), str(p["comparison"])
    confirmed = latest_confirmation(record, spec.id, ctx)
    latest = _latest_or_unknown(record, spec, ctx)
    ignored = (confirmation_context(confirmed, "its HbA1c part is not met"),) if confirmed else ()
    if isinstance(latest, CriterionResult):
        return replace(latest, context=latest.context + ignored)
    compared = _latest_compared(
        spec, latest, op, threshold, _implausible_context(record, ctx) + ignored
    )
    if compared.result is not Tri.MET:
        return compared
    ev = list(compared.evidence)
    label = p.get("findingLabel", p["valueSet"])
    head = f"Latest HbA1c {latest.mmol_text} ({latest.date}) is {_SYMBOL[op]} {threshold:g}"
    if confirmed is not None:
        ev.append(confirmation_evidence(confirmed))
        who = confirmed.performer or "a clinician"
        verdict = "related" if confirmed.value else "not related"
        return _result(
            spec,
            Tri.MET if confirmed.value else Tri.NOT_MET,
            f"{head}; {who} recorded on {confirmed.date.isoformat()} that it is {verdict} to "
            f"{label}.",
            evidence=tuple(ev),
        )
    c = currency(record.findings_in(p["valueSet"]), int(p["findingLookbackMonths"]), ctx.today)
    if c.current:
        ev += [finding_evidence(f) for f in c.current]
        return _result(spec, Tri.MET, f"{head}, and {label} is documented.", evidence=tuple(ev))
    if c.not_current:
        return _result(
            spec,
            Tri.UNKNOWN,
            f"{head}. {_not_current_reason(c, label.capitalize())}",
            evidence=tuple(ev + [stale_evidence(f) for f in c.not_current]),
            missing=f"a record of {label} in the last {c.months} months, or a clinician's "
            "confirmation",
        )
    return _result(
        spec,
        Tri.UNKNOWN,
        f"{head}, but no {label} is documented in the last {c.months} months.",
        evidence=tuple(ev),
        missing=f"a record of {label}, or a clinician's confirmation",
    )


@rule(
    "insulin-injections-at-least",
    nothing=_no_insulin_at_all,
    minInjectionsPerDay="number",
)
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
    stopped = stopped_insulin(record)
    return _result(
        spec,
        result,
        reason,
        evidence=tuple(ev),
        context=(stopped,) if stopped else (),
        missing=None
        if result is not Tri.UNKNOWN or stopped
        else "insulin dosage with a stated frequency",
    )


@rule("insulin-prescribed", nothing=_no_insulin_at_all)
def insulin_prescribed(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """A current insulin prescription: every route to an injection port presupposes insulin
    injections. Absence is *unknown*, never *not met*: insulin may be prescribed elsewhere."""
    stopped = stopped_insulin(record)
    if stopped is not None:
        return _result(
            spec,
            Tri.UNKNOWN,
            f"No current insulin prescription: {stopped.summary}.",
            context=(stopped,),
        )
    if not record.insulin:
        return _result(
            spec,
            Tri.UNKNOWN,
            "No current insulin prescription in the record (it may be prescribed elsewhere).",
            missing="a current insulin prescription",
        )
    names = "; ".join(dict.fromkeys(o.display for o in record.insulin))
    return _result(
        spec,
        Tri.MET,
        f"{names}.",
        evidence=tuple(insulin_evidence(o) for o in record.insulin),
    )


@rule(
    "confirmation-only",
    nothing=_no_context,
    contextValueSet="value-set?",
)
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


def latest_confirmation(
    record: PatientRecord, criterion: str, ctx: Context, *, expired_too: bool = False
) -> Confirmation | None:
    """The latest confirmation of ``criterion`` that still counts: dated no later than today
    and no older than ``confirmation_valid_months`` (any age with ``expired_too``)."""
    if not record.confirmations:
        return None  # most records hold none
    months = None if expired_too else ctx.confirmation_valid_months
    since = months_before(ctx.today, months) if months else None
    mine = [
        c
        for c in record.confirmations
        if c.criterion == criterion and c.date <= ctx.today and (since is None or c.date >= since)
    ]
    return max(mine, key=lambda c: (c.date, c.at or _EARLIEST, c.ref)) if mine else None


def confirmation_evidence(c: Confirmation) -> Evidence:
    verdict = "met" if c.value else "not met"
    who = c.performer or "a clinician"
    because = f", because: {c.reason}" if c.reason else ""
    return Evidence(
        c.ref,
        f"confirmed {verdict} by {who} on {c.date.isoformat()}{because}",
        c.date,
        "confirmation",
    )


def confirmation_context(c: Confirmation, why: str) -> Evidence:
    """A confirmation shown beside a result it does not decide, and why it does not."""
    return Evidence(
        c.ref,
        f"a clinician's confirmation recorded on {c.date.isoformat()} is not used: {why}",
        c.date,
        "confirmation",
    )


def confirmation_result(
    record: PatientRecord, spec: CriterionSpec, ctx: Context
) -> CriterionResult | None:
    """The latest valid clinician confirmation of this criterion, if any; it decides it."""
    c = latest_confirmation(record, spec.id, ctx)
    if c is None:
        return None
    who = c.performer or "a clinician"
    verdict = "met" if c.value else "not met"
    return _result(
        spec,
        Tri.MET if c.value else Tri.NOT_MET,
        f"{who} recorded on {c.date.isoformat()} that this is {verdict}"
        + (f", because: {c.reason.rstrip('. ')}." if c.reason else "."),
        evidence=(confirmation_evidence(c),),
    )


@rule(
    "recorded",
    nothing=_no_finding,
    valueSet="value-set",
    codedOnly="bool?",
    excludeResourceTypes="texts?",
)
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


def _use_evidence(u: TechnologyUse, why: str = "") -> Evidence:
    when = u.since or u.last
    state = {"in-use": "", "held": ", paused (on hold)"}.get(u.state, "")
    dated = f", {day_text(when)}" if when else ", undated"
    status = u.status or "recorded"
    tail = "" if not why else (": not in use" if why == status else f", {why}: not in use")
    summary = f"{what(u)}: {u.source} {status}{state}{dated}{tail}"
    return Evidence(u.ref, summary, when, u.matched_by, u.product)


def _headline(reading: Reading, verb: str) -> Evidence:
    """The line a card shows for a technology in use or held: "Omnipod 5 Pods (hybrid closed
    loop) since 1 Oct 2026"."""
    uses = reading.in_use or reading.held
    first = min(
        uses,
        key=lambda u: (
            (u.since or u.last) is None,
            u.since or u.last or date.max,
            not u.durable,
            u.implied_by is not None,
            u.ref,
        ),
    )
    since = reading.since()
    when = f" since {day_text(since)}" if since else " (no start date recorded)"
    if reading.in_use and not any(u.durable or u.source in SUPPLY_SOURCES for u in uses):
        last = max((u.last for u in uses if u.last), default=None)  # events only: no span
        when = f" (recorded on {day_text(last)})" if last else when
    return Evidence(
        first.ref, f"{what(first)} {verb}{when}", since, first.matched_by, first.product
    )


def _lower_first(title: str) -> str:
    """A title inside a sentence: "Insulin pump (CSII) in use" → "insulin pump (CSII) in use"
    (acronyms and product names keep their case)."""
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


@rule(
    "technology-in-use",
    nothing=_no_technology,
    kind="value-set",
    supplyMonths="int",
    eventMonths="int?",
    heldCounts="bool",
    absentNotMet="bool?",
)
def technology_in_use(record: PatientRecord, spec: CriterionSpec, ctx: Context) -> CriterionResult:
    """Whether the person has a kind of diabetes technology, read from the one technology model
    (``policy.technology``): met by a record in use today, or one on hold when ``heldCounts``
    (the criterion asks about management the person has had, or whether they already have it;
    without it, a paused device is not in use today).

    An issue of supplies counts for ``supplyMonths``, a dated event for ``eventMonths`` (any age
    when not given); older ones are *unknown*. With no record in use, ``absentNotMet`` makes it
    *not met* (a specialist-started therapy is recorded when used), else *unknown*.
    """
    p = spec.params
    event = p.get("eventMonths")
    supply, events = int(p["supplyMonths"]), None if event is None else int(event)
    reading = reading_of(record, str(p["kind"]), ctx.today, supply, events)
    ended = (
        tuple(_use_evidence(u, reading.why[f"{u.ref}#{u.kind}"]) for u in reading.not_in_use)
        if reading.not_in_use
        else ()
    )
    if reading.in_use:
        head = _headline(reading, "in use")
        return _result(
            spec,
            Tri.MET,
            f"{head.summary}.",
            evidence=(head, *(_use_evidence(u) for u in reading.in_use)),
            context=ended,
        )
    if reading.held:
        head = _headline(reading, "paused")
        held = (head, *(_use_evidence(u) for u in reading.held))
        if p["heldCounts"]:
            return _result(
                spec,
                Tri.MET,
                f"{head.summary} (on hold): the person has it, paused.",
                evidence=held,
                context=ended,
            )
        return _result(
            spec,
            Tri.NOT_MET if p.get("absentNotMet") else Tri.UNKNOWN,
            f"{head.summary} (on hold): not in use today.",
            context=held + ended,
        )
    if reading.not_current:
        stale = tuple(_use_evidence(u) for u in reading.not_current)
        last = max((u.last for u in reading.not_current if u.last), default=None)
        months = {reading.why[f"{u.ref}#{u.kind}"] for u in reading.not_current} - {"undated"}
        if last is None:
            why = f"{spec.title} is recorded without a date: an undated record is not enough."
        else:
            why = (
                f"{spec.title} last recorded on {last.isoformat()}, "
                f"{' / '.join(sorted(months))}: not current evidence. A clinician may confirm it "
                "is still current."
            )
        return _result(
            spec,
            Tri.UNKNOWN,
            why,
            evidence=stale,
            context=ended,
            missing=f"a current record of {_lower_first(spec.title)}, or a clinician's "
            "confirmation",
        )
    n = len(ended)
    not_used = (
        f" ({n} record{'s' if n > 1 else ''} read, none in use: {ended[0].summary})"
        if ended
        else ""
    )
    unclear = [n for n in record.not_theirs if n.resource_type in DEVICE_RECORD_TYPES]
    if p.get("absentNotMet") and unclear:
        # A device record in the chart that is not shown to be the patient's (it names two
        # patients): absence is then not known, so no prompt to start what they may have.
        return _result(
            spec,
            Tri.UNKNOWN,
            f"Not recorded as in use, but {unclear[0].ref} is a device record not shown to be "
            f"this patient's ({unclear[0].detail}): whether it is theirs is not known.",
            context=ended,
            missing="the device record corrected to name this patient alone",
        )
    if p.get("absentNotMet"):
        return _result(spec, Tri.NOT_MET, f"Not recorded as in use{not_used}.", context=ended)
    return _result(
        spec,
        Tri.UNKNOWN,
        f"Not recorded as in use{not_used}; absence is not evidence it is not used.",
        context=ended,
        missing=f"a record of {_lower_first(spec.title)}, or a clinician's confirmation",
    )


# Records of a device a person uses: one not shown to be the patient's leaves "already using
# it" unknown rather than absent.
DEVICE_RECORD_TYPES = frozenset({"Device", "DeviceUseStatement", "DeviceRequest"})


# Rules read from the record alone: a clinician's confirmation never decides them.
DATA_DERIVED_RULES = frozenset(
    {
        "diagnosis",
        "age-at-least",
        "hba1c-latest",
        "hba1c-on-mdi",
        "insulin-injections-at-least",
        "insulin-prescribed",
        "recorded",
    }
)
# Rules that read their own confirmation (it covers only part of the criterion).
SELF_CONFIRMING_RULES = frozenset({"hba1c-with-finding"})
# Rules whose criterion only a clinician's judgement can meet: no record shows it.
JUDGEMENT_RULES = frozenset({"confirmation-only"})
