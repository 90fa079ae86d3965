"""Free text counts only when it says this patient has the finding now.

The phrases that say otherwise (a relative, a screen or questionnaire, a risk, a query, a past
history, a denial) are data: ``valuesets/text-qualifiers.json``. This table is real-world
phrasing from UK primary-care and diabetes-clinic records, positive and negative.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from valuesets import QUALIFIERS_FILE, ValueSetError, load_qualifiers, load_value_sets

VSL = load_value_sets()

# (text, the value set it asserts, or None when it asserts none of the finding sets)
PHRASES: list[tuple[str, str | None]] = [
    # Asserted of this patient, now
    ("Needle phobia", "needle-phobia"),
    ("Severe needle phobia - avoids injections", "needle-phobia"),
    ("Fear of needles", "needle-phobia"),
    ("Pt has significant fear of injections, missing doses", "needle-phobia"),
    ("Trypanophobia", "needle-phobia"),
    ("Injection phobia - referred to diabetes psychology", "needle-phobia"),
    ("Needle anxiety++ at clinic today", "needle-phobia"),
    ("Needle-phobic, avoids injecting at school", "needle-phobia"),
    ("Very needle phobic - misses lunchtime bolus", "needle-phobia"),
    ("Lipohypertrophy both sides of abdomen", "lipohypertrophy"),
    ("Injecting into lipohypertrophy despite advice", "lipohypertrophy"),
    ("Lipo-hypertrophy at injection sites", "lipohypertrophy"),
    ("Impaired awareness of hypoglycaemia", "impaired-hypoglycaemia-awareness"),
    ("Hypoglycaemia unawareness, Gold 5", "impaired-hypoglycaemia-awareness"),
    ("Loss of hypoglycaemic warning", "impaired-hypoglycaemia-awareness"),
    ("Poor adherence to insulin regimen", "non-adherence"),
    ("Omitting insulin doses most days", "non-adherence"),
    ("Non-compliance with medication", "non-adherence"),
    ("Type 1 diabetes", "type-1-diabetes"),
    ("T1DM on basal bolus", "type-1-diabetes"),
    ("Type 2 diabetes mellitus", "type-2-diabetes"),
    # A child patient's own history: "child" alone, or in "childhood", names no one else
    ("Childhood-onset type 1 diabetes", "type-1-diabetes"),
    ("Needle phobia since childhood, still avoids injections", "needle-phobia"),
    ("Husband gives injections because of her needle phobia", "needle-phobia"),
    # A relative's, not the patient's
    ("Family history of needle phobia (mother)", None),
    ("FH: type 1 diabetes - father", None),
    ("Mother has needle phobia", None),
    ("Needle phobia in sister", None),
    ("Family hx type 2 diabetes", None),
    # Another person's: a partner, a child, a carer
    ("Needle phobia - husband", None),
    ("Partner has needle phobia", None),
    ("Son: needle phobia", None),
    ("Needle phobia (wife)", None),
    ("Needle phobia in daughter", None),
    ("Child has needle phobia", None),
    ("Wife has type 1 diabetes", None),
    ("Lipohypertrophy - carer", None),
    ("Spouse: fear of needles", None),
    ("Her son is needle phobic", None),
    ("Kids have needle phobia", None),
    ("Twin has type 1 diabetes", None),
    ("Grandchild: needle phobia", None),
    ("Needle phobia - his wife", None),
    # A screen, questionnaire, risk or score
    ("Needle phobia screening questionnaire: low risk", None),
    ("Needle phobia screen - negative", None),
    ("Risk of lipohypertrophy discussed", None),
    ("At risk of hypoglycaemia unawareness", None),
    ("Fear of injections questionnaire completed", None),
    ("Hypoglycaemia unawareness score (Gold) 2", None),
    # Queried, suspected, possible
    ("?Needle phobia", None),
    ("Query lipohypertrophy - examine next visit", None),
    ("Suspected impaired awareness of hypoglycaemia", None),
    ("Possible needle phobia", None),
    ("Type 1 diabetes?", None),
    ("Probable lipohypertrophy", None),
    # Past, not now
    ("History of needle phobia", None),
    ("H/O lipohypertrophy", None),
    ("Previous needle phobia, now self-injecting", None),
    ("Needle phobia as a child", None),
    ("Previously needle phobic as a child", None),
    ("Needle phobia - much improved, now injecting", None),
    ("Needle phobia overcome with CBT", None),
    ("Type 2 diabetes in remission", None),
    # Denied
    ("No needle phobia", None),
    ("Not needle phobic", None),
    ("Denies fear of needles", None),
    ("No evidence of lipohypertrophy", None),
    ("Lipohypertrophy: none", None),
    ("Needle phobia - resolved", None),
    ("Injection sites checked, no lipohypertrophy", None),
    ("Lipohypertrophy ruled out on examination", None),
    # Advice about it is not it
    ("Advice about lipohypertrophy given", None),
    ("Leaflet on needle phobia given", None),
    # "discussed" after a term reads as a discussion, not a statement that it is present (the
    # intention cues: "insulin pump discussed" is not a pump); a clinician may confirm
    ("Needle phobia discussed with DSN", None),
    ("Needle phobia, declined flu vaccine", "needle-phobia"),
]

FINDING_SETS = {
    "needle-phobia",
    "lipohypertrophy",
    "impaired-hypoglycaemia-awareness",
    "disabling-hypoglycaemia",
    "non-adherence",
    "type-1-diabetes",
    "type-2-diabetes",
}


def test_the_table_has_at_least_40_phrasings_both_ways() -> None:
    assert len(PHRASES) >= 40
    assert sum(1 for _, vs in PHRASES if vs) >= 15
    assert sum(1 for _, vs in PHRASES if vs is None) >= 25


@pytest.mark.parametrize(("text", "value_set"), PHRASES, ids=[t for t, _ in PHRASES])
def test_text_counts_only_when_it_asserts_the_finding_now(text: str, value_set: str | None) -> None:
    asserted = {h.value_set for h in VSL.find_terms(text)} & FINDING_SETS
    if value_set is None:
        assert asserted == set()
    else:
        assert value_set in asserted


# Needle phobia said of another person, as records write it
ABOUT_ANOTHER_PERSON = [
    "Needle phobia - husband",
    "Partner has needle phobia",
    "Son: needle phobia",
    "Needle phobia (wife)",
    "Needle phobia in daughter",
    "Child has needle phobia",
    "Mother has needle phobia",
    "Family history of needle phobia (mother)",
]


@pytest.mark.parametrize("text", ABOUT_ANOTHER_PERSON)
def test_text_about_another_person_is_said_to_be_about_another_person(text: str) -> None:
    assert "needle-phobia" in {h.value_set for h in VSL.find_terms_about_others(text)}


@pytest.mark.parametrize(
    "text", ["Needle phobia", "No needle phobia", "?Needle phobia", "History of needle phobia"]
)
def test_text_about_no_one_else_is_not_said_to_be_about_another_person(text: str) -> None:
    assert VSL.find_terms_about_others(text) == ()


def test_the_qualifiers_file_names_its_provenance_and_every_group_says_why() -> None:
    doc = json.loads(QUALIFIERS_FILE.read_text())
    assert "No public codelist" in doc["provenance"]
    groups = load_qualifiers()
    assert {
        "negation",
        "family-history",
        "relative",
        "other-person",
        "screening",
        "uncertain",
        "past",
    } <= {g.id for g in groups}
    assert all(g.why for g in groups)
    others = {g.id for g in groups if g.about_another_person}
    assert others == {"family-history", "relative", "other-person"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"groups": []}, "non-empty 'groups'"),
        ({"provenance": ""}, "provenance"),
        ({"groups": [{"id": "x", "why": "y"}]}, "lists no phrases"),
        ({"groups": [{"id": "x", "why": "y", "before": "no"}]}, "list of phrases"),
        ({"groups": [{"id": "x", "why": "y", "before": ["no"], "beforeWords": 0}]}, "1 to 10"),
        ({"groups": [{"id": "x", "why": "y", "befor": ["no"]}]}, "unknown keys"),
        ({"groups": [{"id": "x", "before": ["no"]}]}, "needs a 'why'"),
        (
            {"groups": [{"id": "x", "why": "y", "before": ["no"], "aboutAnotherPerson": "yes"}]},
            "true or false",
        ),
    ],
)
def test_a_malformed_qualifiers_file_fails_at_load_naming_the_file(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    doc = json.loads(QUALIFIERS_FILE.read_text()) | change
    path = tmp_path / "text-qualifiers.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueSetError, match=message) as exc:
        load_qualifiers(path)
    assert str(path) in str(exc.value)
