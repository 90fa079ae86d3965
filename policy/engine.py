"""Load a declarative policy file and evaluate it against a patient's facts.

A policy file (``policies/*.json``) holds the metadata the card cites, the parameters a
clinician may want to change (thresholds, lookbacks), each criterion bound to a named rule
in ``policy.criteria``, derived criteria as all/any/not expressions, and the pathways.
A second policy is a second file, plus any rules it needs that do not exist yet.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from facts.model import PatientRecord
from policy.criteria import (
    DATA_DERIVED_RULES,
    RULES,
    SELF_CONFIRMING_RULES,
    Context,
    CriterionSpec,
    confirmation_context,
    confirmation_result,
    latest_confirmation,
)
from policy.decisive import Logic, decided_by, decisive_unknowns
from policy.expr import Expr, PolicyError, deciding_leaves, evaluate_expr, expr_ids
from policy.model import (
    HOOKS,
    ORDER_HOOKS,
    SPEAKS,
    CriterionResult,
    Decision,
    Evidence,
    Outcome,
    PathwayResult,
    PolicyInfo,
    ServiceSpec,
    Tri,
)

POLICY_DIR = Path(__file__).resolve().parent / "policies"


@dataclass(frozen=True)
class DerivedSpec:
    id: str
    title: str
    expression: Expr
    policy_text: str = ""
    confirmable: bool = False  # a composite is never confirmed as a whole


@dataclass(frozen=True)
class PathwaySpec:
    id: str
    title: str
    diagnosis: str
    expression: Expr


@dataclass(frozen=True)
class Policy:
    info: PolicyInfo
    hba1c_lookback_months: int
    confirmation_valid_months: int | None
    hba1c_plausible_mmol_mol: tuple[float, float]
    criteria: tuple[CriterionSpec, ...]
    derived: tuple[DerivedSpec, ...]
    pathways: tuple[PathwaySpec, ...]
    assumptions: tuple[str, ...]
    value_sets: frozenset[str]
    notices: tuple[tuple[str, str], ...] = ()  # (criterion id, sentence shown when it is met)
    services: tuple[ServiceSpec, ...] = ()  # the CDS services this policy offers
    # policies (by id) whose "meets and not already using it" is said first on this policy's
    # cards, in order: the first that applies wins
    companions: tuple[str, ...] = ()

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria) + tuple(d.id for d in self.derived)

    @functools.cached_property
    def _titles(self) -> dict[str, str]:
        return {c.id: c.title for c in self.criteria} | {d.id: d.title for d in self.derived}

    def title_of(self, criterion_id: str) -> str:
        return self._titles[criterion_id]


def _date(doc: Mapping[str, Any], key: str) -> date:
    try:
        return date.fromisoformat(str(doc[key]))
    except (KeyError, ValueError) as exc:
        raise PolicyError(f"policy needs an ISO date in {key!r}") from exc


def parse_policy(doc: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Policy:
    """Build a Policy from its JSON document; ``overrides`` replace top-level parameters.

    Raises PolicyError on anything the engine could not evaluate safely.
    """
    params = {**doc.get("parameters", {}), **(overrides or {})}

    def resolve(value: Any) -> Any:
        # "$name" in a rule's parameters refers to a top-level (overridable) parameter.
        if isinstance(value, str) and value.startswith("$"):
            if value[1:] not in params:
                raise PolicyError(f"undefined parameter {value}")
            return params[value[1:]]
        return value

    criteria = []
    value_sets: set[str] = set()
    for c in doc.get("criteria", []):
        if c.get("rule") not in RULES:
            raise PolicyError(f"criterion {c.get('id')!r}: unknown rule {c.get('rule')!r}")
        rule_params = {k: resolve(v) for k, v in c.get("params", {}).items()}
        for k, v in rule_params.items():
            if k.endswith("alueSet") and v:
                value_sets.add(v)
            elif k.endswith("alueSets"):
                value_sets.update(v)
        criteria.append(
            CriterionSpec(
                id=c["id"],
                title=c["title"],
                rule=c["rule"],
                params=rule_params,
                confirmable=_confirmable(c),
                policy_text=c.get("policyText", ""),
            )
        )
    derived = []
    for d in doc.get("derived", []):
        if d.get("confirmable") is not False:
            raise PolicyError(
                f'derived criterion {d.get("id")!r} must declare "confirmable": false '
                "(a composite is never confirmed as a whole; its parts are)"
            )
        derived.append(DerivedSpec(d["id"], d["title"], d["expression"], d.get("policyText", "")))
    pathways = tuple(
        PathwaySpec(p["id"], p["title"], p["diagnosis"], p["expression"]) for p in doc["pathways"]
    )
    known = {c.id for c in criteria}
    for d in derived:  # derived criteria may use earlier derived ones, never later (no cycles)
        for ref in expr_ids(d.expression):
            if ref not in known:
                raise PolicyError(f"derived criterion {d.id!r} uses undefined {ref!r}")
        known.add(d.id)
    for p in pathways:
        for ref in [p.diagnosis, *expr_ids(p.expression)]:
            if ref not in known:
                raise PolicyError(f"pathway {p.id!r} uses undefined criterion {ref!r}")
    notices = tuple((n["when"], n["text"]) for n in doc.get("notices", []))
    for when, _ in notices:
        if when not in known:
            raise PolicyError(f"notice names undefined criterion {when!r}")
    m = doc["metadata"]
    info = PolicyInfo(
        id=m["id"],
        title=m["title"],
        version=m["version"],
        publisher=m["publisher"],
        url=str(params.get("policyUrl") or m["url"]),
        created=_date(m, "created"),
        last_modified=_date(m, "lastModified"),
        review_due=_date(m, "reviewDue"),
        places=tuple(m.get("placesCovered", [])),
        funding_request_url=str(params.get("fundingRequestUrl") or m.get("fundingRequestUrl", "")),
        criteria_system=m["criteriaCodeSystem"],
        presentation=doc.get("presentation", {}),
    )
    assumptions = tuple(a.format(**params) for a in doc.get("assumptions", []))
    services = tuple(_service(info.id, s) for s in doc.get("services", []))
    value_sets.update(s.trigger_value_set for s in services if s.trigger_value_set)
    ordered = info.presentation.get("silenceWhenOrdered")
    if ordered is not None:
        if set(ordered) != {"valueSet", "means"}:
            raise PolicyError("presentation.silenceWhenOrdered needs exactly valueSet and means")
        value_sets.add(str(ordered["valueSet"]))
    for cid in info.presentation.get("silenceWhenMet", ()):
        if cid not in known:
            raise PolicyError(f"presentation.silenceWhenMet names undefined criterion {cid!r}")
    companions = tuple(str(c) for c in doc.get("companions", ()))
    if info.id in companions:
        raise PolicyError(f"policy {info.id!r} names itself as a companion")
    valid = params.get("confirmationValidMonths", 12)
    plausible = (
        float(params.get("hba1cPlausibleMinMmolMol", 20)),
        float(params.get("hba1cPlausibleMaxMmolMol", 200)),
    )
    if not 0 < plausible[0] < plausible[1]:
        raise PolicyError(f"HbA1c plausible range {plausible} is not a range")
    return Policy(
        info=info,
        hba1c_lookback_months=int(params["hba1cLookbackMonths"]),
        confirmation_valid_months=int(valid) if valid is not None else None,
        hba1c_plausible_mmol_mol=plausible,
        criteria=tuple(criteria),
        derived=tuple(derived),
        pathways=pathways,
        assumptions=assumptions,
        value_sets=frozenset(value_sets),
        notices=notices,
        services=services,
        companions=companions,
    )


_SERVICE_KEYS = frozenset({"id", "hook", "title", "description", "trigger", "speaks"})
_TRIGGER_KEYS = frozenset({"draftOrderValueSet", "selectedOnly"})


def _service(policy_id: str, s: Mapping[str, Any]) -> ServiceSpec:
    """One entry of the file's ``services``; raises PolicyError naming the field at fault."""
    sid = s.get("id")
    where = f"services[{sid!r}]"
    unknown = set(s) - _SERVICE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    for key in ("id", "hook", "title", "description"):
        if not isinstance(s.get(key), str) or not s[key]:
            raise PolicyError(f"{where}: {key!r} must be a non-empty string")
    sid, hook = str(s["id"]), str(s["hook"])
    if hook not in HOOKS:
        raise PolicyError(f"{where}: hook {hook!r} is not one of {list(HOOKS)}")
    speaks = s.get("speaks", "always")
    if speaks not in SPEAKS:
        raise PolicyError(f"{where}: speaks {speaks!r} is not one of {list(SPEAKS)}")
    trigger = s.get("trigger")
    if hook not in ORDER_HOOKS:
        if trigger is not None:
            raise PolicyError(f"{where}: a {hook} service has no trigger")
        return ServiceSpec(sid, hook, s["title"], s["description"], policy_id, speaks)
    if not isinstance(trigger, Mapping):
        raise PolicyError(f"{where}: an order hook needs a trigger with draftOrderValueSet")
    unknown = set(trigger) - _TRIGGER_KEYS
    if unknown:
        raise PolicyError(f"{where}.trigger: unknown field(s) {sorted(unknown)}")
    value_set = trigger.get("draftOrderValueSet")
    selected_only = trigger.get("selectedOnly", False)
    if not isinstance(value_set, str) or not value_set:
        raise PolicyError(f"{where}.trigger: draftOrderValueSet must name a value set")
    if not isinstance(selected_only, bool):
        raise PolicyError(f"{where}.trigger: selectedOnly must be true or false")
    return ServiceSpec(
        sid, hook, s["title"], s["description"], policy_id, speaks, value_set, selected_only
    )


