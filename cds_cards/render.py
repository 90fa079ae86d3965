"""Cards from a decision: summary, markdown detail, suggestions, links, machine-readable extension.

Nothing here decides anything: it presents a ``policy.Decision``. The uuid factory and the
clock are injected so golden-file tests can fix them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policy.model import CriterionResult, Decision, Outcome, Tri

EXTENSION_KEY = "iport-cds.eligibility"
OVERRIDE_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/override-reason"
TOPIC_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/topic"

_RESULT_LABEL = {Tri.MET: "✅ met", Tri.NOT_MET: "❌ not met", Tri.UNKNOWN: "❓ unknown"}


@dataclass(frozen=True)
class CardContext:
    """What the card needs from the request: whose record, who is looking, when."""

    patient_id: str
    user_ref: str | None  # "Practitioner/123" from context.userId, for the confirmation's performer
    now: datetime
    new_uuid: Callable[[], str]
    note: str | None = None  # a line from a companion policy, shown first (see evaluation)


DECEASED_SUMMARY = "Patient recorded as deceased: no eligibility assessed"


def _summary(decision: Decision, patient_view: bool) -> str:
    if decision.deceased:
        return DECEASED_SUMMARY
    words = decision.policy.presentation
    head = (
        words["patientViewSummary"] if patient_view else words["summaries"][decision.outcome.value]
    )
    # Name the pathway only where the policy has more than one to choose from.
    title = next((p.title for p in decision.pathways if p.id == decision.pathway), None)
    title = title if len(decision.pathways) > 1 else None
    summary = f"{head} ({title} pathway)" if title else head
    return summary[:139]


_MD_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]|#"})


def _md(text: str) -> str:
    """Record text made inert: no HTML, no links or emphasis, no broken table cells.

    Text in a FHIR record is data, not markup: EHRs (and the Sandbox) render card detail
    as markdown with raw HTML, so it is escaped before it is shown.
    """
    return html.escape(" ".join(text.split()), quote=False).translate(_MD_SPECIAL)


def _evidence_cell(r: CriterionResult) -> str:
    parts = [_md(r.reason)]
    parts.extend(f"`{_md(e.ref)}` {_md(e.summary)}" for e in r.evidence[:4])
    if len(r.evidence) > 4:
        parts.append(f"… and {len(r.evidence) - 4} more")
    if r.context:
        parts.append("Context: " + "; ".join(_md(e.summary) for e in r.context[:3]))
    return "<br>".join(parts)


def detail_markdown(decision: Decision, note: str | None = None) -> str:
    policy = decision.policy
    lines = [f"> {_md(note)}", ""] if note else []
    lines += [f"> {_md(n)}\n" for n in decision.notices]
    lines += [f"**{_md(decision.reason)}**", ""]
    if decision.deceased:
        return "\n".join([*lines, _policy_line(decision)])
    lines += ["| Criterion | Result | Evidence and reason |", "| --- | --- | --- |"]
    for cid in decision.shown_criteria:
        r = decision.criteria[cid]
        lines.append(f"| {_md(r.title)} | {_RESULT_LABEL[r.result]} | {_evidence_cell(r)} |")
    missing = [
        (decision.criteria[c].title, decision.criteria[c].missing)
        for c in decision.shown_criteria
        if decision.criteria[c].result is Tri.UNKNOWN and decision.criteria[c].missing
    ]
    if missing:
        lines += ["", "**What would settle the unknowns:**"]
        lines += [f"- {_md(t)}: {_md(m or '')}" for t, m in missing]
    age = decision.criteria.get("age-12-or-over")
    if decision.pathway == "type-1" and age is not None and age.result is Tri.NOT_MET:
        lines += [
            "",
            "_NICE: children under 12 should have a trial of MDI therapy between 12 and 18._",
        ]
    if decision.warnings:
        lines += ["", "**Records that could not be read** (not used):"]
        lines += [f"- {_md(w)}" for w in decision.warnings[:10]]
        if len(decision.warnings) > 10:
            lines.append(f"- … and {len(decision.warnings) - 10} more")
    lines += ["", "**Assumed in reading the policy:**"]
    lines += [f"- {_md(a)}" for a in decision.assumptions]
    lines += ["", _policy_line(decision)]
    if decision.policy_overdue:
        lines += [
            "",
            f"⚠️ **This policy was due for review on {policy.review_due.isoformat()}**: "
            "check that it is still current.",
        ]
    lines += ["", "_Advisory only: the decision to prescribe rests with the clinician._"]
    return "\n".join(lines)


def _policy_line(decision: Decision) -> str:
    policy = decision.policy
    return (
        f"Policy: [{_md(policy.title)}]({policy.url}), {_md(policy.publisher)}; "
        f"version {policy.version}; review due {policy.review_due.isoformat()}. "
        f"Evaluated {decision.evaluated_on.isoformat()}."
    )


def extension(decision: Decision) -> dict[str, Any]:
    """The machine-readable decision: the card's ``extension`` value, and the CLI's --json."""
    deceased = {"deceased": True} if decision.deceased else {}
    return {
        "outcome": decision.outcome.value,
        **deceased,
        "pathway": decision.pathway,
        "policy": {
            "id": decision.policy.id,
            "version": decision.policy.version,
            "reviewDue": decision.policy.review_due.isoformat(),
        },
        "criteria": [
            _omit_empty(
                {
                    "id": r.id,
                    "result": r.result.value,
                    "evidence": [e.ref for e in r.evidence],
                    "reason": r.reason,
                }
            )
            for r in decision.criteria.values()
            if not decision.deceased  # no eligibility is assessed: no criteria to report
        ],
    }


def _confirmation_resource(
    decision: Decision, r: CriterionResult, ctx: CardContext
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [
                {"system": decision.policy.criteria_system, "code": r.id, "display": r.title}
            ],
            "text": f"{r.title}: confirmed for the i-Port Advance policy",
        },
        "subject": {"reference": f"Patient/{ctx.patient_id}"},
        "effectiveDateTime": ctx.now.isoformat(timespec="seconds"),
        "valueBoolean": True,
    }
    if ctx.user_ref:
        resource["performer"] = [{"reference": ctx.user_ref}]
    return resource


def _suggestions(decision: Decision, ctx: CardContext) -> list[dict[str, Any]]:
    """One 'record a confirmation' suggestion per unknown criterion a clinician can confirm.

    None when the criteria are already met: more confirmations would only be noise.
    """
    out: list[dict[str, Any]] = []
    if decision.deceased:
        return out
    if decision.outcome is Outcome.MEETS:
        referral = decision.policy.presentation.get("referral")
        if referral:
            out.append(_referral_suggestion(referral, ctx))
        return out
    for cid in decision.shown_criteria:
        r = decision.criteria[cid]
        if r.result is not Tri.UNKNOWN or not r.confirmable:
            continue
        out.append(
            {
                "label": f"Record that I confirm: {r.title}",
                "uuid": ctx.new_uuid(),
                "isRecommended": False,
                "actions": [
                    {
                        "type": "create",
                        "description": f"Record a clinician confirmation that '{r.title}' is met",
                        "resource": _confirmation_resource(decision, r, ctx),
                    }
                ],
            }
        )
    return out


def _referral_suggestion(referral: Mapping[str, Any], ctx: CardContext) -> dict[str, Any]:
    """A draft referral order (e.g. to the diabetes service for pump assessment)."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [dict(referral["code"])], "text": referral["label"]},
        "subject": {"reference": f"Patient/{ctx.patient_id}"},
        "authoredOn": ctx.now.isoformat(timespec="seconds"),
        "reasonCode": [{"text": referral["reasonText"]}],
    }
    if ctx.user_ref:
        resource["requester"] = {"reference": ctx.user_ref}
    return {
        "label": referral["label"],
        "uuid": ctx.new_uuid(),
        "isRecommended": True,
        "actions": [{"type": "create", "description": referral["label"], "resource": resource}],
    }


