"""Cards from a decision: summary, markdown detail, suggestions, links, machine-readable extension.

Nothing here decides anything: it presents a ``policy.Decision``. The uuid factory and the
clock are injected so golden-file tests can fix them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cds_cards.popup import detail_px, detail_room_px
from facts import NotTheirs
from policy.model import CriterionResult, Decision, Outcome, PolicyInfo, Tri
from policy.technology import day_text

EXTENSION_KEY = "iport-cds.eligibility"
OVERRIDE_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/override-reason"
TOPIC_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/topic"


@dataclass(frozen=True)
class CardContext:
    """What the card needs from the request: whose record, who is looking, when."""

    patient_id: str
    user_ref: str | None  # "Practitioner/123" from context.userId, for the confirmation's performer
    now: datetime
    new_uuid: Callable[[], str]
    note: str | None = None  # a line from a companion policy, shown first (see evaluation)
    app_url: str | None = None  # the SMART assessment app's launch URL, linked from the card
    # Other technologies whose criteria the patient also meets (their policies' shortName),
    # named in one line on the one patient-view card that speaks
    also: tuple[str, ...] = ()
    # Warnings from reading the record that lost nothing of it (``fhirdata.Gathered``): in
    # the assessment app and the extension, not on the card
    lossless: tuple[str, ...] = ()


DECEASED_SUMMARY = "Patient recorded as deceased: no eligibility assessed"
DEATH_IMPLAUSIBLE_SUMMARY = (
    "Date of death in the record is not plausible: no eligibility assessed; correct the record"
)


def deceased_summary(decision: Decision) -> str:
    """The summary of a decision about a patient recorded as deceased, plausibly or not."""
    return DEATH_IMPLAUSIBLE_SUMMARY if decision.deceased_implausible else DECEASED_SUMMARY


def pathway_title(decision: Decision) -> str | None:
    """The title of the pathway the card names: the deciding pathway, and only when its
    diagnosis is met. With the diagnosis unknown (type 1 and type 2 both active, a diagnosis
    dated before birth) no pathway is known to apply, so none is named."""
    chosen = next((p for p in decision.pathways if p.id == decision.pathway), None)
    if chosen is None or decision.criteria[chosen.diagnosis].result is not Tri.MET:
        return None
    return chosen.title


def unknown_diagnoses(decision: Decision) -> tuple[str, ...]:
    """The diagnoses of the undecided pathways that are unknown, when no pathway is named:
    each is asked about, so a contradiction between two shows on both."""
    if decision.deceased or pathway_title(decision) is not None:
        return ()
    ids = (p.diagnosis for p in decision.pathways if p.result is Tri.UNKNOWN)
    return tuple(c for c in dict.fromkeys(ids) if decision.criteria[c].result is Tri.UNKNOWN)


def _summary(decision: Decision, patient_view: bool) -> str:
    if decision.deceased:
        return deceased_summary(decision)
    words = decision.policy.presentation
    if not patient_view:
        head = words["summaries"][decision.outcome.value]
    elif decision.outcome is Outcome.MEETS:
        head = words["patientViewSummary"]
    elif decision.outcome is Outcome.INSUFFICIENT:
        # a patient-view card that speaks before the criteria are met: one judgement away
        head = words.get("judgementAwaySummary") or words["summaries"][decision.outcome.value]
    else:  # one that speaks whatever the outcome
        head = words["summaries"][decision.outcome.value]
    # Name the pathway only where the policy has more than one to choose from (on
    # patient-view the detail names it: the pop-up's summary stays short).
    title = pathway_title(decision) if len(decision.pathways) > 1 and not patient_view else None
    summary = f"{head} ({title} pathway)" if title else head
    return summary[:139]


# Characters that start markup wherever they stand in CommonMark (with raw HTML) or GFM: a
# backslash before each makes it a literal character. (">" starts a quote only at the start
# of a line, where record text never stands: it is left as it is, so a card reads "> 69".)
_MD_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]|#~"})
_MD_SPECIAL_ANY = re.compile(r"[\\`*_\[\]|#~]")
# "<" starts raw HTML or an autolink only before a letter, "/", "!" or "?", and "&" an entity
# only before a letter or "#": escaped the markdown way there, never as an HTML entity, so an
# EHR that shows the markdown as text shows what the record says ("<20", "&").
_MARKUP_START = re.compile(r"([<&])(?=[A-Za-z#/!?])")


def _md(text: str) -> str:
    """Record text made inert: no HTML, no links, images or emphasis, no broken table cells.

    Text in a FHIR record is data, not markup: EHRs (and the Sandbox) render card detail
    as markdown with raw HTML, so it is escaped before it is shown.
    """
    inert = " ".join(text.split())
    if _MD_SPECIAL_ANY.search(inert):
        inert = inert.translate(_MD_SPECIAL)
    return _MARKUP_START.sub(r"\\\1", inert) if "<" in inert or "&" in inert else inert


# Resource types whose references can appear in a rule's reason; a card names none of them.
_FHIR_REF = re.compile(
    r"\b(?=[A-Z])(Patient|Practitioner|PractitionerRole|Observation|Condition|MedicationRequest|"
    r"MedicationStatement|Medication|ServiceRequest|DeviceRequest|Device|Procedure|Encounter|"
    r"Organization|RelatedPerson)/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?"
)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
MAX_DETAIL_LINES = 12
MAX_SUGGESTIONS = 3
# A patient-view card speaks when the criteria are met (its referral) or one judgement away
# (that confirmation): one button beside the reason is what its pop-up has room for.
MAX_PATIENT_VIEW_SUGGESTIONS = 1
_ICON = {Tri.MET: "✅", Tri.NOT_MET: "❌", Tri.UNKNOWN: "❓"}
OUTCOME_WORDS = {
    Outcome.MEETS: "Meets the criteria",
    Outcome.DOES_NOT_MEET: "Does not meet the criteria",
    Outcome.INSUFFICIENT: "Not enough information",
}


def clinical_text(text: str) -> str:
    """A rule's sentence as a clinician reads it: dates written out, no resource references
    (those stay in the machine-readable extension and the assessment app)."""

    def ref(m: re.Match[str]) -> str:
        return "a clinician" if m.group(1).startswith("Practitioner") else "a record"

    def day(m: re.Match[str]) -> str:
        try:
            return day_text(date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        except ValueError:
            return m.group(0)

    if "/" in text:  # a reference has one; most sentences have none
        text = _FHIR_REF.sub(ref, text)
    return _ISO_DATE.sub(day, text) if "-" in text else text


# The longest product name a card shows whole; the assessment app shows every name in full.
PRODUCT_NAME_MAX_CHARS = 60
# What follows the strength in a dm+d or RxNorm product name: the form and the pack
# ("… 100units/ml solution for injection 3ml pre-filled pens (Novo Nordisk Ltd)",
# "… 100 UNT/ML Injectable Solution [Humalog]").
_FORM_TAIL = re.compile(
    r"\s+(?:solution|suspension|emulsion|powder|injectable|prefilled|pen injector|cartridge)\b.*$",
    re.IGNORECASE,
)
# A dm+d AMP's supplier, and an AMPP's pack after it: "(Abbott Laboratories Ltd) 1 kit".
_MAKER = re.compile(r"\s*\([^()]*\)(?:\s+\d[\w .]*)?$")
_BRAND = re.compile(r"\[[^\[\]]+\]$")  # an RxNorm branded name's brand: "[Humalog]"


def short_product_name(name: str, limit: int = PRODUCT_NAME_MAX_CHARS) -> str:
    """A product name as a card shows it: without its form and pack, keeping the strength
    (and an RxNorm brand); cut at a word boundary with an ellipsis when still longer than
    ``limit`` characters. "Insulin aspart 100units/ml solution for injection 3ml pre-filled
    disposable devices" is "Insulin aspart 100units/ml"."""
    name = " ".join(name.split())
    brand = _BRAND.search(name)
    short = _FORM_TAIL.sub("", name) or name
    if short == name:
        short = _MAKER.sub("", name) or name
    elif brand:
        short = f"{short} {brand.group(0)}"
    if len(short) <= limit:
        return short
    cut = short[: limit - 1]
    if short[limit - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]  # a whole word, not part of one
    return cut.rstrip(" ,;:/-(") + "…"


