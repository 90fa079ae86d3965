"""The assessment app's server-side sessions, in the store's database, so that every worker
and every pod sees the same launches and sessions.

A row is keyed by the SHA-256 of a random id that only the browser holds (an HttpOnly
cookie), so reading the table does not give a usable session id. Its payload — the launch's
OAuth state and PKCE verifier, or the session's access token, patient and user — is JSON
encrypted with Fernet (AES-128-CBC and HMAC-SHA256, ``cryptography``) under the deployment's
key; rows past ``expires_at`` are never returned and are purged. Nothing here logs an id, a
token or a patient. Nothing here knows Flask.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, delete, insert, select

from store.models import ReviewAppSession

log = logging.getLogger("iport_cds.store")

LAUNCH = "launch"  # a SMART launch between the redirect and the authorization server's answer
SESSION = "session"  # a clinician's session after the launch
_T = ReviewAppSession


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _id_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class SessionStore:
    """``put`` a JSON-able mapping for ``ttl_s`` seconds under a new random id; ``get`` it
    back while it lasts; ``pop`` it for single use; ``delete`` it at logout."""

    def __init__(
        self, engine: Engine, keys: Sequence[bytes], clock: Callable[[], datetime] = _utc_now
    ) -> None:
        if not keys:
            raise ValueError("a session store needs at least one key")
        self._engine = engine
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._clock = clock

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def put(self, kind: str, data: Mapping[str, Any], ttl_s: float) -> str:
        """Store ``data`` until ``ttl_s`` seconds from now; returns the id for the cookie.

        Expired rows of every kind are purged in the same transaction.
        """
        sid = secrets.token_urlsafe(32)
        now = self._now()
        payload = self._fernet.encrypt(json.dumps(dict(data)).encode("utf-8"))
        with self._engine.connect().execution_options(write=True) as conn, conn.begin():
            conn.execute(delete(_T).where(_T.expires_at <= now))
            conn.execute(
                insert(_T).values(
                    id_hash=_id_hash(sid),
                    kind=kind,
                    created_at=now,
                    expires_at=now + timedelta(seconds=max(ttl_s, 0.0)),
                    payload=payload,
                )
            )
        return sid

    def get(self, kind: str, sid: str | None) -> dict[str, Any] | None:
        """The data stored under ``sid`` if it is of ``kind`` and has not expired."""
        if not sid:
            return None
        query = select(_T.payload).where(
            _T.id_hash == _id_hash(sid), _T.kind == kind, _T.expires_at > self._now()
        )
        with self._engine.connect() as conn:
            payload = conn.execute(query).scalar_one_or_none()
        return None if payload is None else self._decrypt(payload)

    def pop(self, kind: str, sid: str | None) -> dict[str, Any] | None:
        """``get`` and delete in one: of several requests with the same id, one gets it."""
        found = self.get(kind, sid)
        if found is None or not sid:
            return None
        with self._engine.connect().execution_options(write=True) as conn, conn.begin():
            deleted = conn.execute(delete(_T).where(_T.id_hash == _id_hash(sid))).rowcount
        return found if deleted == 1 else None

    def delete(self, sid: str | None) -> bool:
        """End the session (logout): True if there was one."""
        if not sid:
            return False
        with self._engine.connect().execution_options(write=True) as conn, conn.begin():
            return bool(conn.execute(delete(_T).where(_T.id_hash == _id_hash(sid))).rowcount)

    def purge_expired(self) -> int:
        """Delete every expired row; returns how many."""
        with self._engine.connect().execution_options(write=True) as conn, conn.begin():
            return int(conn.execute(delete(_T).where(_T.expires_at <= self._now())).rowcount)

    def _decrypt(self, payload: bytes) -> dict[str, Any] | None:
        try:
            data = json.loads(self._fernet.decrypt(payload))
        except (InvalidToken, ValueError):
            # Encrypted under a key no longer configured: the user launches again.
            log.warning("a review app session could not be decrypted with the configured keys")
            return None
        return data if isinstance(data, dict) else None
