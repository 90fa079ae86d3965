"""The audit trail: one record per evaluation, no identifiers, durable, fast under load.

Every test here runs on SQLite and on a real PostgreSQL (``database_url`` is parametrized).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import store
from dashboard.figures import summary_json
from disclosure import OFF
from store.db import SQLITE_MMAP_BYTES, make_engine, migrate
from store.models import Base
from tests.store.conftest import HASH_KEY, AppFactory, Clock, store_of
from tests.store.pgserver import PostgresServer
from tests.store.seed import accepted, order_select, overridden, post_feedback, post_hook

SECRET_PID = "pat-Zq9x7Kw3"
TOKEN = "secret-access-token-0b1c2d3e4f"


def dump(url: str) -> str:
    """Every value in every table, as text."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return repr(
                [list(conn.execute(sa.select(table))) for table in Base.metadata.sorted_tables]
            )
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)  # idempotent
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert diff == []
        assert version == "0007"
    finally:
        engine.dispose()


def test_one_record_per_evaluation_with_everything_and_no_identifiers(
    make_app: AppFactory, database_url: str
) -> None:
    app = make_app(database_url, FHIR_SERVER_ALLOWLIST=["https://fhir.example.nhs.uk/r4"])
    body = order_select("insufficient", pid=SECRET_PID, hook_instance="hi-1")
    body["fhirServer"] = "https://fhir.example.nhs.uk/r4"
    body["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds-service",
    }
    with app.test_client() as client:
        resp = client.post("/cds-services/iport-advance-order-select", json=body)
    assert resp.status_code == 200
    card = resp.json["cards"][0]
    s = store_of(app)
    assert s.flush(10)
    (row,) = list(s.export("audit", NOW_DAY))
    assert row["service_id"] == "iport-advance-order-select"
    assert row["hook"] == "order-select"
    assert row["hook_instance"] == "hi-1"
    assert row["outcome"] == "insufficient-information"
    assert row["pathway"] == "type-1"
    assert row["policy_id"] == "hny-iport-advance"
    assert row["policy_version"]
    assert row["card_uuids"] == card["uuid"]
    ext = card["extension"]["iport-cds.eligibility"]
    assert row["criteria"] == ";".join(sorted(f"{c['id']}={c['result']}" for c in ext["criteria"]))
    assert "patient" in row["prefetch_keys"].split()
    assert row["fetched_keys"] == ""
    assert row["total_ms"] > 0
    assert row["recorded_at"].startswith("2026-11-21T10:30:00")
    expected = hmac.new(HASH_KEY.encode(), SECRET_PID.encode(), hashlib.sha256).hexdigest()
    assert row["patient_hash"] == expected
    everything = dump(database_url)
    assert SECRET_PID not in everything
    assert TOKEN not in everything
    if database_url.startswith("sqlite"):
        raw = b"".join(p.read_bytes() for p in Path(database_url[10:]).parent.glob("audit*"))
        assert SECRET_PID.encode() not in raw
        assert TOKEN.encode() not in raw


def test_order_hook_without_an_iport_is_recorded_with_no_outcome(
    make_app: AppFactory, database_url: str
) -> None:
    app = make_app(database_url)
    body = order_select("meets")
    body["context"]["selections"] = []
    with app.test_client() as client:
        resp = client.post("/cds-services/iport-advance-order-select", json=body)
    assert resp.json == {"cards": []}
    s = store_of(app)
    s.flush(10)
    (row,) = list(s.export("audit", NOW_DAY))
    assert row["outcome"] == ""
    assert row["card_uuids"] == ""
    assert row["criteria"] == ""
    figures = summary_json(s.summary(day := store.Filter(NOW_DAY, NOW_DAY)), day, OFF)
    assert figures["evaluationsByOutcome"]["no-decision"] == 1
    assert figures["totals"]["cards"] == 0


