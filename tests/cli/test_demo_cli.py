"""``iport-cds demo list`` and ``demo export``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import demo
from tests.cli.conftest import TODAY, Run, one_line_error

Cli = Callable[..., Run]


def test_list_table_and_json(cli: Cli) -> None:
    run = cli("demo", "list")
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0].split() == [
        "Patient", "id", "Expected", "outcome", "Pathway", "Scenario", "(iport-advance)"
    ]  # fmt: skip
    assert len(lines) == 1 + len(demo.list_patients())
    assert any(
        line.startswith("iport-demo-no-diabetes") and "does-not-meet-criteria    -" in line
        for line in lines
    )
    rows = json.loads(cli("demo", "list", "--json").out)
    assert {r["patientId"] for r in rows} == {p.patient_id for p in demo.list_patients()}
    no_diabetes = next(r for r in rows if r["name"] == "no-diabetes")["expected"]
    assert no_diabetes["iport-advance"] == {
        "outcome": "does-not-meet-criteria", "pathway": None, "patientViewCard": None
    }  # fmt: skip
    assert no_diabetes["nice-insulin-pump"]["patientViewCard"] is False


def test_export_resolves_dates(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "bundles"
    run = cli("demo", "export", "--out", str(out), "--today", TODAY.isoformat())
    assert run.code == 0
    assert f"dated for {TODAY}" in run.out
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"{p.name}.json" for p in demo.list_patients())
    child = json.loads((out / "t1-child-mdi-impractical.json").read_text())
    patient = child["entry"][0]["resource"]
    assert patient["birthDate"] == "2017-08-21"  # 9 years 3 months before 2026-11-21
    assert "@today" not in (out / "t1-mdi-needle-phobia.json").read_text()
    # the exported file evaluates the same as the original
    run = cli(
        "evaluate",
        str(out / "t1-child-mdi-impractical.json"),
        "--json",
        "--today",
        TODAY.isoformat(),
    )
    assert json.loads(run.out)["outcome"] == "meets-criteria"


def test_export_errors(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = cli("demo", "export", "--out", str(blocker))
    assert run.code == 2
    assert "cannot write" in one_line_error(run)
    run = cli("demo", "export", "--out", str(tmp_path / "x"), "--only", "nobody")
    assert run.code == 2
    assert "no demo patient called 'nobody'" in one_line_error(run)
    run = cli("demo")
    assert run.code == 2
    assert "required: ACTION" in one_line_error(run)
