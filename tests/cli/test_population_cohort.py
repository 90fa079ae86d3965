"""A population run counts people, not records: Patient records de-duplicated by NHS number
(the most recent registration speaking for the person, their records merged), records naming
no Patient counted for data quality only, and each policy's cohort (alive on the extract date,
registered, the policy's diagnosis) the only people in its figures."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from disclosure import Disclosure
from population.cohort import IN_COHORT, NHS_NUMBER_SYSTEM
from population.engine import run_population, summary_text
from population.figures import ALREADY_USING, MEETS
from population.report import render_report
from tests.builders import T1DM, T2DM, condition, patient, registered, type1_meets
from tests.cli.conftest import TODAY

REGISTRATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RegistrationDetails"


def nhs(p: dict[str, Any], number: str) -> dict[str, Any]:
    p["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": number}]
    return p


def moved(p: dict[str, Any], start: str) -> dict[str, Any]:
    period = {"url": "registrationPeriod", "valuePeriod": {"start": start}}
    p["extension"] = [{"url": REGISTRATION, "extension": [period]}]
    return p


def pump(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": f"pump-{pid}",
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "180178009"}]},  # pump
        "performedDateTime": "2026-01-10",
    }


def write(folder: Path, resources: list[dict[str, Any]]) -> Path:
    folder.mkdir()
    by_type: dict[str, list[str]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def export(tmp_path: Path) -> Path:
    resources: list[dict[str, Any]] = [
        # one person, two Patient ids, the same NHS number: they moved practice in 2025; the
        # pump is recorded under the old id, the diagnosis and the rest under the new
        moved(nhs(registered(patient(pid="old-id"), "B81001"), "9434765919"), "2019-01-01"),
        moved(nhs(registered(patient(pid="new-id"), "B81002"), "943 476 5919"), "2025-05-01"),
        *[r for r in type1_meets("new-id") if r["resourceType"] != "Patient"],
        pump("old-id"),
        # the same Patient id twice: the later (more recently updated) record is the one
        {**registered(patient(pid="twice"), "B81003"), "meta": {"lastUpdated": "2026-01-01"}},
        {**registered(patient(pid="twice"), "B81004"), "meta": {"lastUpdated": "2026-10-01"}},
        condition(T1DM, pid="twice"),
        # deceased before the extract date
        {**registered(patient(pid="died")), "deceasedDateTime": "2026-05-01"},
        condition(T1DM, pid="died"),
        # not registered anywhere
        patient(pid="nowhere"),
        condition(T1DM, pid="nowhere"),
        # type 2: in the i-Port cohort, not the pump's
        registered(patient(pid="type2")),
        condition(T2DM, pid="type2"),
        # records naming a patient the export has no Patient for
        condition(T1DM, pid="ghost"),
        condition(T1DM, pid="ghost"),
        condition(T1DM, pid="ghost-2"),
    ]
    for r in resources:
        if r["resourceType"] == "Patient":
            r.pop("birthDate", None)
            r["birthDate"] = "1990-05-17"
    return write(tmp_path / "export", resources)


def run(tmp_path: Path, **kwargs: Any) -> tuple[Any, dict[tuple[str, str], dict[str, str]]]:
    out = io.StringIO()
    summary = run_population(export(tmp_path), out, io.StringIO(), today=TODAY, workers=1, **kwargs)
    rows = {
        (r["patient_ref"], r["policy_id"]): r for r in csv.DictReader(io.StringIO(out.getvalue()))
    }
    return summary, rows


def test_people_not_records(tmp_path: Path) -> None:
    summary, rows = run(tmp_path)
    people = {pid for pid, _ in rows}
    assert people == {"new-id", "twice", "died", "nowhere", "type2"}
    assert summary.patients == 5
    assert summary.patient_records == 7
    assert summary.merged_patients == 1  # old-id into new-id
    assert summary.repeated_patient_records == 1  # "twice" again
    assert (summary.no_patient_ids, summary.no_patient_resources) == (2, 3)


def test_the_most_recent_registration_speaks_and_the_records_merge(tmp_path: Path) -> None:
    _, rows = run(tmp_path)
    pump_policy = rows[("new-id", "nice-insulin-pump")]
    assert pump_policy["practice_code"] == "B81002"  # where they are registered now
    assert pump_policy["on_insulin_pump"] == "in use"  # recorded under the old id
    assert pump_policy["band"] == ALREADY_USING
    assert rows[("twice", "nice-insulin-pump")]["practice_code"] == "B81004"


def test_each_policys_cohort(tmp_path: Path) -> None:
    summary, rows = run(tmp_path)
    cohort = {k: r["cohort"] for k, r in rows.items()}
    assert cohort[("died", "nice-insulin-pump")] == "deceased"
    assert cohort[("nowhere", "nice-insulin-pump")] == "not registered"
    assert cohort[("type2", "nice-insulin-pump")] == "no type 1 diabetes mellitus recorded"
    assert cohort[("type2", "hny-iport-advance")] == IN_COHORT
    assert cohort[("new-id", "nice-insulin-pump")] == IN_COHORT
    tally = summary.tally
    assert tally.people("nice-insulin-pump") == 2  # new-id, twice
    assert tally.people("hny-iport-advance") == 3  # and type2
    assert tally.outside[("nice-insulin-pump", "deceased")] == 1
    assert sum(tally.bands[("nice-insulin-pump", b)] for b in (ALREADY_USING, MEETS)) >= 1


def test_the_extract_date_comes_from_the_manifest_or_is_given(tmp_path: Path) -> None:
    folder = export(tmp_path)
    (folder / "manifest.json").write_text(
        json.dumps({"transactionTime": "2026-04-01T10:00:00+00:00", "output": []})
    )
    summary = run_population(folder, io.StringIO(), io.StringIO(), today=TODAY, workers=1)
    assert summary.extract_date == "2026-04-01"
    assert "transactionTime" in summary.extract_date_source
    # alive on 1 April: died in May
    assert summary.tally.outside[("nice-insulin-pump", "deceased")] == 0
    given = run_population(
        folder, io.StringIO(), io.StringIO(), today=TODAY, workers=1, extract_date=date(2026, 6, 1)
    )
    assert (given.extract_date, given.extract_date_source) == (
        "2026-06-01",
        "given (--extract-date)",
    )
    assert given.tally.outside[("nice-insulin-pump", "deceased")] == 1


def test_without_today_a_population_is_judged_as_on_its_extract_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export taken on 1 April holds nothing after it: "an HbA1c in the last 12 months" is
    counted back from 1 April, not from the day the report is run."""
    from cli.main import main

    folder = export(tmp_path)
    (folder / "manifest.json").write_text(
        json.dumps({"transactionTime": "2026-04-01T10:00:00+00:00", "output": []})
    )
    summary_file = tmp_path / "summary.json"
    common = ["evaluate", "--population", str(folder), "--out", str(tmp_path / "p.csv")]
    common += ["--workers", "1", "--summary-json", str(summary_file)]
    assert main(common) == 0
    assert json.loads(summary_file.read_text())["evaluated_on"] == "2026-04-01"
    report = (tmp_path / "p.html").read_text()
    assert "evaluated on 2026-04-01" in report
    measure = json.loads((tmp_path / "p.measurereport.json").read_text())
    assert measure["date"].startswith("2026-04-01")
    assert main([*common, "--today", TODAY.isoformat()]) == 0
    assert json.loads(summary_file.read_text())["evaluated_on"] == TODAY.isoformat()
    capsys.readouterr()


def test_the_codelists_and_their_versions_are_kept(tmp_path: Path) -> None:
    summary, _ = run(tmp_path)
    t1 = next(c for c in summary.codelists if c["id"] == "type-1-diabetes")
    assert t1["version"]
    assert t1["url"].endswith("/type-1-diabetes")


def test_what_was_merged_and_left_out_is_said_on_stderr(tmp_path: Path) -> None:
    summary, _ = run(tmp_path)
    text = summary_text(summary)
    assert f"extract date {TODAY.isoformat()} (not given: the evaluation date)" in text
    assert "1 Patient id(s) merged into another with the same NHS number" in text
    assert "3 record(s) name 2 patient id(s) with no Patient in the export" in text


def test_the_report_says_how_records_became_people(tmp_path: Path) -> None:
    summary, _ = run(tmp_path)
    html = render_report(summary, today=TODAY, source="export", disclosure=Disclosure(0))
    note = " ".join(html.split('id="people-note">')[1].split("</p>")[0].split())
    assert note.startswith("People, not records: 7 Patient records made 5 people (1 Patient ids")
    assert "3 records naming 2 patient ids with no Patient in the export" in note
