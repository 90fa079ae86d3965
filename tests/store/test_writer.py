"""The background writer on its own: shutdown writes what is queued; nothing after close."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

import store
from store import AuditRecord, CardRecord
from store.db import make_engine
from store.writer import AuditWriter


def record(i: int) -> AuditRecord:
    return AuditRecord(
        recorded_at=datetime(2026, 11, 21, 10, tzinfo=UTC),
        service_id="iport-advance-order-select",
        hook="order-select",
        hook_instance=f"h{i}",
        patient_hash="0" * 64,
        outcome=None,
        pathway=None,
        policy_id=None,
        policy_version=None,
        cards=(CardRecord(f"card-{i}"),),
        criteria=(),
        prefetch_keys=(),
        fetched_keys=(),
        fhir_requests=0,
        fetch_ms=None,
        total_ms=1.0,
    )


def test_close_writes_everything_still_queued(sqlite_url: str) -> None:
    s = store.open_store(sqlite_url)
    blocker = make_engine(sqlite_url)
    try:
        with blocker.connect().execution_options(write=True) as conn, conn.begin():
            # Another process holds the write lock: nothing can be written yet.
            conn.execute(sa.text("DELETE FROM feedback WHERE 1 = 0"))
            for i in range(1200):  # more than one batch
                s.record(record(i))
            assert s.writer.backlog == 1200
            closer = threading.Thread(target=s.close)
            closer.start()
        closer.join(30)  # the lock is released: close() writes everything, then returns
    finally:
        blocker.dispose()
    assert not closer.is_alive()
    reopened = store.open_store(sqlite_url)
    try:
        assert reopened.counts()["audit_event"] == 1200
        assert reopened.counts()["issued_card"] == 1200
    finally:
        reopened.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.record(record(0))


def test_a_reissued_card_uuid_is_kept_once_and_the_rest_still_written(sqlite_url: str) -> None:
    s = store.open_store(sqlite_url)
    try:
        s.record(record(1))
        s.record(record(1))  # a deployment whose uuid factory repeats (tests, a bad EHR replay)
        s.record(record(2))
        assert s.flush(10)
        assert s.counts()["audit_event"] == 3
        assert s.counts()["issued_card"] == 2
        assert s.writer.dropped == 0
    finally:
        s.close()


def test_one_store_per_database_per_process(sqlite_url: str) -> None:
    a = store.open_store(sqlite_url)
    try:
        assert store.open_store(sqlite_url) is a
    finally:
        a.close()
    b = store.open_store(sqlite_url)
    try:
        assert b is not a
    finally:
        b.close()


def test_an_in_memory_database_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        store.open_store("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        store.open_store("mysql://db/x")


def _commits(engine: sa.Engine) -> list[int]:
    """A list that grows by one for every transaction the engine commits."""
    seen: list[int] = []
    sa.event.listen(engine, "commit", lambda _conn: seen.append(1))
    return seen


def test_records_that_arrive_together_share_one_transaction(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    store.open_store(sqlite_url).close()  # migrated
    writer = AuditWriter(engine, batch_wait_s=2.0)
    commits = _commits(engine)
    try:
        for i in range(50):
            writer.submit(record(i))
        for _ in range(200):  # no flush: the writer's own wait decides the batch
            if writer.written == 50:
                break
            threading.Event().wait(0.05)
        assert writer.written == 50
        assert len(commits) <= 2  # not one transaction a record
    finally:
        writer.close()
        engine.dispose()


def test_flush_and_close_do_not_wait_for_a_batch_to_fill(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    store.open_store(sqlite_url).close()
    writer = AuditWriter(engine, batch_wait_s=3600.0)
    try:
        writer.submit(record(1))
        assert writer.flush(timeout=10)  # written now, not in an hour
        writer.submit(record(2))
        closer = threading.Thread(target=writer.close)
        closer.start()
        closer.join(10)
        assert not closer.is_alive()
        assert writer.written == 2
    finally:
        engine.dispose()
