"""A new policy is a file: dropped into the deployment's policy folder, with no code or test
edited, it is served in discovery, gives cards, and is counted by population runs and their
report — every policy file in ``POLICY_DIR`` is on by default, in the order the files
declare (``metadata.listOrder``)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import demo
from disclosure import Disclosure
from facts import extract_record
from policy import PolicyError, evaluate
from policy.loading import POLICY_DIR, parse_policy, policy_names
from population.engine import run_population
from population.report import render_report
from population.uptake import PERSON_COLUMNS
from service import create_app
from service.config import read_settings
from service.state import state_of
from tests.builders import HYPO_EVENT, PID, observation_finding, patient
from tests.cli.conftest import generate_population
from tests.hooks import hook_request
from tests.policy_folder import folder_with_a_copy, shipped_policy
from valuesets import (
    ValueSetError,
    load_technology_kinds,
    load_value_sets,
    parse_technology_kinds,
)

TODAY = date(2026, 12, 7)
NEW_ID = "local-insulin-pump"
NEW_TITLE = "Insulin pump therapy: a local copy of the NICE TA151 criteria"
NEW_LABEL = "Local insulin pump criteria"
PATIENTS = 60


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shipped policy file, and a copy of the NICE pump policy under a new id."""
    return folder_with_a_copy(
        tmp_path_factory.mktemp("policies"),
        "nice-insulin-pump",
        NEW_ID,
        {"title": NEW_TITLE, "listOrder": 5},
        {"sourceLabel": NEW_LABEL},
    )


def test_the_default_list_is_every_shipped_file_in_the_order_they_declare() -> None:
    names = policy_names()
    assert sorted(names) == sorted(p.stem for p in POLICY_DIR.glob("*.json"))
    orders = [shipped_policy(n)["metadata"]["listOrder"] for n in names]
    assert orders == sorted(orders)
    assert read_settings()["POLICIES"] == names


def test_a_policy_without_a_list_order_comes_last(folder: Path, tmp_path: Path) -> None:
    for f in folder.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    doc = shipped_policy("iport-advance")
    del doc["metadata"]["listOrder"]
    (tmp_path / "aaa-unordered.json").write_text(json.dumps(doc), encoding="utf-8")
    assert policy_names(tmp_path) == [NEW_ID, *policy_names(), "aaa-unordered"]


def test_a_list_order_that_is_not_a_whole_number_is_refused(tmp_path: Path) -> None:
    doc = shipped_policy("nice-insulin-pump")
    doc["metadata"]["listOrder"] = "first"
    (tmp_path / "pump.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"metadata.listOrder: must be a whole number"):
        create_app({"REQUIRE_AUTH": False, "POLICY_DIR": str(tmp_path)})


def test_a_deployment_narrows_the_list(folder: Path) -> None:
    app = create_app({"REQUIRE_AUTH": False, "POLICY_DIR": str(folder), "POLICIES": [NEW_ID]})
    services = app.test_client().get("/cds-services").get_json()["services"]
    assert [s["id"] for s in services] == [f"{NEW_ID}-patient-view"]


def test_a_new_policy_file_is_served_and_gives_its_own_card(folder: Path, tmp_path: Path) -> None:
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "POLICY_DIR": str(folder),
            "CLOCK": lambda: datetime(2026, 12, 7, 12, tzinfo=UTC),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        }
    )
    client = app.test_client()
    services = [s["id"] for s in client.get("/cds-services").get_json()["services"]]
    assert services[0] == f"{NEW_ID}-patient-view"  # listOrder 5: before the shipped ones
    assert "nice-insulin-pump-patient-view" in services

    patient = demo.get_patient("t1-mdi-needle-phobia")
    assert patient.expected["nice-insulin-pump"].card  # the shipped pump policy speaks for them
    resources = demo.bundle_resources(patient.bundle(TODAY))
    body = hook_request("patient-view", resources=resources, patient_id=patient.patient_id)
    resp = client.post(f"/cds-services/{NEW_ID}-patient-view", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cards = resp.get_json()["cards"]
    assert len(cards) == 1
    assert cards[0]["source"]["label"] == NEW_LABEL
    extension = cards[0]["extension"]["iport-cds.eligibility"]
    assert extension["policy"]["id"] == NEW_ID
    # the commissioners' dashboard lists it and counts its card
    assert state_of(app).store.flush(10)
    assert NEW_LABEL in client.get("/analytics").get_data(as_text=True)
    figures = client.get("/analytics.json").get_json()
    assert NEW_ID in figures["byPolicy"]


def test_population_runs_and_their_report_count_the_new_policy(
    folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    export = generate_population(tmp_path_factory, PATIENTS, seed=3)
    out = io.StringIO()
    summary = run_population(
        export, out, io.StringIO(), today=TODAY, workers=1, policy_dir=str(folder)
    )
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    counts = Counter(r["policy_id"] for r in rows)
    assert counts[NEW_ID] == PATIENTS
    assert set(counts) == {NEW_ID} | {shipped_policy(n)["metadata"]["id"] for n in policy_names()}
    report = render_report(
        summary, today=TODAY, source=str(export), disclosure=Disclosure.from_setting(8)
    )
    assert NEW_LABEL in report


def test_a_shared_rule_speaks_the_policy_s_words_not_another_policy_s() -> None:
    """The hypoglycaemia rule serves TA151 and TA943 ("disabling"); a policy that asks for
    "recurrent" hypoglycaemia gets its own title and judgement on every line."""
    doc = shipped_policy("nice-hybrid-closed-loop")
    for c in doc["criteria"]:
        if c["rule"] == "disabling-hypoglycaemia":
            c["title"] = "Recurrent severe hypoglycaemia"
            c["params"] |= {"judgement": "recurrent", "judgementMeans": "more than one episode"}
            cid = c["id"]
    policy = parse_policy(doc, base=POLICY_DIR)
    vsl = load_value_sets()
    cases = {
        "none": [patient()],
        "one day": [patient(), observation_finding(HYPO_EVENT, on="2026-11-01")],
        "two days": [
            patient(),
            observation_finding(HYPO_EVENT, on="2026-10-01"),
            observation_finding(HYPO_EVENT, on="2026-11-01"),
        ],
    }
    for name, resources in cases.items():
        record = extract_record(
            resources, vsl, patient_id=PID, criteria_system=policy.info.criteria_system
        )
        result = evaluate(policy, record, TODAY)
        said = result.criteria[cid]
        words = f"{said.reason} {said.missing or ''}".lower()
        assert "disabling" not in words, name
        assert "recurrent" in words, name


def test_every_technology_kind_is_a_population_column() -> None:
    """The population CSV has one column per kind of valuesets/technology-kinds.json: a kind
    added there (say continuous ketone monitoring) is a column with no code edited."""
    kinds = load_technology_kinds()
    assert [k.column for k in kinds.values()] == [c for c in PERSON_COLUMNS if c.startswith("on_")]
    doc = {"kinds": [{"id": "ketone-monitor", "label": "ketone monitor"}]}
    assert parse_technology_kinds(doc, "kinds.json")["ketone-monitor"].column == "on_ketone_monitor"
    doc["kinds"][0]["column"] = "On Ketones!"
    with pytest.raises(ValueSetError, match="column must be a lower-case column name"):
        parse_technology_kinds(doc, "kinds.json")
