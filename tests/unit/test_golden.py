"""Golden request/response pairs with a fixed clock and uuids: the exact cards an EHR receives.

To accept intended changes: UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py, then review the
diff of tests/golden/*.response.json like any other code change.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service import create_app
from tests.hooks import SERVICE

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(p.name.removesuffix(".request.json") for p in GOLDEN.glob("*.request.json"))


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    uuids = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 1000))
    app = create_app(
        {
            # The two policies these cases were recorded with: their cards do not change when
            # a third policy is added (with it, a companion note may lead; test_hcl_service).
            "POLICIES": ["iport-advance", "nice-insulin-pump"],
            # Each service's own card (with one card per patient, the i-Port patient-view card
            # gives way to the pump's: tests/unit/test_one_card.py)
            "PATIENT_VIEW_ONE_CARD": False,
            "REQUIRE_AUTH": False,
            "CLOCK": lambda: datetime(2026, 11, 21, 10, 30, tzinfo=UTC),
            "UUID_FACTORY": lambda: next(uuids),
        }
    )
    request = json.loads((GOLDEN / f"{case}.request.json").read_text())
    resp = app.test_client().post(f"/cds-services/{SERVICE[request['hook']]}", json=request)
    assert resp.status_code == 200
    expected_file = GOLDEN / f"{case}.response.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(json.dumps(resp.json, indent=2, ensure_ascii=False) + "\n")
    assert resp.json == json.loads(expected_file.read_text())


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 4
