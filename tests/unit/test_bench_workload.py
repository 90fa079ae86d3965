"""The benchmarks' request (bench/workload.py) is a record that meets the i-Port criteria, and
its two levels of detail say the same thing: what an EHR returns beside what the policies
read (issue #25's 135 KiB body) changes no card. Otherwise the hook-path figures would
compare different work."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from bench.workload import order_select
from service import create_app

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PATH = "/cds-services/iport-advance-order-select"


def _card(detail: str) -> dict[str, Any]:
    app = create_app({"REQUIRE_AUTH": False, "CLOCK": lambda: NOW, "UUID_FACTORY": lambda: "u"})
    answer = app.test_client().post(
        PATH, data=orjson.dumps(order_select(160, detail)), content_type="application/json"
    )
    assert answer.status_code == 200, answer.text
    cards: list[dict[str, Any]] = answer.json["cards"]  # type: ignore[index]
    assert len(cards) == 1
    return cards[0]


def test_the_benchmark_record_meets_the_i_port_criteria() -> None:
    card = _card("lean")
    assert card["extension"]["iport-cds.eligibility"]["outcome"] == "meets-criteria"


def test_what_an_ehr_returns_beside_the_record_changes_no_card() -> None:
    assert _card("ehr") == _card("lean")


def test_the_ehr_body_is_the_size_issue_25_measured() -> None:
    sizes = {d: len(orjson.dumps(order_select(160, d))) / 1024 for d in ("lean", "ehr")}
    assert 130 <= sizes["ehr"] <= 140, sizes
    assert sizes["lean"] < 50, sizes


def test_an_unknown_detail_is_refused() -> None:
    with pytest.raises(ValueError, match="detail"):
        order_select(10, "verbose")