def _short_products(text: str, r: CriterionResult) -> str:
    """``text`` with each product name the criterion's records give in its short form."""
    names = {e.product for e in (*r.evidence, *r.context) if e.product}
    for name in sorted(names, key=len, reverse=True):  # a name inside a longer one goes last
        text = text.replace(name, short_product_name(name))
    return text


def _criterion_parts(
    r: CriterionResult, outcome: Outcome | None = None, words: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """A deciding criterion's icon and title as the card shows it."""
    not_met_title = (words or {}).get("notMetTitles", {}).get(r.id)
    if r.result is Tri.NOT_MET and not_met_title and outcome is not Outcome.DOES_NOT_MEET:
        # A criterion whose failing opens a route ("under 12" opens the children's route) is
        # a fact supporting the outcome, in the words the policy gives it.
        return "✅", _md(not_met_title)
    if outcome is Outcome.MEETS and r.result is Tri.NOT_MET:
        # On a "meets" card a criterion not met decided it through a "not" (e.g. the under-12
        # route): it supports the outcome, so it is not shown as a failure.
        return "✅", f"Not '{_md(r.title)}'"
    return _ICON[r.result], _md(r.title)


def _criterion_line(
    r: CriterionResult, outcome: Outcome | None = None, words: Mapping[str, Any] | None = None
) -> str:
    text = clinical_text(_short_products(r.reason, r))
    dates = [e.date for e in r.evidence if e.date is not None]
    if r.result is Tri.MET and dates and not _ISO_DATE.search(r.reason):
        text = f"{text.rstrip('.')}; last recorded {day_text(max(dates))}."
    icon, title = _criterion_parts(r, outcome, words)
    return f"- {icon} {title}: {_md(text)}"


def _criteria_in_brief(decision: Decision) -> str:
    """The criteria that decided the outcome in one paragraph, by title: "✅ Type 1 diabetes;
    Aged 12 or over. ❌ HbA1c 69 mmol/mol or above on MDI." (their evidence is in the app)."""
    by_icon: dict[str, list[str]] = {}
    for c in decision.decided_by:
        icon, title = _criterion_parts(
            decision.criteria[c], decision.outcome, decision.policy.presentation
        )
        by_icon.setdefault(icon, []).append(title)
    return " ".join(f"{icon} {'; '.join(titles)}." for icon, titles in by_icon.items())


def _unknown_line(r: CriterionResult) -> str:
    """A decisive unknown, and what would settle it. When the record holds something that did
    not settle it (an old finding, an implausible result, a contradiction, an expired
    confirmation, a referral), the criterion's reason says what and why it was not used."""
    why = f": {_what_is_held(r, r.reason)}" if _held(r) else "."
    settled = f" Settled by {_md(clinical_text(r.missing))}." if r.missing else ""
    return f"- ❓ **{_md(r.title)}** could change the outcome{why}{settled}"


def _what_is_held(r: CriterionResult, reason: str) -> str:
    """``reason`` with the first note of what was read and not used (an implausible result,
    an expired confirmation) that it does not already quote, as card markdown."""
    notes = [c.summary for c in r.context if c.summary not in r.reason]
    text = " ".join([reason, *(f"{n[0].upper()}{n[1:]}." for n in notes[:1])])
    return _md(clinical_text(_short_products(text, r)))


def _first_sentence(text: str) -> str:
    first, stop, _ = text.partition(". ")
    return f"{first}." if stop else text


def _held(r: CriterionResult) -> bool:
    """An unknown the record holds something about (an old finding, an implausible result, an
    expired confirmation): its reason says what, and why it was not used."""
    return bool(r.evidence or r.context)


def _holds_said(decision: Decision, detail: str) -> int:
    """For how many decisive unknowns the record holds something about ``detail`` says what
    and why it was not used."""
    held = [decision.criteria[c] for c in decision.decisive if _held(decision.criteria[c])]
    return sum(
        f"- ❓ **{_md(r.title)}** could change the outcome:" in detail
        or f"**{_md(r.title)}** (" in detail
        for r in held
    )


def _held_first(decision: Decision) -> list[str]:
    """The decisive unknowns, those the record holds something about first (a needle phobia
    last recorded five years ago is the likeliest to be confirmed, and what a clinician
    recognises), each group in the policy's order."""
    decisive = list(decision.decisive)
    return sorted(decisive, key=lambda c: not _held(decision.criteria[c]))


def _held_in_brief(r: CriterionResult) -> str:
    """What the record holds about an unknown, in brackets after its title: the record that
    did not settle it, as the first sentence of the reason, without the title again ("last
    recorded on 21 Nov 2021, more than 24 months ago: not current evidence"); or, where the
    record holds only context (a referral, an implausible result), the first of that."""
    if r.context and not r.evidence:
        return _md(clinical_text(_short_products(r.context[0].summary, r)))
    text = _what_is_held(r, _first_sentence(r.reason)).rstrip(".")
    return text.removeprefix(f"{_md(r.title)} ")


def _unknowns_in_brief(rs: list[tuple[CriterionResult, bool]], shown: int, more: bool) -> str:
    """Decisive unknowns by title in one paragraph: the first ``shown`` of them and each
    marked to say what the record holds about it (in brackets, the first sentence of why it
    was not used); the rest counted. Why each is unknown, and what would settle it, are in
    the assessment app."""
    named = [
        f"**{_md(r.title)}** ({_held_in_brief(r)})" if held else f"**{_md(r.title)}**"
        for i, (r, held) in enumerate(rs)
        if i < shown or held
    ]
    titles = "; ".join(named)
    if len(rs) > len(named):
        titles += f" and {len(rs) - len(named)} more"
    return f"❓ {'Also could' if more else 'Could'} change the outcome: {titles}."


NOT_CHECKED = "Not checked from the record"


def judged_by_clinician(r: CriterionResult) -> bool:
    """Met by a clinician's confirmation of this criterion: the clinician judged the whole
    clause, the parts the record cannot show included. (A composite is never confirmable: its
    parts' confirmations say nothing about its own clauses.)"""
    return r.confirmable and any(e.matched_by == "confirmation" for e in r.evidence)


def not_checked(decision: Decision) -> list[str]:
    """Every clause the outcome rests on that the record cannot show (the policy file's
    ``presentation.notChecked``, by criterion id), for each criterion that decided the
    outcome by being *met* from the record, each unknown that could change it, and each
    composite holding one of those (its own clause, e.g. "despite best possible management").

    A criterion met by a clinician's confirmation is not listed (the clinician judged it),
    nor one that decided the outcome by failing (its clause cannot matter).
    """
    words: Mapping[str, str] = decision.policy.presentation.get("notChecked", {})
    met = [
        c
        for c in decision.decided_by
        if decision.criteria[c].result is Tri.MET and not judged_by_clinician(decision.criteria[c])
    ]
    ids = [*met, *decision.decisive, *decision.composites]
    return list(dict.fromkeys(words[c] for c in ids if c in words))


def _head(decision: Decision) -> str:
    title = pathway_title(decision)
    diagnoses = unknown_diagnoses(decision)
    if title is None and diagnoses:
        which = " or ".join(decision.criteria[c].title.lower() for c in diagnoses)
        return f"**{OUTCOME_WORDS[decision.outcome]}**: the diagnosis ({_md(which)}) is unknown."
    if title is None:
        return f"**{_md(clinical_text(decision.reason))}**"
    way = "through" if decision.outcome is Outcome.MEETS else "for"
    return f"**{OUTCOME_WORDS[decision.outcome]}** {way} the {_md(title)} pathway."


def also_meets_line(names: tuple[str, ...]) -> str:
    """One line naming the other technologies whose criteria the patient also meets."""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"Also meets {listed}."


def detail_markdown(
    decision: Decision,
    note: str | None = None,
    also: tuple[str, ...] = (),
    room_px: int | None = None,
    lossless: tuple[str, ...] = (),
    heights: dict[str, int] | None = None,
) -> str:
    """The card's detail, at most ``MAX_DETAIL_LINES`` lines and, given ``room_px``, no taller
    than that in the Sandbox's layout (``cds_cards.popup``). ``heights``: each line's height
    as ``cds_cards.popup.detail_px`` measured it, kept across the drafts of one card.

    Always shown: the notes that lead, the outcome and pathway, the unknowns that could change
    it (by title, first: they are what a clinician can act on), what was read and not used,
    the reading warnings that could change it (not those in ``lossless``), an overdue policy,
    the policy and "advisory".
    Then, while there is room, in this order: what the record holds about an unknown and why
    it was not used (an old finding, an implausible result); every clause the record cannot
    show (else their count); each unknown in full, with what would settle it; the criteria
    that decided the outcome (by title); each of those criteria with its evidence; the
    policy's footnotes.
    What does not fit is in the assessment app the card links to, and the card says so.
    """
    policy = decision.policy
    first = [f"> {_md(note)}"] if note else []
    first += [f"> {_md(n)}" for n in decision.notices]
    outcome = _head(decision)
    first.append(outcome)
    if decision.deceased:  # no eligibility is assessed: no criteria, nothing to settle
        return _paragraphs([*first, _policy_line(decision)])
    asked = [
        decision.criteria[c]
        for c in dict.fromkeys([*unknown_diagnoses(decision), *_held_first(decision)])
    ]
    decided = [
        _criterion_line(decision.criteria[c], decision.outcome, policy.presentation)
        for c in decision.decided_by
    ]
    unknown = [_unknown_line(r) for r in asked]
    in_brief = _criteria_in_brief(decision) if decided else ""
    also_line = _md(also_meets_line(also)) if also else ""
    safety = _safety_lines(decision, "\n".join([*decided, *unknown]), lossless)
    checks = not_checked(decision)
    footnotes = [
        f"_{_md(foot['text'])}_"
        for foot in policy.presentation.get("footnotes", ())  # the policy's, e.g. on under-12s
        if decision.pathway == foot["pathway"]
        and (shown := decision.criteria.get(foot["when"])) is not None
        and shown.result.value == foot["is"]
    ]

    def compose(
        titles: int,
        forms: tuple[int, ...],
        brief: bool,
        all_checks: bool,
        whole: bool,
        feet: bool,
    ) -> list[str]:
        """The detail with each unknown by title (form 0), with what the record holds about
        it (1), or in full with what would settle it (2), ``titles`` of those by title named;
        the deciding criteria in ``brief`` (beside the outcome) or ``whole``; every unchecked
        clause or their count; the footnotes."""
        head = list(first)
        lead = outcome
        if brief and decided and not whole:
            lead = f"{lead} {in_brief}"
        items = [line for line, form in zip(unknown, forms, strict=True) if form == 2]
        rest = [(r, form == 1) for r, form in zip(asked, forms, strict=True) if form < 2]
        briefly = [_unknowns_in_brief(rest, titles, bool(items))] if rest else []
        if not items and briefly:  # the unknowns beside the outcome: what can be done first
            lead, briefly = f"{lead} {briefly[0]}", []
        if also:  # in the outcome's paragraph: no paragraph's margin or broken line to pay
            lead = f"{lead} {also_line}"
        head[head.index(outcome)] = lead
        if whole:
            items += decided
        checked = []
        if checks and all_checks:
            checked = [f"{NOT_CHECKED}: " + "; ".join(_md(c) for c in checks) + "."]
        counted = "" if all_checks or not checks else _not_checked_count(len(checks))
        return [
            *head,
            *items,
            *briefly,
            *(footnotes if feet else []),
            *checked,
            *safety,
            _policy_line(decision, counted),
        ]

    heights = {} if heights is None else heights  # a line's height, measured once a card

    def fits(lines: list[str]) -> bool:
        return len(lines) <= MAX_DETAIL_LINES and (
            room_px is None or detail_px(lines, heights) <= room_px
        )

    # The smallest card first, then each addition in turn while it still fits: every unknown
    # named; what the record holds about an unknown and why it was not used; every unchecked
    # clause; each unknown in full, with what would settle it; the deciding criteria; the
    # criteria with their evidence; the footnotes.
    shape: dict[str, Any] = {
        "titles": 1,
        "forms": (0,) * len(asked),
        "brief": False,
        "all_checks": False,
        "whole": False,
        "feet": False,
    }
    steps: list[dict[str, Any]] = [{"titles": n} for n in range(2, len(asked) + 1)]
    steps += [{"form": (i, 1)} for i, r in enumerate(asked) if _held(r)]
    steps.append({"all_checks": True})
    steps += [{"form": (i, 2)} for i in range(len(asked))]
    steps += [{"brief": True}, {"whole": True}, {"feet": True}]
    for step in steps:
        if "form" in step:
            i, form = step.pop("form")
            step["forms"] = tuple(form if j == i else f for j, f in enumerate(shape["forms"]))
        tried = {**shape, **step}
        if fits(compose(**tried)):
            shape = tried
        elif "titles" in step:
            break  # the unknowns are named in their order
    return _paragraphs(compose(**shape))


def _not_checked_count(n: int) -> str:
    """The clauses the record cannot show, counted: each is named in the full assessment."""
    return f" {NOT_CHECKED}: {n} {'clause' if n == 1 else 'clauses'}."


def _safety_lines(decision: Decision, said: str, lossless: tuple[str, ...]) -> list[str]:
    """What a card always says: a record read and not used (once, unless a criterion's line
    already names it), records not shown to be this patient's, the reading warnings that
    could change the outcome, and a policy past its review date."""
    out = []
    unsaid = [
        n for n in (_md(clinical_text(e.summary)) for e in decision.not_used) if n not in said
    ]
    if unsaid:
        out.append("; ".join(unsaid) + ".")
    if decision.not_theirs:
        out.append(not_theirs_line(decision.not_theirs))
    shown = card_warnings(decision, lossless)
    if shown:  # records not used, and searches the server did not do as asked
        n = len(shown)
        out.append(
            f"⚠️ {n} {'warning' if n == 1 else 'warnings'} from reading the record (records "
            "not read or not used) may bear on the outcome: see the full assessment."
        )
    if decision.policy_overdue:
        out.append(
            f"⚠️ **This policy was due for review on {day_text(decision.policy.review_due)}**: "
            "check that it is still current."
        )
    return out


def card_warnings(decision: Decision, lossless: tuple[str, ...] = ()) -> list[str]:
    """The warnings from reading the record that the card shows: those that could change the
    outcome, because something of the record may not have been read or used (a search cut
    short, a record skipped as malformed, the FHIR server's own warning). Not those in
    ``lossless``, which lost nothing of it (a search the server could not filter by patient,
    filtered here; a prefetch fetched again): they cannot change it, and are in the assessment
    app. Records set aside as another person's are counted on their own line."""
    shown_elsewhere = {n.warning for n in decision.not_theirs} | set(lossless)
    return [w for w in decision.warnings if w not in shown_elsewhere]


def not_theirs_line(refused: tuple[NotTheirs, ...]) -> str:
    """The records not used because they are not shown to be this patient's, counted by why:
    "1 result and 1 record not used: about another person; 2 records not used: not shown to
    be this patient's" (an Observation is a result). Which ones, and why each, are in the
    full assessment."""
    by_why: dict[str, list[NotTheirs]] = {}
    for n in refused:
        by_why.setdefault(n.why, []).append(n)
    parts = []
    for why, found in by_why.items():
        results = sum(n.resource_type == "Observation" for n in found)
        counted = [(results, "result"), (len(found) - results, "record")]
        what = " and ".join(f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counted if n)
        parts.append(f"{what} not used: {why}")
    return "⚠️ " + "; ".join(_md(p) for p in parts) + " (see the full assessment)."


ADVISORY = "_Advisory only: the clinician decides._"
POLICY_LINK_NOT_SET = "Policy document link not configured for this deployment."
IFR_LINK_NOT_SET = "IFR route link not configured for this deployment."
BOTH_LINKS_NOT_SET = "Policy document and IFR route links not configured for this deployment."


def _policy_line(decision: Decision, also: str = "") -> str:
    """The policy document, the individual funding request (IFR) route where a pathway fails,
    ``also`` (a sentence), and "advisory", in one paragraph (the policy's version and review
    date are in the card's source). A link the deployment has not configured is said to be
    missing, never replaced by a home page."""
    policy = decision.policy
    label = _md(str(policy.presentation.get("policyLinkLabel") or policy.title))
    ifr = funding_route_shown(decision)
    ifr_url = policy.funding_request_url
    if not policy.url and ifr and not ifr_url:
        line = BOTH_LINKS_NOT_SET
    else:
        line = f"[{label}]({policy.url})." if policy.url else POLICY_LINK_NOT_SET
        if ifr:
            line += f" [IFR route]({ifr_url})." if ifr_url else f" {IFR_LINK_NOT_SET}"
    return f"{line}{also} {ADVISORY}"


def source_label(decision: Decision) -> str:
    """The card's source: the policy, its version and review date."""
    policy = decision.policy
    return (
        f"{policy.presentation['sourceLabel']}, version {policy.version}, "
        f"review due {day_text(policy.review_due)}"
    )


def funding_route_shown(decision: Decision) -> bool:
    """Whether a card names the individual funding request route: where the criteria are not
    met and the policy has one (a patient recorded as deceased has none)."""
    return (
        decision.outcome is not Outcome.MEETS
        and not decision.deceased
        and decision.policy.funding_route
    )


def _paragraphs(body: list[str]) -> str:
    """One line per paragraph or list item: blank lines keep paragraphs apart."""
    out: list[str] = []
    for line in body:
        if out and not (line.startswith("- ") and out[-1].startswith("- ")):
            out.append("")
        out.append(line)
    return "\n".join(out)


def detail_blocks(detail: str) -> list[str]:
    """A card's detail as its paragraphs, list items and quoted notes, one a line."""
    return [line for line in detail.splitlines() if line.strip()]


def rendered_lines(detail: str) -> int:
    """How many lines a card's detail shows: its non-blank lines."""
    return sum(1 for line in detail.splitlines() if line.strip())


def extension(decision: Decision) -> dict[str, Any]:
    """The machine-readable decision: the card's ``extension`` value, and the CLI's --json."""
    deceased: dict[str, Any] = {"deceased": True} if decision.deceased else {}
    if decision.deceased_implausible:  # possibly deceased: the record's death is not plausible
        deceased["deceasedImplausible"] = decision.deceased_implausible
    return {
        "outcome": decision.outcome.value,
        **deceased,
        "pathway": decision.pathway,
        "policy": {
            "id": decision.policy.id,
            "version": decision.policy.version,
            "reviewDue": decision.policy.review_due.isoformat(),
        },
        "criteria": [  # always present: empty for a deceased patient, nothing was assessed
            _omit_empty(
                {
                    "id": r.id,
                    "result": r.result.value,
                    "evidence": [e.ref for e in r.evidence],
                    "reason": r.reason,
                }
            )
            for r in decision.criteria.values()
            if not decision.deceased
        ],
        **_omit_empty(
            {
                "decisive": list(decision.decisive),
                "warnings": list(decision.warnings),  # records not used; searches not done as asked
                # records read and not used that every output names (an HbA1c after today)
                "notUsed": [{"ref": e.ref, "reason": e.summary} for e in decision.not_used],
            }
        ),
    }


def confirmation_observation(
    policy: PolicyInfo,
    r: CriterionResult,
    patient_id: str,
    user_ref: str | None,
    now: datetime,
    user_name: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A clinician's confirmation that criterion ``r`` is met: the Observation a card's
    suggestion creates and the assessment app writes (``facts`` reads it back). It is about
    the patient, not one policy: every policy that reads the criterion reads it. The
    clinician's ``reason``, when given, is its note."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [{"system": policy.criteria_system, "code": r.id, "display": r.title}],
            "text": f"{r.title}: confirmed by a clinician",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": now.isoformat(timespec="seconds"),
        "valueBoolean": True,
    }
    if user_ref:
        performer = {"reference": user_ref}
        if user_name:  # the name the clinician signed in with, so the evidence says who
            performer["display"] = user_name
        resource["performer"] = [performer]
    if reason:
        resource["note"] = [{"text": reason}]
    return resource


def _suggestions(
    decision: Decision, ctx: CardContext, patient_view: bool = False
) -> list[dict[str, Any]]:
    """'Record a confirmation' for each decisive unknown a clinician can confirm (at most
    ``MAX_SUGGESTIONS``, on patient-view ``MAX_PATIENT_VIEW_SUGGESTIONS``: a confirmation
    that alone would make the criteria met first); the draft referral when the criteria are
    met and the policy has one.

    Unknowns that could not change the outcome get no button: they would only be noise.
    """
    out: list[dict[str, Any]] = []
    if decision.deceased:
        return out
    if decision.outcome is Outcome.MEETS:
        referral = decision.policy.presentation.get("referral")
        if referral:
            out.append(_referral_suggestion(referral, ctx))
        return out
    confirmable = [c for c in _held_first(decision) if decision.criteria[c].confirmable]
    if patient_view:
        confirmable = [c for c in decision.one_judgement_away if c in confirmable] + confirmable
    limit = MAX_PATIENT_VIEW_SUGGESTIONS if patient_view else MAX_SUGGESTIONS
    for cid in list(dict.fromkeys(confirmable))[:limit]:
        r = decision.criteria[cid]
        out.append(
            {
                "label": f"I confirm: {r.title}",
                "uuid": ctx.new_uuid(),
                "isRecommended": False,
                "actions": [
                    {
                        "type": "create",
                        "description": f"Record a clinician confirmation that '{r.title}' is met",
                        "resource": confirmation_observation(
                            decision.policy, r, ctx.patient_id, ctx.user_ref, ctx.now
                        ),
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


APP_LINK_LABEL = "Full assessment, confirmations and funding evidence"


def app_context(decision: Decision) -> str:
    """The SMART link's ``appContext``: which decision the app is opened about (no patient
    identifiers: the EHR's launch context carries the patient)."""
    return json.dumps(
        {
            "policy": decision.policy.id,
            "version": decision.policy.version,
            "outcome": decision.outcome.value,
            "pathway": decision.pathway,
            "evaluated": decision.evaluated_on.isoformat(),
        },
        separators=(",", ":"),
    )


def _links(decision: Decision, app_url: str | None) -> list[dict[str, str]]:
    """The assessment app first (the action when there is no suggestion), then any links the
    policy adds. The policy document and the IFR route are linked from the detail's policy
    line: a button each would push the card past what a pop-up shows."""
    links = []
    if app_url and not decision.deceased:  # no assessment to open for a patient who died
        links.append(
            {
                "label": APP_LINK_LABEL,
                "url": app_url,
                "type": "smart",
                "appContext": app_context(decision),
            }
        )
    links += [
        {**link, "type": "absolute"} for link in decision.policy.presentation.get("links", [])
    ]
    return links


def eligibility_card(
    decision: Decision, ctx: CardContext, *, patient_view: bool = False
) -> dict[str, Any]:
    """The single eligibility card for a decision. Optional fields that are empty are omitted."""
    words = decision.policy.presentation
    suggestions = _suggestions(decision, ctx, patient_view)
    summary = _summary(decision, patient_view)
    links = _links(decision, ctx.app_url)
    source: dict[str, Any] = {
        "label": source_label(decision),
        "url": decision.policy.url or None,
        "topic": {"system": TOPIC_SYSTEM, **words["topic"]},
    }
    # Of the cards that fit, the one that says what the record holds about the most unknowns
    # (a needle phobia recorded years ago, an implausible result), then with the most
    # confirmation buttons; else one button. The assessment app offers every one.
    tries = []
    heights: dict[str, int] = {}  # each line's height, measured once for all the tries
    for n in range(len(suggestions), 0 if suggestions else -1, -1):
        offered = suggestions[:n]
        room = detail_room_px(
            patient_view, summary, source["label"], [s["label"] for s in offered], len(links)
        )
        detail = detail_markdown(decision, ctx.note, ctx.also, room, ctx.lossless, heights)
        fits = detail_px(detail_blocks(detail), heights) <= room
        tries.append((fits, _holds_said(decision, detail), len(offered), offered, detail))
    fitting = [t for t in tries if t[0]]
    *_, suggestions, detail = max(fitting, key=lambda t: t[:3]) if fitting else tries[-1]
    card: dict[str, Any] = {
        "uuid": ctx.new_uuid(),
        "summary": summary,
        "detail": detail,
        "indicator": "info" if decision.outcome is Outcome.MEETS else "warning",
        "source": _omit_empty(source),
        "suggestions": suggestions,
        "selectionBehavior": "any" if suggestions else None,
        "overrideReasons": [{"system": OVERRIDE_SYSTEM, **r} for r in words["overrideReasons"]],
        "links": links,
        "extension": {EXTENSION_KEY: extension(decision)},
    }
    return _omit_empty(card)


def _omit_empty(obj: dict[str, Any]) -> dict[str, Any]:
    """CDS Hooks: optional fields are omitted rather than sent as null, "", [] or {}.

    ``pathway`` inside the extension is the one deliberate null (its schema allows it).
    """
    return {k: v for k, v in obj.items() if v not in (None, "", [], {}) or k == "pathway"}
