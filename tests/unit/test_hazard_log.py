"""The hazard log's controls are tests: every node id it names must exist in the suite.

``docs/clinical-safety/hazard-controls.json`` maps each hazard to its controls and each
control to the pytest node ids that verify it. The suite is collected with pytest itself, in
a subprocess, so a renamed or deleted test fails here rather than leaving a control unverified.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAFETY = ROOT / "docs" / "clinical-safety"
CONTROLS = json.loads((SAFETY / "hazard-controls.json").read_text(encoding="utf-8"))
LOG = (SAFETY / "hazard-log.md").read_text(encoding="utf-8")

# The hazards the log must cover at least (by the words of its hazard column).
REQUIRED = [
    "not current",
    "implausible",
    "wrongly matched",
    "wrong patient",
    "does not meet",
    "unknowns hidden or overstated",
    "wrong or out-of-date policy",
    "slow or unavailable",
    "misread",
    "confirmations or overrides misused",
]


def named_node_ids() -> list[str]:
    return sorted({t for h in CONTROLS["hazards"] for c in h["controls"] for t in c["tests"]})


@cache
def collected(files: tuple[str, ...]) -> frozenset[str]:
    """Node ids pytest collects from ``files`` (run as the suite runs, without coverage)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:cov",
            *files,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return frozenset(line.strip() for line in proc.stdout.splitlines() if "::" in line)


def exists(node_id: str, ids: frozenset[str]) -> bool:
    """A node id names a test, or a parametrised test as a whole."""
    return node_id in ids or any(i.startswith(f"{node_id}[") for i in ids)


def risk(level: dict[str, str]) -> int:
    row = CONTROLS["matrix"][level["likelihood"]]
    return int(row[CONTROLS["severity"].index(level["severity"])])


def test_every_named_node_id_exists_in_the_suite() -> None:
    names = named_node_ids()
    ids = collected(tuple(sorted({n.split("::")[0] for n in names})))
    missing = [n for n in names if not exists(n, ids)]
    assert not missing, f"hazard-controls.json names tests that do not exist: {missing}"


def test_a_node_id_that_does_not_exist_is_caught() -> None:
    ids = collected(("tests/unit/test_hazard_log.py",))
    assert exists(
        "tests/unit/test_hazard_log.py::test_every_named_node_id_exists_in_the_suite", ids
    )
    assert not exists("tests/unit/test_hazard_log.py::test_that_was_renamed", ids)


def test_every_hazard_has_controls_with_tests_and_is_in_the_log() -> None:
    hazards = CONTROLS["hazards"]
    assert hazards
    for h in hazards:
        assert h["controls"], h["id"]
        assert all(c["tests"] for c in h["controls"]), h["id"]
        assert f"| {h['id']} |" in LOG, f"{h['id']} is not in hazard-log.md"
        for c in h["controls"]:
            assert c["id"] in LOG, f"{c['id']} is not in hazard-log.md"


@pytest.mark.parametrize("hazard", CONTROLS["hazards"], ids=lambda h: h["id"])
def test_stated_risks_follow_from_the_matrix(hazard: dict[str, Any]) -> None:
    for stage in ("initial", "residual"):
        level = hazard[stage]
        stated = f"{level['severity']} × {level['likelihood']} = {risk(level)}"
        assert stated in LOG, f"{hazard['id']} {stage}: the log should say {stated!r}"
    assert risk(hazard["residual"]) <= risk(hazard["initial"])
    assert risk(hazard["residual"]) <= 2, f"{hazard['id']}: residual risk is not acceptable"


def test_the_log_covers_the_hazards_a_reviewer_expects() -> None:
    titles = " ".join(h["hazard"].lower() for h in CONTROLS["hazards"])
    for words in REQUIRED:
        assert words in titles, words


def test_the_log_claims_no_clinical_sign_off() -> None:
    case = (SAFETY / "safety-case.md").read_text(encoding="utf-8").lower()
    assert "not been signed off" in case
    assert "not been signed off" in LOG.lower()
