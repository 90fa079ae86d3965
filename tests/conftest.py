"""Shared fixtures: the real value sets and policy file, and a one-call decision helper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from facts import PatientRecord, extract_record
from policy import Decision, Policy, evaluate, load_policy
from tests.builders import PID
from valuesets import ValueSetLibrary, load_value_sets

TODAY = date(2026, 11, 21)


@pytest.fixture(autouse=True, scope="session")
def _audit_database_in_a_temp_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps built in tests write their audit trail to a throwaway SQLite file, not instance/."""
    db = tmp_path_factory.mktemp("audit") / "audit.sqlite3"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPORT_CDS_DATABASE_URL", f"sqlite:///{db}")
        yield


@pytest.fixture(scope="session")
def vsl() -> ValueSetLibrary:
    return load_value_sets()


@pytest.fixture(scope="session")
def iport_policy() -> Policy:
    return load_policy("iport-advance")


@pytest.fixture
def record(vsl: ValueSetLibrary, iport_policy: Policy) -> Callable[..., PatientRecord]:
    def build(*resources: Any, patient_id: str | None = PID) -> PatientRecord:
        return extract_record(
            resources, vsl, patient_id=patient_id, criteria_system=iport_policy.info.criteria_system
        )

    return build


@pytest.fixture
def decide(record: Callable[..., PatientRecord], iport_policy: Policy) -> Callable[..., Decision]:
    def run(*resources: Any, today: date = TODAY, policy: Policy | None = None) -> Decision:
        return evaluate(policy or iport_policy, record(*resources), today)

    return run
