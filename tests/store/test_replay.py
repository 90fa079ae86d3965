"""Token ids seen, shared through the database: a replay is refused by every process on it."""

from __future__ import annotations

import sqlite3
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import store


def test_a_token_id_is_claimed_once_across_processes_and_forgotten_after_expiry(
    database_url: str,
) -> None:
    # Two Store objects with their own engines and pools: two workers (or pods).
    first, second = store.Store(database_url), store.Store(database_url)
    try:
        now = time.time()
        assert first.claim_token("https://ehr.example", "jti-1", now + 60)
        assert not second.claim_token("https://ehr.example", "jti-1", now + 60)
        assert not first.claim_token("https://ehr.example", "jti-1", now + 60)
        assert second.claim_token("https://other-ehr.example", "jti-1", now + 60)  # per issuer

        assert first.claim_token("https://ehr.example", "expired", now - 1)
        second._next_token_purge = 0.0
        assert second.claim_token("https://ehr.example", "jti-2", now + 60)  # purges
        with first.engine.connect() as conn:
            left = conn.exec_driver_sql("SELECT count(*) FROM seen_token").scalar_one()
        assert left == 3  # jti-1 twice (two issuers) and jti-2; the expired one is gone
    finally:
        first.close()
        second.close()


def test_a_claim_waits_briefly_for_a_locked_sqlite_database_then_fails(sqlite_url: str) -> None:
    s = store.Store(sqlite_url)
    blocker = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # a long export or a backup holds the write lock
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError):
            s.claim_token("https://ehr.example", "jti-locked", time.time() + 60)
        assert time.monotonic() - started < store.CLAIM_WAIT_S + 1  # not the writer's 30 s
    finally:
        blocker.close()
        s.close()
