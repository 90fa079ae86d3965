"""The concise card for every demo patient and both policies, fixed as golden files.

A card must fit an EHR pop-up: at most 12 lines of detail, no FHIR references or resource ids
in anything a clinician reads (they stay in the ``iport-cds.eligibility`` extension), and
buttons only for the unknowns that could change the outcome.

To accept intended changes: UPDATE_GOLDEN=1 pytest tests/unit/test_concise_cards.py, then
review the diff of tests/golden/cards/ like any other code change.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from cds_cards import EXTENSION_KEY, CardContext, detail_markdown, eligibility_card
from cds_cards.popup import detail_px, detail_room_px
from cds_cards.render import (
    ADVISORY,
    MAX_DETAIL_LINES,
    MAX_SUGGESTIONS,
    NOT_CHECKED,
    PRODUCT_NAME_MAX_CHARS,
    detail_blocks,
    rendered_lines,
    short_product_name,
)
from cli.evaluate import Core, decide_file, load_core
from demo import PATIENTS_DIR
from policy import Decision, Policy, Tri, load_policy
from policy.loading import policy_names
from tests.builders import (
    DMD,
    GLARGINE_VTM,
    HYPO_EVENT,
    IMPAIRED_AWARENESS,
    LIPO,
    NON_ADHERENCE,
    PID,
    T1DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    patient,
)
from valuesets import BUILTIN_DIR

CARDS = Path(__file__).resolve().parents[1] / "golden" / "cards"
TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
APP_URL = "https://cds.example.nhs.uk/review/launch"
# Every shipped policy, each with one golden card per demo patient (UPDATE_GOLDEN=1 writes
# a new policy's cards).
POLICIES = policy_names()
PATIENTS = sorted(p.stem for p in PATIENTS_DIR.glob("*.json"))
# "Condition/abc", "Patient/iport-demo-x": any FHIR reference, in whatever a clinician reads.
FHIR_REFERENCE = re.compile(r"\b[A-Z][a-z][A-Za-z]*/[A-Za-z0-9\-.]{1,64}\b")


@functools.cache
def _core(policy: str) -> Core:
    return load_core(policy)


def card_for(policy: str, patient: str) -> dict[str, Any]:
    decision, pid = decide_file(_core(policy), PATIENTS_DIR / f"{patient}.json", TODAY, None)
    uuids = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 100))
    ctx = CardContext(
        patient_id=pid or "unknown",
        user_ref="Practitioner/demo-clinician",
        now=NOW,
        new_uuid=lambda: next(uuids),
        app_url=APP_URL,
    )
    # A policy that serves only patient-view is shown by its patient-view card (it speaks
    # when the criteria are met, or where a deployment chooses, one judgement away); one with
    # an order hook by its order card
    patient_view = not any(
        s.hook.startswith("order-") for s in _core(policy).policies[decision.policy.id].services
    )
    return eligibility_card(decision, ctx, patient_view=patient_view)


def full_detail(policy: str, patient: str) -> str:
    """A demo patient's card detail where a pop-up has room for every line (at most
    ``MAX_DETAIL_LINES``): each criterion that decided the outcome with its evidence."""
    decision, _ = decide_file(_core(policy), PATIENTS_DIR / f"{patient}.json", TODAY, None)
    return detail_markdown(decision)


def _read_texts(card: dict[str, Any]) -> list[str]:
    """Everything on the card a clinician reads (not the machine-readable extension)."""
    texts = [card["summary"], card["detail"]]
    texts += [s["label"] for s in card.get("suggestions", [])]
    texts += [a["description"] for s in card.get("suggestions", []) for a in s["actions"]]
    texts += [link["label"] for link in card.get("links", [])]
    return texts


CASES = [(policy, patient) for policy in POLICIES for patient in PATIENTS]


@pytest.mark.parametrize(("policy", "patient"), CASES)
def test_concise_card_golden(policy: str, patient: str) -> None:
    card = card_for(policy, patient)
    expected = CARDS / policy / f"{patient}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    assert card == json.loads(expected.read_text())


@pytest.mark.parametrize(("policy", "patient"), CASES)
def test_card_fits_a_pop_up_and_names_no_resources(policy: str, patient: str) -> None:
    card = card_for(policy, patient)
    assert rendered_lines(card["detail"]) <= MAX_DETAIL_LINES, card["detail"]
    for text in _read_texts(card):
        assert not FHIR_REFERENCE.search(text), text
    assert len(card["summary"]) < 140
    assert "Advisory" in card["detail"]
    ext = card["extension"]["iport-cds.eligibility"]
    assert ext["policy"]["version"] in card["source"]["label"]


@pytest.mark.parametrize(("policy", "patient"), CASES)
def test_buttons_only_for_decisive_confirmable_unknowns(policy: str, patient: str) -> None:
    decision, _ = decide_file(_core(policy), PATIENTS_DIR / f"{patient}.json", TODAY, None)
    card = card_for(policy, patient)
    confirmations = [
        a["resource"]["code"]["coding"][0]["code"]
        for s in card.get("suggestions", [])
        for a in s["actions"]
        if a["resource"]["resourceType"] == "Observation"
    ]
    assert len(confirmations) <= MAX_SUGGESTIONS
    for cid in confirmations:
        assert cid in decision.decisive
        assert decision.criteria[cid].result is Tri.UNKNOWN
        assert decision.criteria[cid].confirmable


def test_every_card_links_the_assessment_app_with_the_decision() -> None:
    card = card_for("iport-advance", "t2-no-specialist")
    (smart,) = [link for link in card["links"] if link["type"] == "smart"]
    assert smart["url"] == APP_URL
    assert json.loads(smart["appContext"]) == {
        "policy": "hny-iport-advance",
        "version": "2025-12-04",
        "outcome": "insufficient-information",
        "pathway": "type-2",
        "evaluated": "2026-11-21",
    }


def test_a_type_2_patient_with_needle_phobia_is_asked_only_about_the_specialist() -> None:
    card = card_for("iport-advance", "t2-no-specialist")
    labels = [s["label"] for s in card["suggestions"]]
    assert labels == ["I confirm: Recommended by a diabetes specialist"]
    # already met: shown as deciding (where the card has room), not asked
    assert "Needle phobia" in full_detail("iport-advance", "t2-no-specialist")
    assert "MDI impractical" not in card["detail"]


def test_a_long_card_is_cut_to_its_pop_up_keeping_what_it_must_say() -> None:
    # Four alternatives still open, a companion note, clauses not checked and an unreadable
    # record on an order card: the card is cut to the room its pop-up leaves, the unknowns
    # that could change the outcome first and each named or counted, and never cut away: the
    # note, the warning, the policy, "advisory".
    decision, pid = decide_file(
        _core("iport-advance"), PATIENTS_DIR / "t1-no-iport-criterion.json", TODAY, None
    )
    decision = dataclasses.replace(decision, warnings=("an HbA1c result could not be read",))
    ctx = CardContext(
        str(pid), None, NOW, lambda: "u", note="A companion policy's note.", app_url=APP_URL
    )
    card = eligibility_card(decision, ctx)
    detail = card["detail"]
    room = detail_room_px(
        False,
        card["summary"],
        card["source"]["label"],
        [s["label"] for s in card.get("suggestions", [])],
        len(card["links"]),
    )
    assert detail_px(detail_blocks(detail)) <= room
    assert detail.startswith("> A companion policy's note.")
    named = [c for c in decision.decisive if f"**{decision.criteria[c].title}**" in detail]
    more = re.search(r"and (\d+) more", detail)
    assert len(named) + (int(more.group(1)) if more else 0) == len(decision.decisive) == 4
    assert detail.index("Could change the outcome") < detail.index("warning from reading")
    assert "1 warning from reading the record" in detail
    assert "Policy document and IFR route links not configured for this deployment." in detail
    assert detail.endswith(ADVISORY)
    # what there was no room for is in the full assessment, and in a detail with room
    assert len(detail) < len(detail_markdown(decision, ctx.note))


CUT_SHORT = "medications: more than 10 pages; the rest was not read."
FILTERED = (
    "devices: the FHIR server does not support this search as asked; its answer was "
    "filtered to this patient (3 other record(s) set aside)."
)


@pytest.mark.parametrize(
    ("warnings", "lossless", "counted"),
    [
        pytest.param((CUT_SHORT,), (), 1, id="a search cut short: could change the outcome"),
        pytest.param((FILTERED,), (FILTERED,), 0, id="a search filtered here: lost nothing"),
        pytest.param((CUT_SHORT, FILTERED), (FILTERED,), 1, id="both"),
    ],
)
def test_a_reading_warning_is_on_the_card_only_when_it_could_change_the_outcome(
    warnings: tuple[str, ...], lossless: tuple[str, ...], counted: int
) -> None:
    decision, pid = decide_file(
        _core("iport-advance"), PATIENTS_DIR / "t1-mdi-needle-phobia.json", TODAY, None
    )
    decision = dataclasses.replace(decision, warnings=warnings)
    card = eligibility_card(
        decision, CardContext(str(pid), None, NOW, lambda: "u", lossless=lossless)
    )
    line = "1 warning from reading the record (records not read or not used) may bear on"
    assert (line in card["detail"]) is bool(counted)
    # every warning is in the extension (and so in the assessment app), on the card or not
    assert card["extension"][EXTENSION_KEY]["warnings"] == list(warnings)


def test_there_is_a_card_golden_for_every_demo_patient() -> None:
    assert len(PATIENTS) >= 10


# -- What the record cannot show: every clause a ✅ rests on ---------------------------------------
# A criterion met from data is met by a reading of its clause: the card names what that reading
# leaves out, for each criterion the outcome rests on (met, or an unknown that could change it),
# and not when a clinician's confirmation met it (the clinician judged the whole clause).
PUMP = load_policy("nice-insulin-pump")
HCL = load_policy("nice-hybrid-closed-loop")
BASAL_BOLUS = (insulin(GLARGINE_VTM, text="once daily at night"), insulin(text="with meals"))
LIBRE_2 = (DMD, "39094611000001105", "FreeStyle Libre 2 Sensor (Abbott Laboratories Ltd)")
HIGH_CARE = "HbA1c high 'despite a high level of care'"
AVOIDING = "'avoiding/missing insulin injections' because of the needle phobia"
DISABLING = (
    "that the hypoglycaemia is disabling ('persistent anxiety about recurrence', "
    "'a significant adverse effect on quality of life')"
)
COMPLIANCE = "that the high HbA1c is 'related to poor compliance'"
SUPPORT = "lipohypertrophy 'despite support and advice to avoid these areas'"
BEST_MANAGEMENT = "'despite best possible management'"
T1_ADULT = (patient(), condition(T1DM))
SENSOR = {**insulin(LIBRE_2), "authoredOn": "2026-10-01", "dosageInstruction": []}


def _not_checked_line(decision: Decision) -> str:
    detail = detail_markdown(decision)  # where the card has room: every line it can give
    assert rendered_lines(detail) <= MAX_DETAIL_LINES, detail
    lines = [line for line in detail.splitlines() if line.startswith(NOT_CHECKED)]
    assert len(lines) <= 1, detail
    return lines[0] if lines else ""


NOT_CHECKED_CASES = [
    # (policy, record, clauses shown, clauses not shown)
    pytest.param(
        None,
        (*T1_ADULT, hba1c(75), *BASAL_BOLUS, condition(text="Needle phobia")),
        [HIGH_CARE, AVOIDING],
        [DISABLING, COMPLIANCE, SUPPORT],
        id="needle-phobia-recorded",
    ),
    pytest.param(
        None,
        (*T1_ADULT, hba1c(75), *BASAL_BOLUS, confirmation("needle-phobia")),
        [HIGH_CARE],
        [AVOIDING],
        id="needle-phobia-confirmed",
    ),
    pytest.param(
        None,
        (*T1_ADULT, hba1c(60), *BASAL_BOLUS, condition(IMPAIRED_AWARENESS), condition(LIPO)),
        [DISABLING, SUPPORT],
        [HIGH_CARE],
        id="impaired-awareness-and-lipohypertrophy-recorded",
    ),
    pytest.param(
        None,
        (
            *T1_ADULT,
            hba1c(60),
            *BASAL_BOLUS,
            condition(HYPO_EVENT, onset="2026-05-01"),
            condition(HYPO_EVENT, onset="2026-08-01"),
            confirmation("lipohypertrophy"),
        ),
        [DISABLING],
        [SUPPORT, HIGH_CARE],
        id="episodes-on-two-days-and-lipohypertrophy-confirmed",
    ),
    pytest.param(
        None,
        (
            *T1_ADULT,
            hba1c(60),
            *BASAL_BOLUS,
            confirmation("disabling-hypoglycaemia"),
            condition(LIPO),
        ),
        [SUPPORT],
        [DISABLING],
        id="disabling-hypoglycaemia-confirmed",
    ),
    pytest.param(
        None,
        (*T1_ADULT, hba1c(75), *BASAL_BOLUS, condition(NON_ADHERENCE)),
        [HIGH_CARE, COMPLIANCE],
        [AVOIDING],
        id="poor-adherence-recorded",
    ),
    pytest.param(
        None,
        (*T1_ADULT, hba1c(75), *BASAL_BOLUS, confirmation("hba1c-above-69-with-poor-adherence")),
        [HIGH_CARE],
        [COMPLIANCE],
        id="poor-adherence-confirmed",
    ),
    pytest.param(
        None,  # does not meet: an HbA1c that failed rests on no unchecked clause
        (*T1_ADULT, hba1c(55), *BASAL_BOLUS, confirmation("disabling-hypoglycaemia", False)),
        [],
        [HIGH_CARE, DISABLING],
        id="does-not-meet",
    ),
    pytest.param(
        None,  # not enough information: the unknowns that could change it carry their clauses
        (*T1_ADULT, hba1c(75), *BASAL_BOLUS),
        [HIGH_CARE, AVOIDING, COMPLIANCE, SUPPORT],
        [DISABLING],
        id="decisive-unknowns",
    ),
    pytest.param(
        PUMP,
        (*T1_ADULT, hba1c(60), *BASAL_BOLUS, condition(IMPAIRED_AWARENESS)),
        [DISABLING],
        [HIGH_CARE],
        id="pump-impaired-awareness",
    ),
    pytest.param(
        HCL,
        (*T1_ADULT, hba1c(61), SENSOR),
        [BEST_MANAGEMENT],
        [DISABLING],
        id="hcl-hba1c-and-cgm-recorded",
    ),
    pytest.param(
        HCL,
        (*T1_ADULT, hba1c(50), condition(IMPAIRED_AWARENESS), confirmation("uses-csii")),
        [DISABLING, BEST_MANAGEMENT],  # confirming a pump is in use is not judging management
        [],
        id="hcl-impaired-awareness-and-csii-confirmed",
    ),
    pytest.param(
        HCL,  # not enough information: the technology is what is asked about
        (*T1_ADULT, hba1c(61)),
        [BEST_MANAGEMENT],
        [DISABLING],
        id="hcl-technology-decisive",
    ),
    pytest.param(
        HCL,  # not enough information: a confirmed pump, and no HbA1c or hypoglycaemia yet
        (*T1_ADULT, confirmation("uses-csii")),
        [BEST_MANAGEMENT, DISABLING],
        [],
        id="hcl-csii-confirmed-hba1c-unknown",
    ),
]


@pytest.mark.parametrize(("policy", "resources", "shown", "not_shown"), NOT_CHECKED_CASES)
def test_the_card_names_every_clause_the_outcome_rests_on_that_the_record_cannot_show(
    decide: Callable[..., Decision],
    policy: Policy | None,
    resources: tuple[dict[str, Any], ...],
    shown: list[str],
    not_shown: list[str],
) -> None:
    line = _not_checked_line(decide(*resources, policy=policy))
    for clause in shown:
        assert clause in line, line
    for clause in not_shown:
        assert clause not in line, line
    assert bool(line) is bool(shown)


def test_every_clause_the_card_can_name_belongs_to_a_criterion_of_its_policy() -> None:
    for policy in (load_policy("iport-advance"), PUMP, HCL):
        known = {c.id for c in policy.criteria} | {d.id for d in policy.derived}
        assert set(policy.info.presentation["notChecked"]) <= known


# -- Product names: short on the card, whole in the assessment app and the extension -----------
def _displays(*value_sets: str) -> list[str]:
    """Every concept display of the shipped value sets ``value_sets``."""
    out = []
    for vs in value_sets:
        doc = json.loads((BUILTIN_DIR / f"{vs}.json").read_text())
        out += [c["display"] for inc in doc["compose"]["include"] for c in inc.get("concept", [])]
    return out


PRODUCTS = _displays("insulin", "real-time-cgm", "intermittently-scanned-cgm")
LANTUS = "Lantus 100units/ml solution for injection 3ml pre-filled SoloStar pens (Sanofi)"
SHORT_NAMES = [
    # dm+d VMP: the form and pack go, the strength stays
    (
        "Insulin aspart 100units/ml solution for injection 3ml pre-filled disposable devices",
        "Insulin aspart 100units/ml",
    ),
    (
        "Insulin isophane biphasic human 30/70 100units/ml suspension for injection 3ml "
        "pre-filled disposable devices",
        "Insulin isophane biphasic human 30/70 100units/ml",
    ),
    (
        "Insulin glargine 100units/ml / Lixisenatide 33micrograms/ml solution for injection 3ml "
        "pre-filled disposable devices",
        "Insulin glargine 100units/ml / Lixisenatide 33micrograms/ml",
    ),
    # dm+d AMP: the brand and device name stay, the supplier goes
    (
        "NovoRapid FlexPen 100units/ml solution for injection 3ml pre-filled pens "
        "(Novo Nordisk Ltd)",
        "NovoRapid FlexPen 100units/ml",
    ),
    (
        "Lantus 100units/ml solution for injection 3ml pre-filled SoloStar pens (Sanofi)",
        "Lantus 100units/ml",
    ),
    # dm+d AMPP and AMP of a device: the supplier and the pack go
    ("Dexcom G7 Sensor (Dexcom International Ltd) 1 kit", "Dexcom G7 Sensor"),
    ("FreeStyle Libre 2 Sensor (Abbott Laboratories Ltd)", "FreeStyle Libre 2 Sensor"),
    # RxNorm: the dose form goes, the brand stays
    (
        "Insulin Lispro 100 UNT/ML Injectable Solution [Humalog]",
        "Insulin Lispro 100 UNT/ML [Humalog]",
    ),
    # still longer than the limit without its form: cut at a word, with an ellipsis
    (
        "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML Injectable "
        "Suspension [Humulin]",
        "insulin isophane, human 70 UNT/ML / insulin, regular, human…",
    ),
    ("Insulin glargine", "Insulin glargine"),  # short already
]


@pytest.mark.parametrize(("name", "short"), SHORT_NAMES)
def test_a_product_name_has_a_readable_short_form(name: str, short: str) -> None:
    assert name in PRODUCTS  # a real name, as the shipped value sets carry it
    assert short_product_name(name) == short


@pytest.mark.parametrize("limit", [20, 30, 40, PRODUCT_NAME_MAX_CHARS])
def test_every_shipped_product_name_fits_the_limit_and_starts_as_the_name_does(limit: int) -> None:
    for name in PRODUCTS:
        short = short_product_name(name, limit)
        assert len(short) <= limit, short
        words = [w for w in short.removesuffix("…").split() if not w.startswith("[")]
        assert name.startswith(" ".join(words))  # the name's own first words, in order
        if short.endswith("…"):  # cut at a word boundary: the last word shown is whole
            stem = short.removesuffix("…")
            assert name.startswith(stem)
            assert name[len(stem)] in " ,"


def test_the_card_shows_short_product_names_and_the_extension_the_full_ones(
    decide: Callable[..., Decision],
) -> None:
    aspart = insulin(
        (
            DMD,
            "3468611000001108",
            "Insulin aspart 100units/ml solution for injection 3ml cartridges",
        ),
        text="with meals",
    )
    glargine = (DMD, "11933011000001106", LANTUS)
    d = decide(*T1_ADULT, hba1c(75), aspart, insulin(glargine, text="at night"))
    card = eligibility_card(d, CardContext(PID, None, NOW, lambda: "u"))
    detail = detail_markdown(d)
    assert "Insulin aspart 100units/ml (rapid- or short-acting)" in detail
    assert "Lantus 100units/ml (basal)" in detail
    assert "solution for injection" not in detail
    assert "Sanofi" not in detail
    reasons = " ".join(c["reason"] for c in card["extension"][EXTENSION_KEY]["criteria"])
    assert "Insulin aspart 100units/ml solution for injection 3ml cartridges" in reasons
    assert LANTUS in reasons
    assert LANTUS in d.criteria["hba1c-69-or-above-on-mdi"].reason  # what the app shows


# -- An HbA1c read and not used is named on the card, as the record shows it ---------------------
@pytest.mark.parametrize(
    ("result", "named"),
    [
        (hba1c(80, "mmol/L", on="2026-10-15"), "HbA1c 80 mmol/L (15 Oct 2026): unit 'mmol/L' not "),
        (hba1c(80, on="2027-02-01"), "HbA1c 80 mmol/mol (1 Feb 2027): dated after today, not used"),
        (hba1c(250, on="2026-10-15"), "HbA1c 250 mmol/mol (15 Oct 2026): implausible, not used"),
    ],
)
def test_the_card_names_an_hba1c_it_did_not_use_and_why(
    decide: Callable[..., Decision], result: dict[str, Any], named: str
) -> None:
    d = decide(*T1_ADULT, *BASAL_BOLUS, result, condition(text="Needle phobia"))
    assert "hba1c-69-or-above-on-mdi" in d.decisive
    detail = detail_markdown(d)
    line = next(x for x in detail.splitlines() if "HbA1c 69 mmol/mol or above on MDI" in x)
    assert named in line
    assert rendered_lines(detail) <= MAX_DETAIL_LINES


def test_a_record_with_both_types_active_names_no_pathway_and_asks_about_both() -> None:
    # Type 1 and type 2 both active: neither pathway is known to apply.
    card = card_for("iport-advance", "t1-t2-conflicting-types")
    assert "pathway" not in card["summary"]
    head = card["detail"].split("\n\n")[0]
    assert "pathway" not in head
    assert "the diagnosis (type 1 diabetes or type 2 diabetes) is unknown" in head
    assert "**Type 1 diabetes**" in card["detail"]
    assert "**Type 2 diabetes**" in card["detail"]
    detail = full_detail("iport-advance", "t1-t2-conflicting-types")
    assert "- ❓ **Type 1 diabetes** could change the outcome" in detail
    assert "- ❓ **Type 2 diabetes** could change the outcome" in detail
    assert "✅ Type" not in detail


# -- A fact that opens a route reads as the fact, not as a failure ---------------------------------
@pytest.mark.parametrize(
    ("policy", "patient", "line"),
    [
        ("iport-advance", "t1-child-mdi-impractical", "- ✅ Under 12: Aged 9"),  # meets
        ("iport-advance", "t1-hcl-child-on-omnipod-5", "- ✅ Under 12: Aged 11"),  # undecided
        ("nice-insulin-pump", "t1-hcl-child-on-omnipod-5", "- ✅ Under 12: Aged 11"),
        ("nice-hybrid-closed-loop", "t1-hcl-child-on-omnipod-5", "- ✅ Under 18: Aged 11"),
    ],
)
def test_a_child_s_age_is_shown_as_under_12_not_as_a_failed_criterion(
    policy: str, patient: str, line: str
) -> None:
    detail = full_detail(policy, patient)
    assert line in detail
    assert "Not 'Aged" not in detail
    assert "❌ Aged" not in detail


def test_the_hba1c_on_mdi_line_carries_the_hba1c_date_not_the_insulin_date(
    decide: Callable[..., Decision],
) -> None:
    # Insulin prescribed on 10 Jan 2026, HbA1c taken on 15 Oct 2026: each date beside its fact.
    d = decide(*T1_ADULT, *BASAL_BOLUS, hba1c(75, on="2026-10-15"), condition(text="Needle phobia"))
    detail = detail_markdown(d)
    mdi_line = next(x for x in detail.splitlines() if "or above on MDI" in x)
    assert "latest 75 on 15 Oct 2026" in mdi_line
    assert "last recorded" not in mdi_line
    assert "10 Jan 2026" not in mdi_line


# -- Card markdown: record text is inert and reads as written ------------------------------------
def _rendered(detail: str) -> tuple[str, set[str], list[str]]:
    """What an EHR that renders card markdown (CommonMark, raw HTML allowed) shows: the text a
    clinician reads, the kinds of token it produced (raw HTML, images) and the links."""
    tokens = MarkdownIt("commonmark").parse(detail)
    inline = [child for t in tokens for child in (t.children or [])]
    text = "".join(c.content for c in inline if c.type in ("text", "code_inline"))
    links = [str(c.attrs.get("href")) for c in inline if c.type == "link_open"]
    return text, {t.type for t in [*tokens, *inline]}, links


INJECTIONS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "![x](https://evil.example/x.png)",
    "<https://evil.example>",
    "&lt;b&gt;bold&lt;/b&gt; &#60;i&#62;",
    "<!-- hidden --> </p> <!DOCTYPE html>",
    "**shout** _lean_ `code` # heading | cell ~~struck~~",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_record_text_renders_as_written_and_never_as_markup(
    decide: Callable[..., Decision], evil: str
) -> None:
    d = decide(*T1_ADULT, condition(text=f"Needle phobia {evil}"))
    detail = detail_markdown(d)
    text, kinds, links = _rendered(detail)
    assert evil in text  # shown as the record has it
    assert not kinds & {"html_inline", "html_block", "image", "code_inline"}
    assert links == [u for u in [d.policy.url] if u]  # the policy's own link, nothing else


def test_a_greater_than_sign_renders_as_itself_not_as_an_entity(
    decide: Callable[..., Decision],
) -> None:
    d = decide(*T1_ADULT, *BASAL_BOLUS, hba1c(75), condition(NON_ADHERENCE, onset="2026-10-01"))
    detail = detail_markdown(d)
    assert "&gt;" not in detail
    line = "Latest HbA1c 75 mmol/mol (1 Sep 2026) is > 69"
    assert line in detail  # as an EHR that shows markdown as text shows it
    text, _, _ = _rendered(detail)
    assert line in text  # as one that renders it shows it


# -- A result dated after today is named on every card, whatever the outcome --------------------
FUTURE = "HbA1c 80 mmol/mol (3 Mar 2027): dated after today, not used"


@pytest.mark.parametrize("patient_view", [False, True])
@pytest.mark.parametrize(
    ("policy", "others"),
    [
        ("iport-advance", (hba1c(75), *BASAL_BOLUS, condition(text="Needle phobia"))),  # meets
        ("iport-advance", (hba1c(62), *BASAL_BOLUS)),  # the HbA1c decides: not 'remained high'
        ("nice-insulin-pump", (hba1c(75), *BASAL_BOLUS)),
        ("nice-hybrid-closed-loop", (hba1c(75), SENSOR)),  # meets TA943 1.1
        ("nice-hybrid-closed-loop", ()),  # the only result: the reason names it already
    ],
)
def test_an_hba1c_dated_after_today_is_named_on_the_card_and_in_the_extension(
    decide: Callable[..., Decision], policy: str, others: tuple[Any, ...], patient_view: bool
) -> None:
    d = decide(*T1_ADULT, *others, hba1c(80, on="2027-03-03"), policy=load_policy(policy))
    card = eligibility_card(d, CardContext(PID, None, NOW, lambda: "u"), patient_view=patient_view)
    assert card["detail"].count(FUTURE) == 1, card["detail"]
    assert rendered_lines(card["detail"]) <= MAX_DETAIL_LINES
    ext = card["extension"][EXTENSION_KEY]
    assert [n["reason"] for n in ext["notUsed"]] == [
        "HbA1c 80 mmol/mol (2027-03-03): dated after today, not used"
    ]