def test_a_restart_loses_nothing(make_app: AppFactory, database_url: str, clock: Clock) -> None:
    first = make_app(database_url)
    cards = []
    with first.test_client() as client:
        for i in range(25):
            cards.append(post_hook(client, "insufficient", pid=f"p{i}", hook_instance=f"h{i}"))
            clock.advance(hours=5)
        assert post_feedback(client, *(overridden(c) for c in cards[:10])).status_code == 200
    store_of(first).close()  # shutdown: writes what is queued, releases the database

    second = make_app(database_url)
    s = store_of(second)
    assert s is not store_of(first)
    criteria_per_evaluation = len(next(iter(s.export("audit", NOW_DAY)))["criteria"].split(";"))
    assert s.counts() == {
        "audit_event": 25,
        "audit_criterion": 25 * criteria_per_evaluation,
        "issued_card": 25,
        "feedback": 10,
        "access_event": 25,  # one per hook call (feedback calls are not hook calls)
    }
    with second.test_client() as client:
        # cards issued before the restart still take feedback; resent feedback is still a no-op
        assert post_feedback(client, *(overridden(c) for c in cards)).status_code == 200
    assert s.counts()["feedback"] == 25


def test_retention_deletes_records_older_than_the_setting(
    make_app: AppFactory, database_url: str, clock: Clock
) -> None:
    app = make_app(database_url, AUDIT_RETENTION_DAYS=30)
    with app.test_client() as client:
        old = post_hook(client, "insufficient", hook_instance="old")
        assert post_feedback(client, overridden(old)).status_code == 200
        clock.advance(days=20)
        recent = post_hook(client, "meets", hook_instance="recent")
        assert post_feedback(client, overridden(recent)).status_code == 200
    s = store_of(app)
    s.flush(10)
    clock.advance(days=11)  # the first evaluation is now 31 days old, the second 11
    assert s.apply_retention() == (1, 1)
    counts = s.counts()
    assert counts["audit_event"] == 1
    assert counts["issued_card"] == 1
    assert counts["feedback"] == 1
    (row,) = list(s.export("audit", NOW_DAY))
    assert row["hook_instance"] == "recent"
    result = app.test_cli_runner().invoke(args=["purge-audit"])
    assert result.exit_code == 0
    assert "deleted 0 evaluation(s) and 0 feedback item(s)" in result.output


def test_retention_runs_at_start_up(make_app: AppFactory, database_url: str, clock: Clock) -> None:
    app = make_app(database_url, AUDIT_RETENTION_DAYS=7)
    with app.test_client() as client:
        post_hook(client, "insufficient")
    store_of(app).close()
    clock.advance(days=8)
    assert store_of(make_app(database_url, AUDIT_RETENTION_DAYS=7)).counts()["audit_event"] == 0


def test_concurrent_load_every_evaluation_and_feedback_is_stored_once(
    make_app: AppFactory, database_url: str
) -> None:
    """2,000 evaluations and 2,000 feedback posts from 16 concurrent clients: exactly 2,000
    rows of each. Each client sends feedback straight after its card, before the writer has
    necessarily written it."""
    clients, per_client = 16, 125
    app = make_app(database_url, HOOKS_IN_FLIGHT_MAX=clients)
    latencies: list[float] = []
    lock = threading.Lock()

    def run_client(n: int) -> int:
        done = 0
        with app.test_client() as client:
            for i in range(per_client):
                started = time.perf_counter()
                card = post_hook(client, "insufficient", pid=f"p{n}-{i}", hook_instance=f"{n}-{i}")
                with lock:
                    latencies.append(time.perf_counter() - started)
                item = accepted(card) if i % 3 == 0 else overridden(card, reason=i % 4)
                resp = post_feedback(client, item)
                assert resp.status_code == 200, resp.get_data(as_text=True)
                done += 1
        return done

    with ThreadPoolExecutor(clients) as pool:
        assert sum(pool.map(run_client, range(clients))) == clients * per_client
    s = store_of(app)
    assert s.flush(60)
    counts = s.counts()
    assert counts["audit_event"] == 2000
    assert counts["issued_card"] == 2000
    assert counts["feedback"] == 2000
    assert s.writer.dropped == 0
    figures = summary_json(s.summary(day := store.Filter(NOW_DAY, NOW_DAY)), day, OFF)
    assert figures["totals"]["evaluations"] == 2000
    assert figures["totals"]["feedback"] == 2000
    latencies.sort()
    print(
        f"\n{database_url.split(':')[0]}: hook p50 {latencies[1000] * 1000:.1f} ms, "
        f"p95 {latencies[1900] * 1000:.1f} ms, p99 {latencies[1980] * 1000:.1f} ms (16 clients)"
    )


