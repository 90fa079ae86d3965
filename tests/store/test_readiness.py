"""Readiness (/readyz) with the real store that ``create_app`` opens, on SQLite and PostgreSQL:
ready while the database answers, not ready (503, saying nothing about the database) once it
is gone."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.store.conftest import AppFactory, store_of
from tests.store.pgserver import PostgresServer


def _drop_database(request: pytest.FixtureRequest, url: str) -> None:
    server: PostgresServer = request.getfixturevalue("postgres")
    name = make_url(url).database
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_readyz_is_ready_with_the_real_store_and_not_once_the_database_is_gone(
    database_url: str, make_app: AppFactory, request: pytest.FixtureRequest
) -> None:
    app = make_app(database_url)
    with app.test_client() as client:
        resp = client.get("/readyz")
        assert resp.status_code == 200
        assert resp.json == {"status": "ready", "checks": {"valueSets": "ok", "database": "ok"}}

        if store_of(app).backend == "sqlite":
            database = make_url(database_url).database
            assert database
            for suffix in ("", "-wal", "-shm"):
                Path(database + suffix).unlink(missing_ok=True)
        else:
            _drop_database(request, database_url)

        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.json == {
            "status": "not-ready",
            "checks": {"valueSets": "ok", "database": "unavailable"},
        }
        # The prober learns nothing about the database: no host, port, name or driver text.
        body = resp.get_data(as_text=True)
        url = make_url(database_url)
        for secret in (url.database, url.host, str(url.port)):
            if secret and secret != "None":
                assert secret not in body
