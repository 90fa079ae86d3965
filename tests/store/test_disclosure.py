"""Small-number suppression on the commissioners' dashboard, through real hook calls.

Fifteen people: twelve at Hull (two meet the criteria, ten need more information) and three
at North Yorkshire (none meets). With the default threshold no count from 1 to 7 leaves the
service in ``/analytics.json`` — it reads '<8' — the others are rounded to the nearest 5, and
shares resting on a suppressed count read '*'; with SMALL_NUMBER_THRESHOLD = 0 (a local
audit) the same database gives exact figures. The per-person CSV behind the sign-in is
record-level and not an aggregate: it is not suppressed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from disclosure import Disclosure, DisclosureSettingError
from service.config import DEFAULTS
from service.state import AppState
from tests.store.conftest import AppFactory, store_of
from tests.store.seed import overridden, post_feedback, post_hook

ADMIN = "admin-token-for-disclosure-7e2a"
RANGE = "from=2026-11-01&to=2026-11-21"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def seeded(make_app: AppFactory, sqlite_url: str, practices: Path) -> str:
    app = make_app(sqlite_url, PLACE_BY_PRACTICE_FILE=str(practices), ANALYTICS_TOKEN=ADMIN)
    people = [
        *(("meets", f"hull-m{i}", "B81001") for i in range(2)),
        *(("insufficient", f"hull-i{i}", "B81001") for i in range(10)),
        *(("does-not-meet", f"ny-{i}", "B82002") for i in range(3)),
    ]
    with app.test_client() as client:
        cards = [post_hook(client, kind, pid, f"h-{pid}", gp) for kind, pid, gp in people]
        for card in cards[-2:]:
            assert post_feedback(client, overridden(card)).status_code == 200
    assert store_of(app).flush(10)
    return sqlite_url


def app_with(make_app: AppFactory, url: str, practices: Path, **config: Any) -> Flask:
    return make_app(url, PLACE_BY_PRACTICE_FILE=str(practices), ANALYTICS_TOKEN=ADMIN, **config)


def small_counts(value: Any, path: str = "") -> Iterator[str]:
    """Every whole number from 1 to 7 in the figures (the disclosure settings left out)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "disclosure":
                yield from small_counts(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from small_counts(v, f"{path}[{i}]")
    elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7:
        yield f"{path} = {value}"


def hull_row(data: dict[str, Any], place: str) -> dict[str, Any]:
    (row,) = [r for r in data["people"]["byPlace"] if r["place"] == place]
    return row


def test_no_count_from_1_to_7_leaves_the_dashboard(
    make_app: AppFactory, seeded: str, practices: Path
) -> None:
    app = app_with(make_app, seeded, practices, SMALL_NUMBER_THRESHOLD=8)
    with app.test_client() as client:
        data = client.get(f"/analytics.json?{RANGE}", headers=AUTH).json
        page = client.get(f"/analytics?{RANGE}", headers=AUTH).get_data(as_text=True)
        csv_text = client.get(f"/analytics/export.csv?{RANGE}", headers=AUTH).get_data(as_text=True)
    assert list(small_counts(data)) == []
    assert data["people"]["assessed"] == 15
    hull = hull_row(data, "hull")
    assert hull["meets-criteria"] == "<8"  # 2 people
    assert hull["insufficient-information"] == 10
    assert hull["total"] == 10  # 12, summed exactly and then rounded: 10 + 2 is not given back
    north = hull_row(data, "north-yorkshire")
    assert north["does-not-meet-criteria"] == "<8"
    assert north["total"] == "<8"
    assert data["totals"]["overridden"] == "<8"
    assert data["totals"]["overrideRate"] == "*"  # a share resting on a suppressed count
    assert data["totals"]["feedbackRate"] == "*"
    assert data["latencyMs"]["count"] == 15
    assert data["disclosure"] == {
        "threshold": 8,
        "roundedTo": 5,
        "suppressedCount": "<8",
        "suppressedStatistic": "*",
        "note": data["disclosure"]["note"],
    }
    assert "a count from 1 to 7 is shown as “&lt;8”" in page
    # The per-person download (for the service lead, behind the sign-in) is record-level.
    assert len(csv_text.strip().splitlines()) == 1 + 15


def test_the_default_is_on() -> None:
    assert DEFAULTS["SMALL_NUMBER_THRESHOLD"] == 8
    assert AppState.__dataclass_fields__["disclosure"].default_factory() == Disclosure(8)  # type: ignore[misc]


def test_threshold_0_gives_exact_figures_for_a_local_audit(
    make_app: AppFactory, seeded: str, practices: Path
) -> None:
    app = app_with(make_app, seeded, practices, SMALL_NUMBER_THRESHOLD=0)
    with app.test_client() as client:
        data = client.get(f"/analytics.json?{RANGE}", headers=AUTH).json
        page = client.get(f"/analytics?{RANGE}", headers=AUTH).get_data(as_text=True)
    hull = hull_row(data, "hull")
    assert (hull["meets-criteria"], hull["insufficient-information"], hull["total"]) == (2, 10, 12)
    assert hull_row(data, "north-yorkshire")["total"] == 3
    assert data["totals"]["overridden"] == 2
    assert data["totals"]["overrideRate"] == 1.0
    assert data["disclosure"]["suppressedCount"] is None
    assert "Small-number suppression is off" in page


@pytest.mark.parametrize("value", [-1, "few", 2.5])
def test_a_bad_threshold_stops_start_up(make_app: AppFactory, sqlite_url: str, value: Any) -> None:
    with pytest.raises(DisclosureSettingError, match="SMALL_NUMBER_THRESHOLD"):
        make_app(sqlite_url, SMALL_NUMBER_THRESHOLD=value)
