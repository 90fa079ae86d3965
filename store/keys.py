"""The key for hashing patient ids: configured, or generated once into the instance folder."""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

log = logging.getLogger("iport_cds.store")

MIN_KEY_BYTES = 16
KEY_FILE = "audit-hash.key"


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
    path = instance_dir / KEY_FILE
    instance_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32))
    for _ in range(100):  # another process may be writing it this instant
        key = path.read_text(encoding="ascii").strip().encode("ascii")
        if len(key) >= MIN_KEY_BYTES:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} holds no usable key")
