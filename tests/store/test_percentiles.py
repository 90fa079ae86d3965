"""The dashboard's latency percentiles are computed in the database (window functions), on
SQLite and PostgreSQL alike, and agree with nearest-rank percentiles computed by hand."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest

import store
from store import repository
from store.models import AuditEvent
from tests.store.test_analytics import D1, D2, D3, evaluation


def nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


@pytest.fixture
def opened(database_url: str) -> Iterator[store.Store]:
    s = store.Store(database_url)
    yield s
    s.close()


@pytest.mark.parametrize("n", [1, 2, 7, 100, 257])
def test_sql_percentiles_are_nearest_rank(opened: store.Store, n: int) -> None:
    rng = random.Random(n)
    totals = [round(rng.uniform(0.5, 900), 2) for _ in range(n)]
    for i, total in enumerate(totals):
        opened.record(evaluation(D1, "meets-criteria", f"c{i}", [], 1, 0, None, total))
    opened.record(evaluation(D3, "meets-criteria", "outside", [], 1, 0, None, 99_999))
    assert opened.flush(30)
    f = store.Filter(D1, D2)
    with opened.engine.connect() as conn:
        got = repository.percentiles_of(conn, f, AuditEvent.total_ms)
    assert got.count == n
    assert got.max == pytest.approx(max(totals))
    for p in repository.PERCENTILE_POINTS:
        assert got.at[p] == pytest.approx(nearest_rank(totals, p)), p


def test_no_rows_give_no_percentiles(opened: store.Store) -> None:
    with opened.engine.connect() as conn:
        got = repository.percentiles_of(conn, store.Filter(D1, D2), AuditEvent.fetch_ms)
    assert got.count == 0
    assert got.max is None
    assert set(got.at.values()) == {None}


def test_the_summary_reads_fetch_times_only_of_evaluations_that_fetched(
    opened: store.Store,
) -> None:
    opened.record(evaluation(D1, "meets-criteria", "a", [], 1, 2, 40.0, 50))
    opened.record(evaluation(D1, "meets-criteria", "b", [], 1, 0, 0.0, 5))  # all prefetched
    opened.record(evaluation(D2, "meets-criteria", "c", [], 1, 1, 80.0, 90))
    assert opened.flush(30)
    s = opened.summary(store.Filter(D1, D2))
    assert (s.fhir_fetch_ms.count, s.fhir_fetch_ms.at[50], s.fhir_fetch_ms.max) == (2, 40.0, 80.0)
    assert (s.latency_ms.count, s.latency_ms.at[50], s.latency_ms.max) == (3, 50.0, 90.0)
