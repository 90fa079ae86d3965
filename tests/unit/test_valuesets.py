"""Value sets: data files with provenance, loaded once, failing loudly, extendable locally."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.valueset import ValueSet as FhirValueSet

from facts.extract import classify
from policy import load_policy
from valuesets import (
    BUILTIN_DIR,
    EXT_SOURCE,
    EXT_VERIFICATION,
    QUALIFIERS_FILE,
    TECHNOLOGY_FILE,
    ValueSetError,
    load_value_sets,
)

# A source cited by the number of a search-index hit names nothing a reader can follow.
SEARCH_HIT = re.compile(r"\bids? \d{7,}")
BUILTIN_FILES = sorted(
    p for p in BUILTIN_DIR.glob("*.json") if p not in (QUALIFIERS_FILE, TECHNOLOGY_FILE)
)


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda p: p.stem)
def test_every_builtin_file_is_a_valid_fhir_valueset_with_provenance(path: Path) -> None:
    doc = json.loads(path.read_text())
    FhirValueSet.model_validate(doc)  # raises on anything FHIR would reject
    assert doc["id"] == path.stem
    assert doc["description"]
    assert doc["date"]
    assert doc["version"]
    for include in doc.get("compose", {}).get("include", []):
        for concept in include["concept"]:
            urls = {e["url"] for e in concept.get("extension", [])}
            assert EXT_VERIFICATION in urls, f"{path.name}: {concept['code']} has no verification"
            (source,) = [e["valueString"] for e in concept["extension"] if e["url"] == EXT_SOURCE]
            # A codelist a reader can follow, or "no public codelist": never a search-index hit.
            assert source.strip(), f"{path.name}: {concept['code']} has no source"
            assert not SEARCH_HIT.search(source), source
            assert "index id" not in source, source
    assert not SEARCH_HIT.search(doc["description"])


@pytest.mark.parametrize(
    "code",
    ["1142044000", "1172389004", "1217077001", "15777000"],
)
def test_refset_members_that_are_not_the_concept_are_left_out(code: str) -> None:
    # DMTYPE1_COD members marked "review before use" (malnutrition-related diabetes, insulin
    # coma in a non-diabetic) and prediabetes.
    assert load_value_sets().lookup("http://snomed.info/sct", code) == ()


@pytest.mark.parametrize("code", ["703136005", "703137001", "703138006"])
def test_remission_codes_are_in_the_remission_set(code: str) -> None:
    # The type 1 / type 2 refsets include their remission codes; the diagnosis rule excludes
    # any record that is also in diabetes-in-remission.
    sets = {c.value_set for c in load_value_sets().lookup("http://snomed.info/sct", code)}
    assert "diabetes-in-remission" in sets


def test_the_policy_has_every_value_set_it_names() -> None:
    vsl = load_value_sets()
    vsl.require(load_policy("iport-advance").value_sets)


def test_dmd_codes_are_found_under_both_snomed_and_dmd_systems() -> None:
    vsl = load_value_sets()
    aspart = "3468611000001108"
    for system in ("https://dmd.nhs.uk", "http://snomed.info/sct"):
        (hit,) = vsl.lookup(system, aspart)
        assert hit.value_set == "insulin"
        assert hit.insulin_action == "bolus"


def test_hba1c_codes_carry_their_implied_unit() -> None:
    vsl = load_value_sets()
    assert vsl.lookup("http://loinc.org", "4548-4")[0].implied_unit == "%"
    assert vsl.lookup("http://snomed.info/sct", "999791000000106")[0].implied_unit == "mmol/mol"


def _local_needle_phobia(folder: Path, **extra: Any) -> None:
    """A local value set adding the code NP01 of a GP system to the needle-phobia set."""
    (folder / "local-needle-phobia.json").write_text(
        json.dumps(
            {
                "resourceType": "ValueSet",
                "id": "needle-phobia",
                "status": "active",
                "compose": {
                    "include": [
                        {"system": "http://example.org/gp-local", "concept": [{"code": "NP01"}]}
                    ]
                },
                **extra,
            }
        )
    )


def test_local_codes_extend_a_builtin_value_set_without_code_change(tmp_path: Path) -> None:
    _local_needle_phobia(
        tmp_path,
        extension=[
            {
                "url": "https://iport-cds.example.org/fhir/StructureDefinition/text-match-term",
                "valueString": "aichmophobia",
            }
        ],
    )
    vsl = load_value_sets([tmp_path])
    assert vsl.lookup("http://example.org/gp-local", "NP01")[0].value_set == "needle-phobia"
    assert vsl.find_terms("Aichmophobia")[0].value_set == "needle-phobia"
    assert vsl.lookup("http://hl7.org/fhir/sid/icd-10-cm", "F40.231")  # built-ins kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read JSON"),
        ('{"resourceType": "CodeSystem", "id": "x"}', "not a FHIR ValueSet"),
        ('{"resourceType": "ValueSet", "id": "x", "compose": {"include": [{}]}}', "has no system"),
        ('{"resourceType": "ValueSet", "id": "x"}', "neither concepts nor"),
        (
            '{"resourceType": "ValueSet", "id": "x", "compose": {"include": '
            '[{"system": "s", "filter": [{}]}]}}',
            "only explicit concepts",
        ),
    ],
)
def test_a_malformed_file_fails_loading_and_names_the_file(
    tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text(content)
    with pytest.raises(ValueSetError, match=message) as exc:
        load_value_sets([tmp_path])
    assert "broken.json" in str(exc.value)


def test_a_missing_extra_folder_fails_loading(tmp_path: Path) -> None:
    with pytest.raises(ValueSetError, match="does not exist"):
        load_value_sets([tmp_path / "nope"])


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("i-Port Advance 9mm", "iport-device"),
        ("IPORT", "iport-device"),
        ("Hypoglycemia unawareness", "disabling-hypoglycaemia"),
        ("Impaired awareness of hypoglycaemia", "disabling-hypoglycaemia"),
        ("no severe hypoglycaemia", None),
        ("Support port", None),
    ],
)
def test_terms(text: str, found: str | None) -> None:
    hits = {h.value_set for h in load_value_sets().find_terms(text)}
    assert (found in hits) if found else not hits & {"iport-device", "disabling-hypoglycaemia"}


def test_a_concept_is_classified_by_its_own_library_however_often_it_repeats(
    tmp_path: Path,
) -> None:
    """Classification is remembered per concept (records repeat codes); what one library
    says about a concept is never what another library answers."""
    _local_needle_phobia(tmp_path)
    concept = {"coding": [{"system": "http://example.org/gp-local", "code": "NP01"}]}
    builtin, local = load_value_sets([]), load_value_sets([tmp_path])
    for _ in range(2):
        assert classify(concept, builtin) == []
        assert [m.value_set for m in classify(concept, local)] == ["needle-phobia"]
    coded_and_said = {**concept, "text": "needle phobia"}
    assert [(m.value_set, m.matched_by) for m in classify(coded_and_said, builtin)] == [
        ("needle-phobia", "term")
    ]
