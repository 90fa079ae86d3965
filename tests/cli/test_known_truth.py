"""A population whose answers are known: 480 people in 497 Patient records with a GP extract's
messiness (duplicates by NHS number and by local identifier, movers, the deceased, people not
registered, records of absent patients, practices without an ODS code or missing from the
lookups, postcodes in any spacing and case or not in the lookup, Read v2 diagnoses), written by
someone who had not seen the population code (``known_truth/gen.py``), with the counts it
expects per policy and per group computed from the people's intended labels, never by running
the product.

The run's MeasureReport must give exactly those counts after disclosure control (NHS England's:
1-7 shown as "<8", every other count rounded to the nearest 5), in every population of every
group and every stratum.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from disclosure import Disclosure
from population.measure import POLICY_SYSTEM, POPULATION_SYSTEM, STRATIFIER_SYSTEM

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NHS = Disclosure(8)
# the tester's names for the policies, and the product's
POLICIES = {
    "iport-advance": "hny-iport-advance",
    "nice-ta151": "nice-insulin-pump",
    "nice-ta943": "nice-hybrid-closed-loop",
}
POPULATIONS = (
    "cohort",
    "already-using",
    "meets",
    "potentially-eligible",
    "data-missing",
    "does-not-meet",
)


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("known-truth")
    subprocess.run([sys.executable, str(HERE / "known_truth" / "gen.py"), str(folder)], check=True)
    return folder


@pytest.fixture(scope="module")
def reported(truth: Path) -> dict[str, Any]:
    from cli.main import main

    out = truth / "run"
    out.mkdir()
    code = main([
        "evaluate", "--population", str(truth / "export"), "--out", str(out / "people.csv"),
        "--places", str(truth / "place.csv"), "--pcn-table", str(truth / "pcn.csv"),
        "--postcode-lsoa", str(truth / "postcode_lsoa.csv"),
        "--lsoa-imd", str(truth / "lsoa_imd.csv"), "--workers", "1", "--today", "2026-12-01",
    ])  # fmt: skip
    assert code == 0
    report: dict[str, Any] = json.loads((out / "people.measurereport.json").read_text())
    return report


def shown(populations: list[dict[str, Any]]) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for p in populations:
        (coding,) = p["code"]["coding"]
        assert coding["system"] == POPULATION_SYSTEM
        out[coding["code"]] = p.get("count", NHS.marker)
    return out


def expected_shown(counts: dict[str, int]) -> dict[str, int | str]:
    return {k: NHS.count(counts.get(k, 0)) for k in POPULATIONS}


def group_of(report: dict[str, Any], policy: str) -> dict[str, Any]:
    (group,) = [
        g
        for g in report["group"]
        if g["code"]["coding"][0] == {**g["code"]["coding"][0], "system": POLICY_SYSTEM}
        and g["code"]["coding"][0]["code"] == POLICIES[policy]
    ]
    return group


def ethnic_groups() -> dict[str, str]:
    data = json.loads((REPO / "places" / "ethnic-category.json").read_text())
    return {c["code"]: c["group"] for c in data["categories"]}


def band_of(stratifier: str, band: str) -> str:
    """The tester's band as the report names it."""
    if stratifier == "practice" and band == "(no ODS code)":
        return "unknown"  # registered, at a practice the record names without an ODS code
    if stratifier == "ethnicity":
        return ethnic_groups().get(band, "not recorded")
    return band


def stratum_key(stratum: dict[str, Any]) -> str:
    value = stratum["value"]
    codings = value.get("coding") or []
    return str(codings[0]["code"] if codings else value["text"])


@pytest.mark.parametrize("policy", POLICIES)
def test_each_policys_figures_are_the_known_ones(
    truth: Path, reported: dict[str, Any], policy: str
) -> None:
    expected = json.loads((truth / "expected.json").read_text())["policies"][policy]
    assert shown(group_of(reported, policy)["population"]) == expected_shown(expected)
    assert expected["cohort"] > 200


@pytest.mark.parametrize("policy", POLICIES)
def test_each_stratum_is_the_known_one(truth: Path, reported: dict[str, Any], policy: str) -> None:
    expected = json.loads((truth / "expected.json").read_text())["policies"][policy]["strata"]
    group = group_of(reported, policy)
    got = {
        s["code"][0]["coding"][0]["code"]: {
            stratum_key(st): shown(st["population"]) for st in s["stratum"]
        }
        for s in group["stratifier"]
        if s["code"][0]["coding"][0]["system"] == STRATIFIER_SYSTEM
    }
    for stratifier, bands in expected.items():
        merged: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for band, counts in bands.items():
            for k in POPULATIONS:
                merged[band_of(stratifier, band)][k] += counts.get(k, 0)
        want = {b: expected_shown(c) for b, c in merged.items() if c["cohort"]}
        assert want, stratifier
        assert got[stratifier] == want, stratifier
