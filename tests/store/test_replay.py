"""Token ids seen, shared through the database: a replay is refused by every process on it."""

from __future__ import annotations

import time

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
