"""The app's state is one typed object, read through one accessor.

Every project object the app needs (runtime, store, admission, listeners, the review app's
sessions) is a field of ``AppState``; no module reaches into ``app.extensions`` by a string.
A test that swaps the store swaps in the real ``store.Store`` (on SQLite).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

import store
from service import create_app
from service.evaluation import Runtime
from service.state import AppState, app_state, state_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    made = create_app(
        {"REQUIRE_AUTH": False, "DATABASE_URL": store.sqlite_url(tmp_path / "a.sqlite3")}
    )
    made.testing = True
    yield made
    state_of(made).store.close()


def test_the_state_holds_the_runtime_the_real_store_and_the_listeners(app: Flask) -> None:
    state = state_of(app)
    assert isinstance(state, AppState)
    assert isinstance(state.runtime, Runtime)
    assert isinstance(state.store, store.Store)
    assert state.listeners  # the audit trail and the metrics
    assert state.feedback_handler is not None
    assert state.review_sessions is not None
    with app.app_context():
        assert app_state() is state


def test_the_state_is_the_only_project_object_in_app_extensions(app: Flask) -> None:
    ours = [k for k in app.extensions if k.startswith("iport_cds")]
    assert ours == ["iport_cds"]


def test_readiness_asks_the_store_the_state_holds(app: Flask, tmp_path: Path) -> None:
    other_file = tmp_path / "other.sqlite3"
    other = store.Store(store.sqlite_url(other_file))
    state = state_of(app)
    original, state.store = state.store, other
    try:
        with app.test_client() as client:
            assert client.get("/readyz").json["checks"]["database"] == "ok"
            other.close()
            other_file.unlink()  # a deleted SQLite file is not ready
            assert client.get("/readyz").json["checks"]["database"] == "unavailable"
    finally:
        state.store = original


def test_no_product_module_looks_up_app_extensions_by_a_string() -> None:
    lookup = re.compile(r"extensions(\[|\.get\(|\.setdefault\(|\.pop\()")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("service", "dashboard", "review_app", "population", "cli")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "state.py" and lookup.search(path.read_text())
    ]
    assert offenders == []
