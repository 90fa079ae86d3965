"""The assessment app's session store (store/sessions.py) on SQLite and PostgreSQL: what is
put comes back until it expires, a launch is used once, logout deletes the row, and the row
holds neither the cookie's id nor the token nor the patient in clear."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from store.db import make_engine, migrate
from store.keys import SESSION_KEY_FILE, session_keys
from store.models import ReviewAppSession
from store.sessions import LAUNCH, SESSION, SessionStore
from tests.store.conftest import Clock

TOKEN = "access-token-5f1e9c0a77d2"
PATIENT = "pat-Rw8Kd2Lm"
DATA = {"access_token": TOKEN, "patient_id": PATIENT, "iss": "https://fhir.example.org/r4"}


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    e = make_engine(database_url)
    migrate(e)
    yield e
    e.dispose()


@pytest.fixture
def key() -> bytes:
    return Fernet.generate_key()


@pytest.fixture
def sessions(engine: sa.Engine, key: bytes, clock: Clock) -> SessionStore:
    return SessionStore(engine, [key], clock)


def rows(engine: sa.Engine) -> list[sa.Row[tuple[str, str, bytes]]]:
    query = sa.select(ReviewAppSession.id_hash, ReviewAppSession.kind, ReviewAppSession.payload)
    with engine.connect() as conn:
        return list(conn.execute(query))


def test_what_is_put_comes_back_only_as_its_kind_and_only_until_it_expires(
    sessions: SessionStore, clock: Clock
) -> None:
    sid = sessions.put(SESSION, DATA, ttl_s=60)
    assert len(sid) >= 43  # 32 random bytes, url-safe base64
    assert sessions.get(SESSION, sid) == DATA
    assert sessions.get(LAUNCH, sid) is None
    assert sessions.get(SESSION, sid + "x") is None
    assert sessions.get(SESSION, None) is None
    clock.advance(seconds=59)
    assert sessions.get(SESSION, sid) == DATA
    clock.advance(seconds=1)
    assert sessions.get(SESSION, sid) is None


def test_expired_rows_are_purged(sessions: SessionStore, engine: sa.Engine, clock: Clock) -> None:
    old = sessions.put(SESSION, DATA, ttl_s=30)
    sessions.put(LAUNCH, {"state": "s"}, ttl_s=600)
    clock.advance(seconds=31)
    assert sessions.purge_expired() == 1
    assert len(rows(engine)) == 1
    assert sessions.get(SESSION, old) is None
    clock.advance(seconds=600)
    sessions.put(SESSION, DATA, ttl_s=60)  # a new row purges the expired ones
    assert [r.kind for r in rows(engine)] == [SESSION]


def test_a_launch_is_used_once_even_by_concurrent_requests(sessions: SessionStore) -> None:
    sid = sessions.put(LAUNCH, {"state": "abc", "code_verifier": "v"}, ttl_s=600)
    got: list[object] = []
    barrier = threading.Barrier(4)

    def pop() -> None:
        barrier.wait()
        got.append(sessions.pop(LAUNCH, sid))

    threads = [threading.Thread(target=pop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [g for g in got if g is not None] == [{"state": "abc", "code_verifier": "v"}]
    assert sessions.pop(LAUNCH, sid) is None


def test_logout_deletes_the_row(sessions: SessionStore, engine: sa.Engine) -> None:
    sid = sessions.put(SESSION, DATA, ttl_s=60)
    other = sessions.put(SESSION, DATA, ttl_s=60)
    assert sessions.delete(sid) is True
    assert sessions.get(SESSION, sid) is None
    assert sessions.delete(sid) is False
    assert sessions.get(SESSION, other) == DATA
    assert len(rows(engine)) == 1


def test_the_row_holds_no_token_patient_or_session_id_in_clear(
    sessions: SessionStore, engine: sa.Engine, key: bytes, clock: Clock
) -> None:
    sid = sessions.put(SESSION, DATA, ttl_s=60)
    [row] = rows(engine)
    raw = repr(tuple(row))
    for secret in (TOKEN, PATIENT, sid, "access_token"):
        assert secret not in raw
    assert row.id_hash != sid
    # The payload is a Fernet token under the configured key, and only that key opens it.
    assert TOKEN.encode() in Fernet(key).decrypt(bytes(row.payload))
    assert SessionStore(engine, [key], clock).get(SESSION, sid) == DATA
    assert SessionStore(engine, [Fernet.generate_key()], clock).get(SESSION, sid) is None


def test_a_new_key_first_still_reads_sessions_under_the_old_one(
    sessions: SessionStore, engine: sa.Engine, key: bytes, clock: Clock
) -> None:
    sid = sessions.put(SESSION, DATA, ttl_s=60)
    rotated = SessionStore(engine, [Fernet.generate_key(), key], clock)
    assert rotated.get(SESSION, sid) == DATA


def test_the_key_is_configured_or_generated_once_into_the_instance_folder(
    tmp_path: Path,
) -> None:
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert session_keys(f"{a}, {b}", tmp_path) == [a.encode(), b.encode()]
    with pytest.raises(ValueError, match="Fernet keys"):
        session_keys("too-short-to-be-a-key", tmp_path)
    assert not (tmp_path / SESSION_KEY_FILE).exists()
    generated = session_keys(None, tmp_path)
    assert session_keys(None, tmp_path) == generated
    Fernet(generated[0])  # a usable key
    assert stat.S_IMODE(os.stat(tmp_path / SESSION_KEY_FILE).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SESSION_KEY_FILE]  # no temporary file left
