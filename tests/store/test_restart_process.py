"""A real restart: gunicorn (2 workers, preloaded app) stopped with SIGTERM and started again
on the same database keeps every evaluation and still takes feedback for its cards."""

from __future__ import annotations

from pathlib import Path

import requests

import store
from tests.service_process import ServiceProcess
from tests.store.conftest import HASH_KEY
from tests.store.seed import ORDER_SELECT, order_select, overridden


def test_records_survive_a_graceful_restart_of_the_real_service(tmp_path: Path) -> None:
    url = store.sqlite_url(tmp_path / "audit.sqlite3")
    env = {"DATABASE_URL": url, "AUDIT_HASH_KEY": HASH_KEY, "LOG_LEVEL": "WARNING"}
    cards = []
    with ServiceProcess(env, workers=2) as svc, requests.Session() as http:
        for i in range(60):
            resp = http.post(
                f"{svc.url}/cds-services/{ORDER_SELECT}",
                json=order_select("insufficient", pid=f"p{i}", hook_instance=f"h{i}"),
                timeout=10,
            )
            assert resp.status_code == 200, resp.text
            cards.append(resp.json()["cards"][0])
    # SIGTERM sent and the service gone: whatever the workers had queued is on disk.
    s = store.open_store(url)
    try:
        assert s.counts()["audit_event"] == 60
        assert s.counts()["issued_card"] == 60
    finally:
        s.close()

    with ServiceProcess(env, workers=2) as svc, requests.Session() as http:
        resp = http.post(
            f"{svc.url}/cds-services/{ORDER_SELECT}/feedback",
            json={"feedback": [overridden(c) for c in cards]},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        figures = http.get(f"{svc.url}/analytics.json", timeout=10).json()
    assert figures["totals"]["evaluations"] == 60
    assert figures["totals"]["feedback"] == 60
