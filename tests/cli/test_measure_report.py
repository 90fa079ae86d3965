"""A population run writes a FHIR MeasureReport beside its CSV and HTML report (the
contract in docs/population.md: a group per policy, the cohort and five outcome populations,
uptake as the score, strata per stratifier), valid as FHIR, with the figures the report
shows; and, given the previous run's summary JSON, the report says what changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from disclosure import Disclosure
from places import ODS_SYSTEM
from population.figures import ALREADY_USING, MEETS, NOT_MET
from population.measure import (
    POLICY_SYSTEM,
    POPULATION_SYSTEM,
    STRATIFIER_SYSTEM,
    measure_report,
)
from population.uptake import UptakeTally
from tests.cli.conftest import TODAY, Run, generate_population, one_line_error

Cli = Callable[..., Run]
REPO = Path(__file__).resolve().parents[2]
PLACES = REPO / "demo" / "practice-places.csv"


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_population(tmp_path_factory, 300, seed=5)


def evaluate(cli: Cli, population: Path, folder: Path, *extra: str) -> Run:
    result = cli(
        "evaluate", "--population", str(population), "--out", str(folder / "people.csv"),
        "--summary-json", str(folder / "summary.json"), "--places", str(PLACES),
        "--workers", "1", "--today", TODAY.isoformat(), *extra,
    )  # fmt: skip
    assert result.code == 0, result.err
    return result


def counts(group: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for p in group["population"]:
        (coding,) = p["code"]["coding"]
        assert coding["system"] == POPULATION_SYSTEM
        absent = p.get("_count", {}).get("extension", [{}])[0].get("valueCode")
        out[coding["code"]] = p.get("count", absent)
    return out


def test_the_measure_report_is_valid_fhir_and_carries_the_reported_figures(
    cli: Cli, population: Path, tmp_path: Path
) -> None:
    result = evaluate(cli, population, tmp_path, "--extract-date", "2026-11-01")
    path = tmp_path / "people.measurereport.json"
    assert f"MeasureReport: {path}" in result.err
    doc = json.loads(path.read_text(encoding="utf-8"))
    MeasureReport.model_validate(doc)  # raises on anything FHIR does not allow
    assert (doc["status"], doc["type"]) == ("complete", "summary")
    assert doc["period"] == {"start": "2026-11-01", "end": "2026-11-01"}
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    d = Disclosure()
    by_policy = {g["code"]["coding"][0]["code"]: g for g in doc["group"]}
    assert {g["code"]["coding"][0]["system"] for g in doc["group"]} == {POLICY_SYSTEM}
    assert list(by_policy) == list(summary["figures"])
    for policy, exact in summary["figures"].items():
        group = by_policy[policy]
        shown = counts(group)
        assert set(shown) == {
            "cohort", "already-using", "meets", "potentially-eligible", "data-missing",
            "does-not-meet",
        }  # fmt: skip
        expected_cohort = d.count(exact["cohort"])
        assert shown["cohort"] == (
            expected_cohort if isinstance(expected_cohort, int) else "masked"
        )
        for word, code in (("already using", "already-using"), ("meets", "meets")):
            n = d.count(exact["outcomes"][word])
            assert shown[code] == (n if isinstance(n, int) else "masked"), (policy, code)
        using, meets = exact["outcomes"]["already using"], exact["outcomes"]["meets"]
        if not any(d.suppressed(n) for n in (using, meets, using + meets)) and using + meets:
            assert group["measureScore"]["value"] == round(
                d.count(using) / d.count(using + meets), 4
            )
        else:
            assert "value" not in group.get("measureScore", {})
        strata = {s["code"][0]["coding"][0]["code"]: s for s in group["stratifier"]}
        assert {s["code"][0]["coding"][0]["system"] for s in group["stratifier"]} == {
            STRATIFIER_SYSTEM
        }
        assert set(strata) == {
            "practice", "pcn", "place", "age-band", "sex", "ethnicity", "imd-quintile",
        }  # fmt: skip
        # a practice is coded by its ODS code, so runs of several areas aggregate by practice
        practice = {st["value"]["text"]: st["value"] for st in strata["practice"]["stratum"]}
        assert practice["Z11001 Aire Surgery"]["coding"] == [
            {"system": ODS_SYSTEM, "code": "Z11001", "display": "Aire Surgery"}
        ]
        assert all(v["coding"][0]["code"] == t[:6] for t, v in practice.items() if t != "unknown")
        assert {st["value"]["text"] for st in strata["ethnicity"]["stratum"]} >= {"White"}
        # every stratum's exact cohort adds up to the policy's (counts shown are rounded)
        assert all(st["value"]["text"] for st in strata["sex"]["stratum"])
    # small numbers: no count is 1 to 7; a suppressed one is marked as masked
    text = path.read_text(encoding="utf-8")
    assert '"masked"' in text
    for n in range(1, 8):
        assert f'"count": {n},' not in text
        assert f'"count": {n}\n' not in text


def test_the_report_shows_the_change_since_the_previous_run(
    cli: Cli, population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPORT_CDS_SMALL_NUMBER_THRESHOLD", "0")  # exact figures to compare
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    evaluate(cli, population, first, "--extract-date", "2026-05-01")
    previous = json.loads((first / "summary.json").read_text(encoding="utf-8"))
    # the previous run had 20 more people meeting the pump policy and not on a pump
    pump = previous["figures"]["nice-insulin-pump"]
    pump["outcomes"]["meets"] += 20
    pump["cohort"] += 20
    (first / "summary.json").write_text(json.dumps(previous), encoding="utf-8")
    evaluate(cli, population, second, "--previous", str(first / "summary.json"))
    html = (second / "people.html").read_text(encoding="utf-8")
    assert "Since the previous run (extract date 2026-05-01): uptake " in html
    assert "gap -20 people" in html


def test_a_previous_summary_without_figures_is_a_usage_error(
    cli: Cli, population: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"patients": 3}), encoding="utf-8")
    result = cli(
        "evaluate", "--population", str(population), "--previous", str(old),
        "--today", TODAY.isoformat(),
    )  # fmt: skip
    assert result.code == 2
    assert "--previous" in one_line_error(result)


def test_without_technology_records_already_using_is_unknown_and_there_is_no_score() -> None:
    tally = UptakeTally(technology_data=False)
    tally.policies["nice-insulin-pump"] = "TA151"
    for band, n in ((MEETS, 40), (NOT_MET, 60), (ALREADY_USING, 0)):
        tally.bands[("nice-insulin-pump", band)] = n
    doc = measure_report(tally, Disclosure(), evaluated="2026-11-21", extract_date="2026-11-01")
    MeasureReport.model_validate(doc)
    (group,) = doc["group"]
    assert "measureScore" not in group
    shown = counts(group)
    assert shown["already-using"] == "unknown"
    assert (shown["meets"], shown["does-not-meet"], shown["cohort"]) == (40, 60, 100)