def test_a_locked_database_delays_records_but_does_not_slow_the_hook_or_lose_them(
    make_app: AppFactory, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    s = store_of(app)
    engine = make_engine(sqlite_url)
    try:
        with engine.connect().execution_options(write=True) as blocker, blocker.begin():
            # Another process holds the write lock (e.g. a long export or a backup).
            blocker.execute(sa.text("DELETE FROM feedback WHERE 1 = 0"))
            # Every hook is answered while the lock is still held (a hook that waited for the
            # database could not be): its records wait in the writer's queue, none is written.
            with app.test_client() as client:
                for i in range(40):
                    post_hook(client, "insufficient", hook_instance=f"h{i}")
            assert s.writer.backlog > 0
            assert s.counts()["audit_event"] == 0
        assert s.flush(60)
    finally:
        engine.dispose()
    assert s.counts()["audit_event"] == 40


def test_a_database_outage_is_retried_until_it_is_back(make_app: AppFactory) -> None:
    """A PostgreSQL server of its own, stopped while hooks are answered and started again:
    the hooks do not wait for it, and every record is written once it is back."""
    with PostgresServer() as pg:
        app = make_app(pg.new_database())
        s = store_of(app)
        pg.stop()
        with app.test_client() as client:
            for i in range(5):
                post_hook(client, "meets", hook_instance=f"h{i}")
        deadline = time.monotonic() + 20
        while s.writer.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.writer.failures > 0  # it tried, and failed, while the server was down
        assert s.writer.backlog == 10  # 5 evaluations and the 5 calls' access records
        pg.start()
        assert s.flush(60)
        assert s.counts()["audit_event"] == 5
        assert s.writer.dropped == 0
        s.close()


def test_embedded_default_sqlite_and_generated_key_in_the_instance_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    from flask import Flask

    from service import create_app

    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(tmp_path))
    monkeypatch.delenv("IPORT_CDS_DATABASE_URL", raising=False)
    monkeypatch.delenv("IPORT_CDS_AUDIT_HASH_KEY", raising=False)
    app = create_app({"REQUIRE_AUTH": False, "CLOCK": clock, "LOG_LEVEL": "WARNING"})
    s = store_of(app)
    try:
        assert s.backend == "sqlite"
        db = tmp_path / "iport-cds.sqlite3"
        assert db.exists()
        key_file = tmp_path / "audit-hash.key"
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        key = key_file.read_text().strip()
        assert len(key) == 64
        with app.test_client() as client:
            post_hook(client, "meets", pid="pat-k")
        s.flush(10)
        (row,) = list(s.export("audit", NOW_DAY))
        assert row["patient_hash"] == store.patient_hash(key.encode(), "pat-k")
        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()
        with s.engine.connect() as conn:  # the service's own connections read pages mapped
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == SQLITE_MMAP_BYTES
        # the same key on the next start
        assert store.hash_key(None, tmp_path) == key.encode()
    finally:
        s.close()


def test_a_short_configured_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        store.hash_key("short", tmp_path)


NOW_DAY = Clock().now.date()


def test_new_rows_are_keyed_in_time_order(make_app: AppFactory, database_url: str) -> None:
    """Audit ids, access ids and card uuids are UUIDv7: each new row's key sorts after the
    last, so the audit trail's indexes grow at their end and an insert costs the same however
    large the trail has grown (with random keys, each lands on a page of its own)."""
    app = make_app(database_url)
    with app.test_client() as client:
        cards = [post_hook(client, "meets", pid=f"p{i}", hook_instance=f"h{i}") for i in range(6)]
    s = store_of(app)
    assert s.flush(10)
    card_uuids = [uuid.UUID(c["uuid"]) for c in cards]
    with s.engine.connect() as conn:
        audit_of = {
            uuid.UUID(str(card)): uuid.UUID(str(audit))
            for card, audit in conn.execute(sa.text("SELECT card_uuid, audit_id FROM issued_card"))
        }
        access_ids = [
            uuid.UUID(str(i)) for (i,) in conn.execute(sa.text("SELECT id FROM access_event"))
        ]
    audit_ids = [audit_of[c] for c in card_uuids]  # in the order the hooks were answered
    assert len(access_ids) == 6
    for ids in (card_uuids, audit_ids, access_ids):
        assert {u.version for u in ids} == {7}
    assert card_uuids == sorted(card_uuids)
    assert audit_ids == sorted(audit_ids)
