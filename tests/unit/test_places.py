"""Where a patient is registered: practice → place tables, tenant mapping, unknown place; and
the bins of the dashboard's trend."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

import places
from dashboard.data import trend
from disclosure import OFF
from store import Filter

GP = "https://fhir.nhs.uk/Id/ods-organization-code"
KNOWN = ("hull", "north-yorkshire", "vale-of-york")


def patient(*refs: dict[str, object]) -> dict[str, object]:
    return {"resourceType": "Patient", "id": "p", "generalPractitioner": list(refs)}


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (patient({"identifier": {"system": GP, "value": "B81001"}}), "B81001"),
        (patient({"identifier": {"system": GP, "value": " b81001 "}}), "B81001"),
        (
            patient({"reference": "Practitioner/1"}, {"identifier": {"system": GP, "value": "Y"}}),
            None,
        ),
        (patient({"identifier": {"system": "https://other.example/ids", "value": "B81001"}}), None),
        (patient({"identifier": {"system": GP, "value": "<script>"}}), None),
        (patient({"reference": "Organization/B81001"}), None),  # a FHIR id is not an ODS code
        ({"resourceType": "Patient", "id": "p"}, None),
        ({"resourceType": "Patient", "generalPractitioner": "B81001"}, None),
        (None, None),
    ],
)
def test_practice_code_is_read_only_from_an_ods_identifier(
    resource: dict[str, object] | None, expected: str | None
) -> None:
    assert places.practice_code(resource) == expected


def test_the_practice_decides_then_the_tenant_then_unknown() -> None:
    directory = places.PlaceDirectory({"B81001": "hull"}, {"trust-a": "vale-of-york"})
    assert directory.place_of("B81001", "trust-a") == "hull"
    assert directory.place_of("Z99999", "trust-a") == "vale-of-york"
    assert directory.place_of(None, "trust-a") == "vale-of-york"
    assert directory.place_of("Z99999", "trust-b") == places.UNKNOWN
    assert directory.place_of(None, None) == places.UNKNOWN
    assert places.place_name(None) == "Unknown place"
    assert places.place_name("vale-of-york") == "Vale of York"


def table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "practices.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_practice_table_loads(tmp_path: Path) -> None:
    path = table(tmp_path, "\ufeffpractice_code,place\nB81001,hull\nb82002, north-yorkshire\n")
    assert places.load_practice_places(path, KNOWN) == {
        "B81001": "hull",
        "B82002": "north-yorkshire",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,place\nB81001,hull\n", "header must be exactly 'practice_code,place'"),
        ("practice_code,place\nB81001,atlantis\n", "line 2: place 'atlantis' is not one of"),
        ("practice_code,place\nB8/1001,hull\n", "line 2: practice_code 'B8/1001' is not an ODS"),
        ("practice_code,place\nB81001,hull\nB81001,hull\n", "line 3: practice B81001 is listed"),
        ("practice_code,place\nB81001,Hull City\n", "line 2: place 'Hull City' is not a place id"),
    ],
)
def test_a_malformed_practice_table_names_the_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(places.PlaceTableError, match=re.escape(message)):
        places.load_practice_places(table(tmp_path, text), KNOWN)


def test_the_tenant_mapping_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(places.PlaceTableError, match="PLACE_BY_TENANT"):
        places.load_directory(None, ["hull"], KNOWN)
    with pytest.raises(places.PlaceTableError, match=r"PLACE_BY_TENANT\['t'\]"):
        places.load_directory(None, {"t": "atlantis"}, KNOWN)
    with pytest.raises(places.PlaceTableError, match="cannot read"):
        places.load_directory(tmp_path / "missing.csv", {}, KNOWN)
    loaded = places.load_directory(None, {"t": "hull"}, KNOWN)
    assert loaded.places == ("hull",)


def test_a_national_policy_covers_every_place_and_england_is_no_place() -> None:
    """NICE guidance names 'england' in ``placesCovered``: it applies in every place of the
    deployment, and 'England' is never a place to map a practice to or filter by."""
    iport = ("hull", "east-riding", "vale-of-york")
    assert places.local_places([iport, ("england",)]) == frozenset(iport)
    assert places.local_places([("england",)]) == frozenset()
    every = ("vale-of-york", "hull", "east-riding")
    assert places.coverage(("england",), every) == ("east-riding", "hull", "vale-of-york")
    assert places.coverage(("hull",), every) == ("hull",)
    text = places.coverage_text(("england",), every)
    assert text == (
        "every place (East Riding of Yorkshire, Hull, Vale of York): "
        "national guidance for all of England"
    )
    assert places.coverage_text(("vale-of-york", "hull"), every) == "Hull, Vale of York"


def test_a_practice_cannot_be_mapped_to_england(tmp_path: Path) -> None:
    table = tmp_path / "practices.csv"
    table.write_text("practice_code,place\nB81001,england\n", encoding="utf-8")
    known = places.local_places([KNOWN, ("england",)])
    with pytest.raises(places.PlaceTableError, match="line 2: place 'england' is not one of"):
        places.load_practice_places(table, known)


@pytest.mark.parametrize(
    ("start", "end", "size", "bins"),
    [
        (date(2026, 10, 23), date(2026, 11, 21), "day", 30),
        (date(2026, 9, 23), date(2026, 11, 21), "day", 60),  # 60 days: still daily
        (date(2026, 9, 22), date(2026, 11, 21), "week", 9),  # 61 days: weeks from Monday
        (date(2025, 11, 22), date(2026, 11, 21), "month", 13),
    ],
)
def test_the_trend_is_daily_up_to_60_days_then_weekly_then_monthly(
    start: date, end: date, size: str, bins: int
) -> None:
    per_day = {end: {"meets-criteria": 2, "cards": 1}, start: {"no-decision": 1}}
    out = trend(Filter(start, end), per_day, OFF)
    assert out["bin"] == size
    assert len(out["rows"]) == bins
    assert sum(r["evaluations"] for r in out["rows"]) == 3
    assert out["rows"][-1]["meets-criteria"] == 2
    assert out["rows"][-1]["cards"] == 1
