"""A flood of hooks with forged JWTs (a trusted issuer, a signature that does not verify) from
``threads`` clients on one address, for ``seconds``; loopback only, stops by itself."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from tests.unit.test_auth import ISS, KEY, public_jwk, token

HOOK = "/cds-services/iport-advance-order-sign"


def service_env(folder: Path, port: int) -> dict[str, str]:
    """The service's settings for a flood: authentication on (one trusted issuer), an SQLite
    audit trail in ``folder``, no access log."""
    issuers = folder / "issuers.json"
    issuers.write_text(
        json.dumps([{"iss": ISS, "jwks": {"keys": [public_jwk(KEY, "k1", "ES384")]}}])
    )
    return {
        "REQUIRE_AUTH": "true",
        "TRUSTED_ISSUERS_FILE": str(issuers),
        "EXTERNAL_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{folder / 'audit.sqlite3'}",
        "ACCESS_LOG": "",
    }


def flood(url: str, seconds: float, threads: int) -> tuple[Counter[int], set[str]]:
    """(statuses, Retry-After values) of every call sent."""
    forged = token(aud=url + HOOK) + "x"
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < until:
                try:
                    resp = session.post(
                        url + HOOK,
                        data=b'{"hook": "order-sign"}',
                        headers={
                            "Authorization": f"Bearer {forged}",
                            "Content-Type": "application/json",
                        },
                        timeout=10,
                    )
                    status, wait = resp.status_code, resp.headers.get("Retry-After")
                except requests.RequestException:
                    status, wait = 0, None
                with lock:
                    statuses[status] += 1
                    if wait is not None:
                        retry_after.add(wait)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 30)  # each call has a client timeout: bounded
    return statuses, retry_after