def _confirmable(c: Mapping[str, Any]) -> bool:
    """Whether a clinician may confirm this criterion: declared in the file, never defaulted.

    Raises PolicyError when it is missing, or declared for a rule read from data alone
    (diagnoses, age, HbA1c thresholds, insulin frequency).
    """
    value = c.get("confirmable")
    if not isinstance(value, bool):
        raise PolicyError(f'criterion {c.get("id")!r} must declare "confirmable": true or false')
    if value and c["rule"] in DATA_DERIVED_RULES:
        raise PolicyError(
            f"criterion {c.get('id')!r}: rule {c['rule']!r} is read from the record and "
            "cannot be confirmable"
        )
    return value


def policy_names() -> list[str]:
    """The names of the policies this service ships (files in ``policies/``), sorted."""
    return sorted(p.stem for p in POLICY_DIR.glob("*.json"))


def _read_policy_file(name_or_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """A policy file by name (in ``policies/``) or by path, parsed as JSON."""
    path = Path(name_or_path)
    if not path.suffix:
        path = POLICY_DIR / f"{name_or_path}.json"
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc


def load_policy(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Policy:
    """Load a policy by name (a file in ``policies/``) or by path."""
    path, doc = _read_policy_file(name_or_path)
    try:
        return parse_policy(doc, overrides)
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"{path}: missing or malformed {exc}") from exc


def load_policies(names: Iterable[str], overrides: Mapping[str, Any]) -> dict[str, Policy]:
    """Several policies by name or path, keyed by policy id.

    Each override applies to every policy that declares that parameter; one that no policy
    declares is a PolicyError (a misspelt setting must not be silently ignored).
    """
    names = list(names)
    for name in names:
        if not Path(name).suffix and name not in policy_names():
            raise PolicyError(
                f"POLICIES names {name!r}, which is not a policy of this service; choose from: "
                f"{', '.join(policy_names())} (or give the path of a policy file)"
            )
    docs = [_read_policy_file(name)[1] for name in names]
    unknown = set(overrides) - {k for d in docs for k in d.get("parameters", {})}
    if unknown:
        raise PolicyError(f"POLICY_PARAMETERS names parameters no policy has: {sorted(unknown)}")
    policies: dict[str, Policy] = {}
    for doc in docs:
        mine = {k: v for k, v in overrides.items() if k in doc.get("parameters", {})}
        try:
            policy = parse_policy(doc, mine)
        except (KeyError, TypeError) as exc:
            raise PolicyError(
                f"policy {doc.get('metadata', {}).get('id')}: malformed {exc}"
            ) from exc
        policies[policy.info.id] = policy
    return policies


def _derived_result(
    d: DerivedSpec, policy: Policy, results: Mapping[str, CriterionResult]
) -> CriterionResult:
    value = evaluate_expr(d.expression, results)
    leaves = list(dict.fromkeys(deciding_leaves(d.expression, value, results)))

    def label(cid: str, negated: bool) -> str:
        title = policy.title_of(cid)
        return f"{title}: {results[cid].result.value.replace('-', ' ')}" if negated else title

    names = "; ".join(label(i, n) for i, n in leaves)
    reason = {
        Tri.MET: f"Met through: {names}.",
        Tri.NOT_MET: f"Not met: {names}.",
        Tri.UNKNOWN: f"Unknown until these are known: {names}.",
    }[value]
    evidence: list[Evidence] = []
    if value is Tri.MET:
        for cid, _ in leaves:  # a "not" branch cites what it rests on (e.g. the birth date)
            evidence.extend(e for e in results[cid].evidence if e not in evidence)
    return CriterionResult(d.id, d.title, value, reason, tuple(evidence), confirmable=d.confirmable)


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


def evaluate(policy: Policy, record: PatientRecord, today: date) -> Decision:
    """The policy's decision for one patient on ``today`` (a date in Europe/London).

    Pure: no I/O, no clock. Every criterion is evaluated (the card shows them all);
    a clinician's confirmation, where recorded, decides its criterion.
    """
    record = _without_ended_prescriptions(record, today)
    ctx = Context(
        today=today,
        hba1c_lookback_months=policy.hba1c_lookback_months,
        confirmation_valid_months=policy.confirmation_valid_months,
        hba1c_plausible_mmol_mol=policy.hba1c_plausible_mmol_mol,
    )
    results: dict[str, CriterionResult] = {}
    for spec in policy.criteria:
        confirmed = None
        if spec.confirmable and spec.rule not in SELF_CONFIRMING_RULES:
            confirmed = confirmation_result(record, spec, ctx)
        results[spec.id] = confirmed or _ignoring_confirmation(
            RULES[spec.rule](record, spec, ctx), record, ctx, spec.confirmable
        )
    for d in policy.derived:
        results[d.id] = _ignoring_confirmation(
            _derived_result(d, policy, results), record, ctx, d.confirmable
        )
    if record.deceased:
        return _deceased_decision(policy, record, today, results)
    pathways = tuple(
        PathwayResult(
            p.id,
            p.title,
            evaluate_expr(p.expression, results),
            tuple(dict.fromkeys(expr_ids(p.expression))),
            p.diagnosis,
        )
        for p in policy.pathways
    )
    outcome, chosen = _outcome(pathways, results)
    shown = _shown_criteria(policy, chosen, pathways)
    logic = Logic(
        derived={d.id: d.expression for d in policy.derived},
        pathways=[(r, p.expression) for r, p in zip(pathways, policy.pathways, strict=True)],
        outcome_of=lambda ps, rs: _outcome(ps, rs)[0],
    )
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
        policy_overdue=today > policy.info.review_due,
        shown_criteria=shown,
        notices=tuple(text for when, text in policy.notices if results[when].result is Tri.MET),
        decided_by=decided_by(logic, results, outcome, chosen),
        decisive=decisive_unknowns(logic, results, outcome),
    )


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
    """A patient recorded as deceased: no eligibility is assessed, and the outcome never meets."""
    return Decision(
        policy=policy.info,
        outcome=Outcome.INSUFFICIENT,
        pathway=None,
        reason=f"The patient is recorded as deceased ({record.deceased}): no eligibility is "
        "assessed.",
        criteria=results,
        pathways=(),
        evaluated_on=today,
        warnings=record.warnings,
        policy_overdue=today > policy.info.review_due,
        deceased=True,
    )


def _outcome(
    pathways: Sequence[PathwayResult], results: Mapping[str, CriterionResult]
) -> tuple[Outcome, PathwayResult | None]:
    """Meets if any pathway is met; does not meet if all are not met; else insufficient.

    The pathway named is the one that decided, or the most relevant: one whose diagnosis
    is recorded, preferring an undecided pathway over a failed one.
    """
    met = [p for p in pathways if p.result is Tri.MET]
    if met:
        return Outcome.MEETS, met[0]

    def relevance(p: PathwayResult) -> tuple[bool, bool]:
        return (results[p.diagnosis].result is Tri.MET, p.result is Tri.UNKNOWN)

    ranked = sorted(pathways, key=relevance, reverse=True)
    best = ranked[0] if ranked and results[ranked[0].diagnosis].result is not Tri.NOT_MET else None
    if all(p.result is Tri.NOT_MET for p in pathways):
        return Outcome.DOES_NOT_MEET, best
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