def _links(decision: Decision) -> list[dict[str, str]]:
    label = decision.policy.presentation.get("policyLinkLabel", "Policy")
    links = [{"label": label, "url": decision.policy.url, "type": "absolute"}]
    links += [
        {**link, "type": "absolute"} for link in decision.policy.presentation.get("links", [])
    ]
    if decision.outcome is not Outcome.MEETS and decision.policy.funding_request_url:
        links.append(
            {
                "label": "Individual funding request (IFR) route",
                "url": decision.policy.funding_request_url,
                "type": "absolute",
            }
        )
    return links


def eligibility_card(
    decision: Decision, ctx: CardContext, *, patient_view: bool = False
) -> dict[str, Any]:
    """The single eligibility card for a decision. Optional fields that are empty are omitted."""
    words = decision.policy.presentation
    suggestions = _suggestions(decision, ctx)
    card: dict[str, Any] = {
        "uuid": ctx.new_uuid(),
        "summary": _summary(decision, patient_view),
        "detail": detail_markdown(decision, ctx.note),
        "indicator": "info" if decision.outcome is Outcome.MEETS else "warning",
        "source": {
            "label": words["sourceLabel"],
            "url": decision.policy.url,
            "topic": {"system": TOPIC_SYSTEM, **words["topic"]},
        },
        "suggestions": suggestions,
        "selectionBehavior": "any" if suggestions else None,
        "overrideReasons": [{"system": OVERRIDE_SYSTEM, **r} for r in words["overrideReasons"]],
        "links": _links(decision),
        "extension": {EXTENSION_KEY: extension(decision)},
    }
    return _omit_empty(card)


def _omit_empty(obj: dict[str, Any]) -> dict[str, Any]:
    """CDS Hooks: optional fields are omitted rather than sent as null, "", [] or {}.

    ``pathway`` inside the extension is the one deliberate null (its schema allows it).
    """
    return {k: v for k, v in obj.items() if v not in (None, "", [], {}) or k == "pathway"}
