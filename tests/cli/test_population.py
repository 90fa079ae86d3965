"""``iport-cds evaluate --population DIR``: one CSV row per patient and policy of a Bulk FHIR
export, the same decision ``evaluate FILE`` gives for each of them, with who the person is
(age band, sex, place, deprivation), their latest HbA1c and current pump / i-Port use."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from facts import extract_record
from policy import Policy, evaluate, load_policy
from population import engine
from population.engine import run_population
from population.uptake import PERSON_COLUMNS, TECHNOLOGY_TYPES
from tests.cli.conftest import TODAY, Run, by_patient, generate_population, one_line_error
from valuesets import ValueSetLibrary

Cli = Callable[..., Run]
PATIENTS = 200


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_population(tmp_path_factory, PATIENTS, seed=7)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_generated_export_looks_like_bulk_fhir(population: Path) -> None:
    names = sorted(p.name for p in population.iterdir())
    assert names == [
        "Condition.ndjson",
        "DeviceRequest.ndjson",
        "MedicationRequest.ndjson",
        "Observation.ndjson",
        "Patient.ndjson",
        "Procedure.ndjson",
    ]
    grouped = by_patient(population)
    assert len(grouped) == PATIENTS
    kinds = Counter(r["resourceType"] for rs in grouped.values() for r in rs)
    assert kinds["Patient"] == PATIENTS
    assert kinds["Observation"] > PATIENTS / 2
    assert kinds["MedicationRequest"] > PATIENTS / 10
    assert kinds["Procedure"] > 0  # pumps in use
    patients = [r for rs in grouped.values() for r in rs if r["resourceType"] == "Patient"]
    practices = [p for p in patients if p.get("generalPractitioner")]
    assert 0.85 * PATIENTS < len(practices) < PATIENTS
    assert all(p["address"][0]["postalCode"] for p in patients)
    # one identifier per person: a population run counts Patients sharing one as one person
    assert len({p["identifier"][0]["value"] for p in patients}) == PATIENTS


def test_one_row_per_patient_matching_the_per_patient_decision(
    cli: Cli,
    population: Path,
    tmp_path: Path,
    vsl: ValueSetLibrary,
    iport_policy: Policy,
) -> None:
    out = tmp_path / "out.csv"
    summary_file = tmp_path / "summary.json"
    run = cli(
        "evaluate", "--population", str(population), "--out", str(out), "--workers", "2",
        "--chunk-size", "16", "--summary-json", str(summary_file), "--today", TODAY.isoformat(),
        "--policy", "iport-advance",
    )  # fmt: skip
    assert run.code == 0, run.err
    rows = read_csv(out.read_text())
    assert len(rows) == PATIENTS
    assert list(rows[0]) == [*PERSON_COLUMNS, *iport_policy.criterion_ids]
    assert [r["patient_ref"] for r in rows] == sorted(r["patient_ref"] for r in rows)
    grouped = by_patient(population)
    assert {r["patient_ref"] for r in rows} == set(grouped)
    assert {r["policy_id"] for r in rows} == {"hny-iport-advance"}
    assert {r["policy_version"] for r in rows} == {iport_policy.info.version}
    assert {r["evaluation_date"] for r in rows} == {TODAY.isoformat()}
    for row in rows:  # every row is what the pure core decides for that patient alone
        record = extract_record(
            grouped[row["patient_ref"]],
            vsl,
            patient_id=row["patient_ref"],
            criteria_system=iport_policy.info.criteria_system,
        )
        d = evaluate(iport_policy, record, TODAY)
        assert row["outcome"] == d.outcome.value
        assert row["pathway"] == (d.pathway or "")
        for c in iport_policy.criterion_ids:
            assert row[c] == d.criteria[c].result.value
    outcomes = Counter(r["outcome"] for r in rows)
    assert len(outcomes) == 3  # the generated mix reaches every outcome
    summary = json.loads(summary_file.read_text())
    assert summary["patients"] == PATIENTS
    assert summary["outcomes"] == {"hny-iport-advance": dict(outcomes)}
    assert (tmp_path / "out.html").is_file()  # the report, beside the CSV
    assert summary["workers"] == 2
    assert summary["peak_rss_worker_mb"] > 0
    assert "evaluating (2 workers): 200 / 200 patients (100%)" in run.err
    assert f"{PATIENTS} patients" in run.err
    assert "hny-iport-advance, by outcome:" in run.err
    for pid in grouped:  # progress and summary never name a patient
        assert pid not in run.err


def test_rows_agree_with_evaluate_file(cli: Cli, population: Path, tmp_path: Path) -> None:
    """A sample of patients, each written to its own NDJSON file and run through ``evaluate``."""
    run = cli(
        "evaluate", "--population", str(population), "--workers", "1", "--today",
        TODAY.isoformat(), "--policy", "iport-advance",
    )  # fmt: skip
    assert run.code == 0
    rows = {r["patient_ref"]: r for r in read_csv(run.out)}
    assert len(rows) == PATIENTS
    grouped = by_patient(population)
    sample = sorted(grouped)[:: PATIENTS // 20]
    for pid in sample:
        f = tmp_path / "one.ndjson"
        f.write_text("\n".join(json.dumps(r) for r in grouped[pid]))
        single = cli("evaluate", str(f), "--json", "--today", TODAY.isoformat())
        ext = json.loads(single.out)
        assert rows[pid]["outcome"] == ext["outcome"]
        assert rows[pid]["pathway"] == (ext["pathway"] or "")
        assert {c["id"]: c["result"] for c in ext["criteria"]} == {
            k: v for k, v in rows[pid].items() if k not in PERSON_COLUMNS
        }


def test_the_hybrid_closed_loop_policy_over_a_population(
    cli: Cli, population: Path, vsl: ValueSetLibrary
) -> None:
    """The HCL uptake gap offline: the same export read against NICE TA943."""
    hcl = load_policy("nice-hybrid-closed-loop")
    run = cli(
        "evaluate", "--population", str(population), "--policy", "nice-hybrid-closed-loop",
        "--workers", "1", "--today", TODAY.isoformat(),
    )  # fmt: skip
    assert run.code == 0, run.err
    rows = read_csv(run.out)
    assert len(rows) == PATIENTS
    assert list(rows[0]) == [*PERSON_COLUMNS, *hcl.criterion_ids]
    assert {r["policy_id"] for r in rows} == {hcl.info.id}
    grouped = by_patient(population)
    for row in rows[:: PATIENTS // 20]:
        record = extract_record(
            grouped[row["patient_ref"]],
            vsl,
            patient_id=row["patient_ref"],
            criteria_system=hcl.info.criteria_system,
        )
        d = evaluate(hcl, record, TODAY)
        assert (row["outcome"], row["pathway"]) == (d.outcome.value, d.pathway or "")


def test_medication_references_bad_lines_and_unassigned_resources(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    lines = {
        "Patient.ndjson": [
            {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"},
            {"resourceType": "Patient", "id": "p2", "birthDate": "1980-01-01"},
        ],
        "Condition.ndjson": [
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            },
        ],
        "MedicationRequest.ndjson": [
            {
                "resourceType": "MedicationRequest",
                "id": "m1",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/p1"},
                "medicationReference": {"reference": "Medication/humulin"},
                "dosageInstruction": [{"text": "twice daily"}],
            }
        ],
        "Medication.ndjson": [
            {
                "resourceType": "Medication",
                "id": "humulin",
                "code": {"text": "Humulin M3 KwikPen"},
            }
        ],
        "Practitioner.ndjson": [{"resourceType": "Practitioner", "id": "dr"}],
    }
    for name, resources in lines.items():
        (export / name).write_text("".join(json.dumps(r) + "\n" for r in resources))
    with (export / "Condition.ndjson").open("a") as f:
        f.write("{truncated\n")
    out, err = io.StringIO(), io.StringIO()
    summary = run_population(export, out, err, today=TODAY, workers=1, policies=["iport-advance"])
    rows = {r["patient_ref"]: r for r in read_csv(out.getvalue())}
    assert set(rows) == {"p1", "p2"}
    assert rows["p1"]["insulin-more-than-once-daily"] == "met"  # via the referenced Medication
    assert rows["p2"]["outcome"] == "does-not-meet-criteria"
    assert summary.skipped_lines == 1
    assert summary.skipped_examples == ["Condition.ndjson:2"]
    assert summary.unassigned_resources == 1
    assert "skipped 1 line(s)" in err.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "not a folder of NDJSON files"),
        (lambda d: d, "no *.ndjson files"),
    ],
)
def test_population_usage_errors(
    cli: Cli, tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    run = cli("evaluate", "--population", str(make(tmp_path)))
    assert run.code == 2
    assert message in one_line_error(run)


def test_unwritable_output(cli: Cli, population: Path, tmp_path: Path) -> None:
    run = cli("evaluate", "--population", str(population), "--out", str(tmp_path / "no" / "x.csv"))
    assert run.code == 2
    assert "cannot write" in one_line_error(run)


def test_generate_population_usage_errors(cli: Cli, tmp_path: Path) -> None:
    run = cli("demo", "generate-population", "--patients", "0", "--out", str(tmp_path))
    assert run.code == 2
    assert "must be at least 1" in one_line_error(run)
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = cli("demo", "generate-population", "--patients", "3", "--out", str(blocker))
    assert run.code == 2
    assert "cannot write" in one_line_error(run)


def iport_rows(tmp_path: Path, records: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The i-Port rows, by patient, of a population run over ``records`` as an export."""
    export = tmp_path / "export"
    export.mkdir()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_type.setdefault(str(r["resourceType"]), []).append(r)
    for rtype, resources in by_type.items():
        (export / f"{rtype}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in resources))
    out, err = io.StringIO(), io.StringIO()
    run_population(export, out, err, today=TODAY, workers=1, policies=["iport-advance"])
    return {r["patient_ref"]: r for r in read_csv(out.getvalue())}


def test_a_population_run_does_not_use_evidence_about_another_person(tmp_path: Path) -> None:
    """The same attribution as a hook call: p1's HbA1c is their mother's (its focus) and p1's
    needle phobia is their husband's; p2's record, otherwise the same, meets."""
    from tests.builders import type1_meets

    theirs, own = type1_meets(pid="p1"), type1_meets(pid="p2")
    for r in theirs:
        if r["resourceType"] == "Observation":
            r["focus"] = [{"reference": "RelatedPerson/p1-mother"}]
        if r.get("code", {}).get("text") == "Needle phobia":
            r["code"]["text"] = "Needle phobia - husband"
    rows = iport_rows(tmp_path, [*theirs, *own])
    assert rows["p2"]["outcome"] == "meets-criteria"
    assert rows["p1"]["outcome"] != "meets-criteria"
    assert rows["p1"]["hba1c-69-or-above-on-mdi"] == "unknown"
    assert rows["p1"]["needle-phobia"] == "unknown"


def test_a_population_run_does_not_count_a_withdrawn_confirmation(tmp_path: Path) -> None:
    """The same reading of confirmations as a hook call: p1's needle phobia rests on a
    confirmation withdrawn as entered in error, p2's on one that stands."""
    from tests.builders import confirmation, type1_meets
    from tests.unit.test_confirmation_evidence import withdrawn

    on = TODAY.isoformat()
    records = [
        *(r for pid in ("p1", "p2") for r in type1_meets(pid=pid) if "code" not in r
          or r["code"].get("text") != "Needle phobia"),
        {**withdrawn("needle-phobia", on, "Dr Ben Ode", f"{on}T16:05:00+00:00"),
         "subject": {"reference": "Patient/p1"}},
        confirmation("needle-phobia", on=on, pid="p2"),
    ]  # fmt: skip
    rows = iport_rows(tmp_path, records)
    assert rows["p2"]["outcome"] == "meets-criteria"
    assert rows["p2"]["needle-phobia"] == "met"
    assert rows["p1"]["outcome"] != "meets-criteria"
    assert rows["p1"]["needle-phobia"] != "met"


def test_indexing_in_pieces_is_one_pass_over_the_export(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However the files are cut into pieces for the workers to index, the run is the same as
    one pass over them: the rows, who was merged, the counts, which lines were skipped (named
    by their line in the file), which record of a Medication id is read, and whether the
    export measures technology use (the first supplies record before any device counts)."""
    export = tmp_path / "export"
    shutil.copytree(population, export)
    conditions = (export / "Condition.ndjson").read_text().splitlines(keepends=True)
    conditions[40:40] = ["{truncated\n", "\n", '["not", "a", "resource"]\n']
    (export / "Condition.ndjson").write_text("".join(conditions))
    patients = (export / "Patient.ndjson").read_text().splitlines(keepends=True)
    lone = {"resourceType": "Patient", "id": "zz-insulin", "birthDate": "1980-01-01"}
    again = [patients[3], patients[150], json.dumps(lone) + "\n"]
    (export / "Patient.ndjson").write_text("".join([*patients, *again]))
    sensors = {
        "resourceType": "MedicationRequest",
        "id": "mr-libre",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/" + json.loads(patients[0])["id"]},
        "authoredOn": "2026-11-01",
        "medicationCodeableConcept": {"text": "FreeStyle Libre 2 Sensor"},
    }
    insulin = {
        **sensors,
        "id": "mr-insulin",
        "subject": {"reference": "Patient/zz-insulin"},
        "medicationReference": {"reference": "Medication/humulin"},
        "dosageInstruction": [{"text": "twice daily"}],
    }
    del insulin["medicationCodeableConcept"]
    # before the Device* and Procedure files: a supplies record is the first technology data
    (export / "CGM-supplies.ndjson").write_text(json.dumps(sensors) + "\n" + json.dumps(insulin))
    # the last record of Medication/humulin is the one read
    texts = [*["Paracetamol 500mg tablets"] * 59, "Humulin M3 KwikPen"]
    medications = [
        {"resourceType": "Medication", "id": "humulin", "code": {"text": t}} for t in texts
    ]
    (export / "Medication.ndjson").write_text("".join(json.dumps(m) + "\n" for m in medications))
    timings = {"index_seconds", "evaluate_seconds", "wall_seconds", "workers"}
    timings |= {"peak_rss_main_mb", "peak_rss_worker_mb"}

    def run(workers: int) -> tuple[str, dict[str, Any]]:
        out = io.StringIO()
        summary = run_population(export, out, io.StringIO(), today=TODAY, workers=workers)
        return out.getvalue(), {k: v for k, v in summary.as_json().items() if k not in timings}

    whole = run(1)
    rows = {(r["patient_ref"], r["policy_id"]): r for r in read_csv(whole[0])}
    assert rows[("zz-insulin", "hny-iport-advance")]["insulin-more-than-once-daily"] == "met"
    assert whole[1]["skipped_lines"] == 2
    assert whole[1]["skipped_examples"] == ["Condition.ndjson:41", "Condition.ndjson:43"]
    assert whole[1]["repeated_patient_records"] == 2
    devices = sum(
        len((export / f"{t}.ndjson").read_text().splitlines())
        for t in TECHNOLOGY_TYPES
        if (export / f"{t}.ndjson").is_file()
    )
    assert devices > 0
    assert whole[1]["technology_resources"] == devices + 1
    monkeypatch.setattr(engine, "PIECE_BYTES", 3_000)
    monkeypatch.setattr(engine, "SMALLEST_PIECE", 3_000)
    assert len(engine.pieces_of(engine.ndjson_files(export), 2)) > 50
    assert run(1) == whole
    assert run(2) == whole


@pytest.mark.parametrize(
    ("sensors_file", "devices_file", "counted"),
    [
        ("A-sensors.ndjson", "B-devices.ndjson", 2),  # the sensors first: they count too
        ("B-sensors.ndjson", "A-devices.ndjson", 1),  # a device first: the sensors do not
    ],
)
def test_supplies_count_as_technology_data_only_before_any_device(
    tmp_path: Path, sensors_file: str, devices_file: str, counted: int
) -> None:
    """A pass over the files stops looking for supplies at the first technology record of
    either kind, however many workers index the files."""
    subject = {"reference": "Patient/p1"}
    sensors = {
        "resourceType": "MedicationRequest",
        "id": "mr-libre",
        "status": "active",
        "intent": "order",
        "subject": subject,
        "medicationCodeableConcept": {"text": "FreeStyle Libre 2 Sensor"},
    }
    files = {
        "Patient.ndjson": {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"},
        sensors_file: sensors,
        devices_file: {"resourceType": "DeviceRequest", "id": "d1", "subject": subject},
    }
    for name, resource in files.items():
        (tmp_path / name).write_text(json.dumps(resource) + "\n")
    for workers in (1, 2):
        summary = run_population(
            tmp_path, io.StringIO(), io.StringIO(), today=TODAY, workers=workers
        )
        assert summary.technology_resources == counted
