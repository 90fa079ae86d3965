"""Deployment secrets: configured, or generated once into the instance folder (for a demo)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

log = logging.getLogger("iport_cds.store")

MIN_KEY_BYTES = 16
KEY_FILE = "audit-hash.key"
SESSION_KEY_FILE = "review-session.key"


def hash_key(configured: str | None, instance_dir: Path) -> bytes:
    """The configured key, or the instance folder's ``audit-hash.key`` (created 0600 if absent).

    Every process of a deployment must use the same key, or one patient's records cannot be
    linked: production sets IPORT_CDS_AUDIT_HASH_KEY (a long random secret).
    """
    if configured:
        key = configured.encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"AUDIT_HASH_KEY must be at least {MIN_KEY_BYTES} bytes long")
        return key
    log.warning(
        "AUDIT_HASH_KEY is not set: patient ids in the audit trail are hashed with a key kept "
        "in the instance folder. Production must set IPORT_CDS_AUDIT_HASH_KEY (one secret "
        "shared by every instance)."
    )
    return _instance_key(instance_dir / KEY_FILE, lambda: secrets.token_hex(32))


def session_keys(configured: str | None, instance_dir: Path) -> list[bytes]:
    """The Fernet keys for the assessment app's sessions: the first encrypts, all decrypt.

    ``configured`` is one Fernet key or several separated by commas (a new key first while the
    old one is retired); unset, a key is generated into the instance folder's
    ``review-session.key``. Every worker and pod must share the key, or a session started on
    one cannot be read on another: production sets IPORT_CDS_REVIEW_APP_SESSION_KEY.
    """
    if configured:
        keys = [k.strip().encode("ascii") for k in configured.split(",") if k.strip()]
        for key in keys:
            try:
                Fernet(key)
            except ValueError:
                raise ValueError(
                    "REVIEW_APP_SESSION_KEY must be Fernet keys (32 url-safe base64-encoded "
                    "bytes each, e.g. from `python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`), separated by commas"
                ) from None
        return keys
    log.warning(
        "REVIEW_APP_SESSION_KEY is not set: the assessment app's sessions are encrypted with a "
        "key kept in the instance folder. Production must set IPORT_CDS_REVIEW_APP_SESSION_KEY "
        "(one secret shared by every instance)."
    )
    path = instance_dir / SESSION_KEY_FILE
    return [_instance_key(path, lambda: Fernet.generate_key().decode("ascii"))]


def _instance_key(path: Path, generate: Callable[[], str]) -> bytes:
    """The key in ``path``; the first process to need it writes it (mode 0600) whole, by
    linking a finished temporary file into place, so no process reads half a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(generate())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first: its key is the one
        finally:
            tmp.unlink()
    key = path.read_text(encoding="ascii").strip().encode("ascii")
    if len(key) < MIN_KEY_BYTES:
        raise RuntimeError(f"{path} holds no usable key")
    return key
