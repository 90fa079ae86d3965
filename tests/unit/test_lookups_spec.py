"""Where and who a person counts for in a population's tables, as executable examples: the
postcode's canonical form, the practice → primary care network table, postcode → small area →
deprivation quintile (by small area, never by postcode district), the current home postcode,
and the NHS ethnic category from the UK Core extension."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from places import ethnicity, lookups

TODAY = date(2026, 12, 7)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("HU1 2AB", "HU1 2AB"),
        ("hu12ab", "HU1 2AB"),  # no space, lower case
        ("  HU1   2AB ", "HU1 2AB"),  # any spacing
        ("YO10 5DD", "YO10 5DD"),
        ("yo105dd", "YO10 5DD"),
        ("EC1A 1BB", "EC1A 1BB"),  # a sub-district letter
        ("W1A0AX", "W1A 0AX"),
        ("M1 1AE", "M1 1AE"),
        ("GIR0AA", "GIR 0AA"),
        ("HU1", None),  # a district is not a postcode
        ("HU1 2", None),  # nor is a sector
        ("HU1 2CB", None),  # C is never a unit letter
        ("QU1 2AB", None),  # Q never starts a postcode
        ("1HU 2AB", None),
        ("HU1 2AB X", None),
        ("", None),
        (None, None),
        (12345, None),
    ],
)
def test_a_postcode_is_upper_cased_spaced_once_and_checked_against_the_uk_format(
    text: Any, canonical: str | None
) -> None:
    assert lookups.normalise_postcode(text) == canonical


def csv_file(tmp_path: Path, text: str, name: str = "lookup.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_practice_network_table_loads(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "\ufeffpractice_ods,pcn_code,pcn_name\n"
        "B81001,U12345,Hull Central PCN\n"
        "b81002 , u12345 ,  Hull  Central PCN \n"
        "B82001,U67890,Vale of York North PCN\n",
    )
    networks = lookups.load_practice_networks(path)
    assert networks == {
        "B81001": lookups.Network("U12345", "Hull Central PCN"),
        "B81002": lookups.Network("U12345", "Hull Central PCN"),
        "B82001": lookups.Network("U67890", "Vale of York North PCN"),
    }
    assert networks.get("Z99999") is None  # an unmapped practice has no network


PCN = "practice_ods,pcn_code,pcn_name\n"
POSTCODES = "postcode,lsoa_code\n"
IMD = "lsoa_code,imd_quintile\n"


@pytest.mark.parametrize(
    ("loader", "text", "message"),
    [
        (lookups.load_practice_networks, "practice,pcn\nB81001,U1\n", "header must be exactly"),
        (lookups.load_practice_networks, PCN + "B8/1001,U12345,A PCN\n", "line 2: practice_ods"),
        (lookups.load_practice_networks, PCN + "B81001,U 1,A PCN\n", "line 2: pcn_code 'U 1'"),
        (lookups.load_practice_networks, PCN + "B81001,U12345,\n", "line 2: pcn_name must be"),
        (lookups.load_practice_networks, PCN + "B81001,U12345\n", "line 2: needs exactly 3"),
        (
            lookups.load_practice_networks,
            PCN + "B81001,U12345,A PCN\nB81001,U12345,A PCN\n",
            "line 3: practice_ods B81001 is listed twice",
        ),
        (
            lookups.load_practice_networks,
            PCN + "B81001,U12345,A PCN\nB81002,U12345,B PCN\n",
            "line 3: network U12345 is named 'A PCN' above",
        ),
        (lookups.load_postcode_areas, POSTCODES + "HU1,E01012345\n", "line 2: postcode is not"),
        (lookups.load_postcode_areas, POSTCODES + "HU1 2AB,HU1\n", "line 2: lsoa_code 'HU1'"),
        (
            lookups.load_postcode_areas,
            POSTCODES + "HU1 2AB,E01012345\nhu12ab,E01012346\n",
            "line 3: postcode HU1 2AB is listed twice",
        ),
        (lookups.load_area_quintiles, IMD + "E01012345,6\n", "line 2: imd_quintile must be 1"),
        (lookups.load_area_quintiles, IMD + "E01012345,\n", "line 2: imd_quintile must be 1"),
        (lookups.load_area_quintiles, "area_code,quintile\nHU1,1\n", "header must be exactly"),
    ],
)
def test_a_malformed_lookup_names_the_file_and_line(
    tmp_path: Path, loader: Any, text: str, message: str
) -> None:
    with pytest.raises(lookups.LookupTableError, match=re.escape(message)):
        loader(csv_file(tmp_path, text))


def test_a_missing_lookup_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(lookups.LookupTableError, match=r"missing\.csv: cannot read"):
        lookups.load_area_quintiles(tmp_path / "missing.csv")


@pytest.fixture
def deprivation(tmp_path: Path) -> lookups.Deprivation:
    # Two small areas of one postcode district with opposite quintiles: a district-level
    # lookup could not tell these people apart.
    areas = csv_file(
        tmp_path,
        POSTCODES + "HU1 2AB,E01012345\nhu13de,E01012346\nHU1 4EF,E01099999\n",
        "postcodes.csv",
    )
    quintiles = csv_file(tmp_path, IMD + "E01012345,1\nE01012346,5\n", "imd.csv")
    return lookups.load_deprivation(areas, quintiles)


@pytest.mark.parametrize(
    ("postcode", "quintile", "status"),
    [
        ("HU1 2AB", "1", lookups.POSTCODE_MATCHED),
        ("HU12AB", "1", lookups.POSTCODE_MATCHED),  # written without the space
        ("hu1 2ab", "1", lookups.POSTCODE_MATCHED),
        ("HU1 3DE", "5", lookups.POSTCODE_MATCHED),  # same district, another small area
        ("HU1 9ZZ", "", lookups.POSTCODE_UNMATCHED),  # a postcode the lookup does not hold
        ("HU1 4EF", "", lookups.AREA_UNRATED),  # its small area has no quintile
        ("HU1", "", lookups.POSTCODE_INVALID),  # a district is not enough
        ("not known", "", lookups.POSTCODE_INVALID),
        ("", "", lookups.POSTCODE_NONE),
        (None, "", lookups.POSTCODE_NONE),
    ],
)
def test_the_quintile_is_that_of_the_postcodes_small_area(
    deprivation: lookups.Deprivation, postcode: str | None, quintile: str, status: str
) -> None:
    assert deprivation.quintile_of(postcode) == (quintile, status)


def person(*addresses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "address": list(addresses), **extra}


@pytest.mark.parametrize(
    ("patient", "postcode"),
    [
        (person({"postalCode": "HU1 2AB"}), "HU1 2AB"),
        (person({"use": "old", "postalCode": "YO1 1AA"}, {"postalCode": "HU1 2AB"}), "HU1 2AB"),
        (  # a mover: the address that ended is not where they live
            person(
                {"use": "home", "postalCode": "YO1 1AA", "period": {"end": "2025-03-01"}},
                {"use": "home", "postalCode": "HU1 2AB", "period": {"start": "2025-03-01"}},
            ),
            "HU1 2AB",
        ),
        (  # an address ending after today is still current
            person({"use": "home", "postalCode": "HU1 2AB", "period": {"end": "2027-01-01"}}),
            "HU1 2AB",
        ),
        (person({"use": "temp", "postalCode": "YO1 1AA"}, {"postalCode": "HU1 2AB"}), "HU1 2AB"),
        (person({"use": "work", "postalCode": "YO1 1AA"}), None),
        (person({"use": "old", "postalCode": "YO1 1AA"}), None),
        (person({"line": ["1 High Street"]}), None),
        ({"resourceType": "Patient"}, None),
        (None, None),
    ],
)
def test_the_home_postcode_is_the_current_home_address(
    patient: dict[str, Any] | None, postcode: str | None
) -> None:
    assert lookups.home_postcode(patient, TODAY) == postcode


UKCORE_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
UKCORE_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategory"


def ethnic(code: str, url: str = UKCORE_EXT, system: str = UKCORE_SYSTEM) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    return {"url": url, "valueCodeableConcept": {"coding": [coding]}}


@pytest.mark.parametrize(
    ("extensions", "group"),
    [
        ([ethnic("A")], "White"),
        ([ethnic("C")], "White"),
        ([ethnic("F")], "Mixed or multiple"),
        ([ethnic("K")], "Asian or Asian British"),
        ([ethnic("N")], "Black or Black British"),
        ([ethnic("R")], "Other ethnic group"),
        ([ethnic("Z")], "not stated"),
        ([ethnic("99")], "unknown"),
        ([ethnic("Q")], ethnicity.NOT_A_CATEGORY),  # no such NHS ethnic category
        ([ethnic("A", url="https://example.org/other-extension")], "White"),  # its codes
        ([ethnic("A", system="https://example.org/local-codes")], ethnicity.NOT_RECORDED),
        (  # the UK Core extension decides before any other
            [ethnic("N", url="https://example.org/other-extension"), ethnic("H")],
            "Asian or Asian British",
        ),
        ([], ethnicity.NOT_RECORDED),
        (None, ethnicity.NOT_RECORDED),
        ([{"url": UKCORE_EXT, "valueString": "White British"}], ethnicity.NOT_RECORDED),
    ],
)
def test_the_ethnic_group_is_read_from_the_uk_core_extension_or_its_codes(
    extensions: list[dict[str, Any]] | None, group: str
) -> None:
    patient: dict[str, Any] = {"resourceType": "Patient"}
    if extensions is not None:
        patient["extension"] = extensions
    assert ethnicity.load_ethnic_categories().group(patient) == group


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a JSON object"),
        ({"extension": "x", "systems": ["s"], "categories": [{}]}, "needs 'provenance'"),
        ({"provenance": "p", "extension": "x", "systems": [], "categories": []}, "'systems'"),
        (
            {
                "provenance": "p",
                "extension": "x",
                "systems": ["s"],
                "categories": [{"code": "A", "display": "d"}],
            },
            "categories[0] needs code, display and group",
        ),
        (
            {
                "provenance": "p",
                "extension": "x",
                "systems": ["s"],
                "categories": [
                    {"code": "A", "display": "d", "group": "g"},
                    {"code": "A", "display": "d", "group": "g"},
                ],
            },
            "categories[1]: code A is listed twice",
        ),
    ],
)
def test_a_malformed_ethnic_category_file_fails_loudly(doc: Any, message: str) -> None:
    with pytest.raises(ethnicity.EthnicCategoryError, match=re.escape(message)):
        ethnicity.parse_ethnic_categories(doc, "ethnic-category.json")
