"""Fixtures for the storage tests: each test runs against SQLite and a real PostgreSQL.

PostgreSQL is Debian's ``postgresql`` package, started once per test session by
``tests/store/pgserver.py`` (installed first if missing and the run is root, as in CI); each
test gets a fresh database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import store
from service import create_app
from service.state import state_of
from tests.store.pgserver import PostgresServer

HASH_KEY = "test-audit-hash-key-0123456789abcdef"
NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)


class Clock:
    """A settable clock for the app's CLOCK setting."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return store.sqlite_url(tmp_path / "audit.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return store.sqlite_url(tmp_path / "audit.sqlite3")


@pytest.fixture
def clock() -> Clock:
    return Clock()


AppFactory = Callable[..., Flask]


@pytest.fixture
def practices(tmp_path: Path) -> Path:
    """A practice → place table: B81001 at Hull, B82002 at North Yorkshire."""
    path = tmp_path / "practices.csv"
    path.write_text("practice_code,place\nB81001,hull\nB82002,north-yorkshire\n", encoding="utf-8")
    return path


@pytest.fixture
def make_app(clock: Clock) -> Iterator[AppFactory]:
    """``make_app(url, **config)``: an app on that database; its store is closed afterwards."""
    apps: list[Flask] = []

    def make(url: str, **config: Any) -> Flask:
        settings: dict[str, Any] = {
            "REQUIRE_AUTH": False,
            "DATABASE_URL": url,
            "AUDIT_HASH_KEY": HASH_KEY,
            "CLOCK": clock,
            "LOG_LEVEL": "WARNING",
            # These tests check the exact figures of a handful of people: disclosure control
            # off, as for a local audit (tests/store/test_disclosure.py turns it on).
            "SMALL_NUMBER_THRESHOLD": 0,
        }
        settings.update(config)
        app = create_app(settings)
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        state_of(app).store.close()


def store_of(app: Flask) -> store.Store:
    found = state_of(app).store
    assert isinstance(found, store.Store)  # the real store, never a stand-in
    return found
