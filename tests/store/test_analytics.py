"""The commissioners' figures (/analytics.json), their access control, and the CSV export."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

import store
from dashboard.pages import EXEMPT_PATHS
from service.state import state_of as app_state_of
from store import AuditRecord, CardRecord, CriterionRecord, FeedbackRecord
from store.models import AnalyticsLoginFailure
from tests.store.conftest import HASH_KEY, AppFactory, store_of

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 20)
OVERRIDE = "https://iport-cds.example.org/fhir/CodeSystem/override-reason"
REPO = Path(__file__).resolve().parents[2]


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def evaluation(
    day: date,
    outcome: str | None,
    card: str | None,
    criteria: list[tuple[str, str, bool]],
    prefetched: int,
    fetched: int,
    fetch_ms: float | None,
    total_ms: float,
    service: str = "iport-advance-order-select",
) -> AuditRecord:
    return AuditRecord(
        recorded_at=at(day),
        service_id=service,
        hook="order-select",
        hook_instance=f"h-{card}",
        patient_hash="0" * 64,
        outcome=outcome,
        pathway="type-1" if outcome else None,
        policy_id="hny-iport-advance" if outcome else None,
        policy_version="2025-12-04" if outcome else None,
        cards=(CardRecord(card, ("s1",), ((OVERRIDE, "ifr-submitted"),)),) if card else (),
        criteria=tuple(CriterionRecord(*c) for c in criteria),
        prefetch_keys=tuple(f"k{i}" for i in range(prefetched)),
        fetched_keys=tuple(f"f{i}" for i in range(fetched)),
        fhir_requests=fetched,
        fetch_ms=fetch_ms,
        total_ms=total_ms,
    )


def feedback(
    card: str, outcome: str, day: date, code: str | None = None, comment: str | None = None
) -> FeedbackRecord:
    return FeedbackRecord(
        dedup_key=f"{card}-{outcome}-{code}-{comment}",
        service_id="iport-advance-order-select",
        card_uuid=card,
        outcome=outcome,
        outcome_at=at(day, 14),
        received_at=at(day, 14),
        accepted_suggestions=("s1",) if outcome == "accepted" else (),
        reason_system=OVERRIDE if code else None,
        reason_code=code,
        reason_display={"ifr-submitted": "IFR submitted", "clinical-judgement": "Judgement"}.get(
            code or ""
        ),
        user_comment=comment,
    )


def seed(s: store.Store) -> None:
    for record in (
        evaluation(D1, "meets-criteria", "c1", [("needle-phobia", "met", True)], 8, 0, 0.0, 10),
        evaluation(
            D1,
            "does-not-meet-criteria",
            "c2",
            [("type-1-diabetes", "not-met", True), ("type-2-diabetes", "not-met", True)],
            6,
            2,
            100.0,
            120,
        ),
        evaluation(
            D2,
            "insufficient-information",
            "c3",
            [
                ("type-1-diabetes", "met", True),
                ("needle-phobia", "unknown", True),
                ("mdi-impractical", "unknown", True),
                ("type-2-diabetes", "not-met", False),
            ],
            0,
            8,
            200.0,
            250,
        ),
        evaluation(D3, None, None, [], 0, 0, None, 1, service="iport-advance-order-sign"),
    ):
        s.record(record)
    assert s.flush(10)
    s.add_feedback(
        [
            feedback("c1", "accepted", D1),
            feedback("c2", "overridden", D1, "ifr-submitted"),
            feedback("c3", "overridden", D2, "clinical-judgement"),
            feedback("c3", "overridden", D2, comment='=HYPERLINK("http://x")'),
        ]
    )


@pytest.fixture
def seeded(make_app: AppFactory, database_url: str) -> Flask:
    app = make_app(database_url)
    seed(store_of(app))
    return app


def test_figures_for_the_whole_range(seeded: Flask) -> None:
    with seeded.test_client() as client:
        resp = client.get("/analytics.json?from=2026-11-01&to=2026-11-20")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    f = resp.json
    assert f["range"] == {"from": "2026-11-01", "to": "2026-11-20"}
    assert f["totals"] == {
        "evaluations": 4,
        "cards": 3,
        "feedback": 4,
        "accepted": 1,
        "overridden": 3,
        "overrideRate": 0.75,
        "feedbackRate": 1.3333,
    }
    assert f["evaluationsByOutcome"] == {
        "meets-criteria": 1,
        "does-not-meet-criteria": 1,
        "insufficient-information": 1,
        "no-decision": 1,
    }
    assert len(f["cardsPerDay"]) == 20
    assert f["cardsPerDay"][0] == {
        "day": "2026-11-01",
        "meets-criteria": 1,
        "does-not-meet-criteria": 1,
        "insufficient-information": 0,
        "evaluations": 2,
    }
    assert f["cardsPerDay"][1]["insufficient-information"] == 1
    assert f["cardsPerDay"][19]["evaluations"] == 1
    assert f["overrideReasons"] == [
        {"code": None, "display": "(no reason given)", "count": 1},
        {"code": "clinical-judgement", "display": "Judgement", "count": 1},
        {"code": "ifr-submitted", "display": "IFR submitted", "count": 1},
    ]
    assert f["feedbackByCardOutcome"] == {
        "does-not-meet-criteria": {"accepted": 0, "overridden": 1, "overrideRate": 1.0},
        "insufficient-information": {"accepted": 0, "overridden": 2, "overrideRate": 1.0},
        "meets-criteria": {"accepted": 1, "overridden": 0, "overrideRate": 0.0},
    }
    blocking = {b["id"]: b for b in f["blockingCriteria"]}
    # A diagnosis chooses the pathway rather than standing in its way: left out, as on the page.
    assert set(blocking) == {"needle-phobia", "mdi-impractical"}
    assert blocking["needle-phobia"] == {
        "id": "needle-phobia",
        "notMet": 0,
        "unknown": 1,
        "total": 1,
        "share": 0.5,
        "title": blocking["needle-phobia"]["title"],
    }
    assert "phobia" in blocking["needle-phobia"]["title"].lower()
    assert f["notEligibleEvaluations"] == 2
    assert f["prefetch"] == {
        "evaluations": 3,
        "keysPrefetched": 14,
        "keysFetched": 10,
        "hitRate": 0.5833,
        "fullyPrefetched": 1,
        "fullyPrefetchedRate": 0.3333,
    }
    assert f["latencyMs"] == {
        "count": 4,
        "p50": 10.0,
        "p90": 250.0,
        "p95": 250.0,
        "p99": 250.0,
        "max": 250.0,
    }
    assert f["fhirFetchMs"]["p50"] == 100.0
    assert f["fhirFetchMs"]["count"] == 2
    assert {p["id"] for p in f["policies"]} >= {"hny-iport-advance"}


def test_filters_change_the_figures(seeded: Flask) -> None:
    with seeded.test_client() as client:
        day2 = client.get("/analytics.json?from=2026-11-02&to=2026-11-02").json
        sign = client.get(
            "/analytics.json?from=2026-11-01&to=2026-11-20&service=iport-advance-order-sign"
        ).json
    assert day2["totals"]["evaluations"] == 1
    assert day2["totals"]["feedback"] == 2
    assert day2["totals"]["overrideRate"] == 1.0
    assert [b["id"] for b in day2["blockingCriteria"]] == ["mdi-impractical", "needle-phobia"]
    assert sign["totals"]["evaluations"] == 1
    assert sign["totals"]["cards"] == 0
    assert sign["totals"]["feedback"] == 0
    assert sign["latencyMs"]["p50"] == 1.0


def test_default_range_is_the_last_30_days(seeded: Flask) -> None:
    with seeded.test_client() as client:
        f = client.get("/analytics.json").json
    assert f["range"] == {"from": "2026-10-23", "to": "2026-11-21"}  # the clock says 21 Nov
    assert f["totals"]["evaluations"] == 4


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=yesterday", "'from' must be a date"),
        ("to=2026-13-01", "'to' must be a date"),
        ("from=2026-11-05&to=2026-11-01", "'from' must not be after 'to'"),
        ("from=2020-01-01&to=2026-11-01", "at most"),
        ("from=0001-01-01", "'from' must be between 2000-01-01 and 2999-12-31"),
        ("from=0001-01-01&to=0001-01-02", "must be between"),
        ("to=0001-01-01", "'to' must be between"),
        ("from=9999-12-30&to=9999-12-31", "must be between"),
        ("service=nope", "'service' is not a service"),
    ],
)
def test_bad_filters_are_400(
    make_app: AppFactory, sqlite_url: str, query: str, message: str
) -> None:
    with make_app(sqlite_url).test_client() as client:
        resp = client.get(f"/analytics.json?{query}")
    assert resp.status_code == 400
    assert message in resp.json["issue"][0]["diagnostics"]


# -- access ---------------------------------------------------------------------------------------
ADMIN = "admin-token-5a9f0c7e2b4d"


def test_token_protects_the_figures_and_the_page(make_app: AppFactory, sqlite_url: str) -> None:
    app = make_app(sqlite_url, ANALYTICS_TOKEN=ADMIN)
    with app.test_client() as client:
        resp = client.get("/analytics.json")
        assert resp.status_code == 401
        assert resp.json["issue"][0]["code"] == "login"
        assert (
            client.get("/analytics.json", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        ok = client.get("/analytics.json", headers={"Authorization": f"Bearer {ADMIN}"})
        assert ok.status_code == 200
        page = client.get("/analytics")
        assert page.status_code == 401
        assert page.headers["WWW-Authenticate"].startswith("Bearer")
        assert b'name="token"' in page.data
        assert (
            client.get("/analytics", headers={"Authorization": f"Bearer {ADMIN}"}).status_code
            == 200
        )
        # the static assets hold no data and load without a token
        static = client.get("/analytics/static/analytics.js")
        assert static.status_code == 200
        static.close()


def test_browser_sign_in_sets_a_session_cookie(make_app: AppFactory, sqlite_url: str) -> None:
    app = make_app(sqlite_url, ANALYTICS_TOKEN=ADMIN)
    with app.test_client() as client:
        wrong = client.post("/analytics/login", data={"token": "guess"})
        assert wrong.status_code == 401
        assert b"not right" in wrong.data
        assert client.get_cookie("iport_cds_analytics") is None
        resp = client.post("/analytics/login", data={"token": ADMIN})
        assert resp.status_code == 303
        cookie = client.get_cookie("iport_cds_analytics")
        assert cookie is not None
        assert cookie.http_only
        assert cookie.same_site == "Strict"
        assert ADMIN not in cookie.value
        assert client.get("/analytics").status_code == 200
        assert client.get("/analytics.json").status_code == 200
        # one character changed, always to a different one, so the signature cannot match
        last = "1" if cookie.value[-1] == "0" else "0"
        client.set_cookie("iport_cds_analytics", cookie.value[:-1] + last)
        assert client.get("/analytics.json").status_code == 401
        client.set_cookie("iport_cds_analytics", cookie.value)
        client.post("/analytics/logout")
        assert client.get("/analytics.json").status_code == 401
        # A copy of the cookie kept from before signing out is worthless: the session is over
        # for every worker, not only forgotten by this browser.
        client.set_cookie("iport_cds_analytics", cookie.value)
        assert client.get("/analytics.json").status_code == 401


def test_a_session_is_valid_on_every_worker_and_ends_when_the_token_changes(
    make_app: AppFactory, sqlite_url: str
) -> None:
    first = make_app(sqlite_url, ANALYTICS_TOKEN=ADMIN)
    with first.test_client() as client:
        client.post("/analytics/login", data={"token": ADMIN})
        cookie = client.get_cookie("iport_cds_analytics")
    assert cookie is not None
    with make_app(sqlite_url, ANALYTICS_TOKEN=ADMIN).test_client() as other_worker:
        other_worker.set_cookie("iport_cds_analytics", cookie.value)
        assert other_worker.get("/analytics.json").status_code == 200
    with make_app(sqlite_url, ANALYTICS_TOKEN="rotated-token").test_client() as rotated:
        rotated.set_cookie("iport_cds_analytics", cookie.value)
        assert rotated.get("/analytics.json").status_code == 401


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [
        ("https://cds.example.nhs.uk", True),
        ("http://cds.example.nhs.uk", True),  # TLS ended at the ingress: still https outside
        ("http://cds.internal:8080", True),
        ("http://localhost:8080", False),  # the sandbox on this machine
        ("http://127.0.0.1:8080", False),
    ],
)
def test_the_session_cookie_is_secure_except_on_this_machine(
    make_app: AppFactory, sqlite_url: str, base_url: str, secure: bool
) -> None:
    with make_app(sqlite_url, ANALYTICS_TOKEN=ADMIN).test_client() as client:
        resp = client.post("/analytics/login", data={"token": ADMIN}, base_url=base_url)
    assert resp.status_code == 303
    assert ("Secure" in resp.headers["Set-Cookie"]) is secure


def test_wrong_tokens_are_throttled(make_app: AppFactory, sqlite_url: str) -> None:
    with make_app(sqlite_url, ANALYTICS_TOKEN=ADMIN).test_client() as client:
        statuses = [
            client.post("/analytics/login", data={"token": f"guess-{i}"}).status_code
            for i in range(6)
        ]
        assert statuses == [401] * 5 + [429]
        right = client.post("/analytics/login", data={"token": ADMIN})
        assert right.status_code == 429  # even the right token waits: the token is not checked
        assert int(right.headers["Retry-After"]) > 0
        other = client.post(
            "/analytics/login", data={"token": ADMIN}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
        )
        assert other.status_code == 303  # another address is not locked out


def test_the_sign_in_throttle_is_shared_by_every_worker_and_keeps_no_address(
    make_app: AppFactory, database_url: str
) -> None:
    workers = [make_app(database_url, ANALYTICS_TOKEN=ADMIN) for _ in range(2)]
    clients = [app.test_client() for app in workers]
    statuses = [
        clients[i % 2].post("/analytics/login", data={"token": f"guess-{i}"}).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    assert clients[0].post("/analytics/login", data={"token": ADMIN}).status_code == 429
    with store_of(workers[0]).engine.connect() as conn:
        kept = conn.execute(select(AnalyticsLoginFailure.address_hash)).scalars().all()
    assert len(kept) == 5
    assert all(re.fullmatch("[0-9a-f]{64}", h) for h in kept)  # an HMAC, not the address


def test_the_sign_in_throttle_counts_a_window_and_forgets_what_is_older(
    make_app: AppFactory, database_url: str
) -> None:
    s = store_of(make_app(database_url))
    window, t0 = timedelta(minutes=15), datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

    def retry_after(address: str, at: datetime, per_address: int = 5) -> int:
        return s.claim_login_try(address * 64, at, window, per_address, 50).retry_after_s

    for i in range(5):
        assert s.claim_login_try("a" * 64, t0 + timedelta(seconds=i), window, 5, 50).granted
    later = t0 + timedelta(seconds=5)
    assert retry_after("a", later) == 15 * 60 - 5 + 1
    assert s.claim_login_try("b" * 64, later, window, 5, 5).retry_after_s == 15 * 60 - 5 + 1
    # the oldest failure leaves the window: four remain, one more try is allowed (and counted)
    assert s.claim_login_try("a" * 64, t0 + window, window, 5, 50).granted
    assert retry_after("a", t0 + window) == 2  # until the one at t0 + 1 s leaves the window
    claim = s.claim_login_try("b" * 64, t0 + window + timedelta(seconds=3), window, 5, 50)
    assert claim.granted
    with s.engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(AnalyticsLoginFailure)).scalar()
    assert kept == 3  # t0 + 4 s, t0 + window and the new one; older ones are deleted
    s.release_login_try(claim)  # a right token is not a failure
    with s.engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(AnalyticsLoginFailure)).scalar()
    assert kept == 2


def test_open_without_a_token_only_when_the_service_runs_without_auth(
    make_app: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    with make_app(sqlite_url).test_client() as client:  # REQUIRE_AUTH false (sandbox)
        page = client.get("/analytics")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert b"/analytics/static/vendor/chart.umd.min.js" in page.data
        assert b"cdn" not in page.data.lower()
    issuers = tmp_path / "issuers.json"
    issuers.write_text(
        json.dumps([{"iss": "https://ehr.example", "jwks_url": "https://ehr.example/jwks"}])
    )
    secured = make_app(
        sqlite_url,
        REQUIRE_AUTH=True,
        TRUSTED_ISSUERS_FILE=str(issuers),
        EXTERNAL_BASE_URL="http://localhost",
        AUTH_EXEMPT_PATHS=["/healthz", *EXEMPT_PATHS],
    )
    with secured.test_client() as client:
        assert client.get("/analytics").status_code == 403
        assert client.get("/analytics.json").status_code == 403
    with make_app(
        sqlite_url,
        REQUIRE_AUTH=True,
        TRUSTED_ISSUERS_FILE=str(issuers),
        EXTERNAL_BASE_URL="http://localhost",
        AUTH_EXEMPT_PATHS=["/healthz", *EXEMPT_PATHS],
        ANALYTICS_TOKEN=ADMIN,
    ).test_client() as client:
        assert (
            client.get("/analytics.json", headers={"Authorization": f"Bearer {ADMIN}"}).status_code
            == 200
        )


def test_every_exempt_static_path_exists() -> None:
    static = REPO / "dashboard" / "static"
    for path in EXEMPT_PATHS:
        if path.startswith("/analytics/static/"):
            assert (static / path.removeprefix("/analytics/static/")).is_file(), path


# -- export ---------------------------------------------------------------------------------------
def test_export_audit_writes_csv(seeded: Flask, tmp_path: Path) -> None:
    runner = seeded.test_cli_runner()
    result = runner.invoke(args=["export-audit", "--since", "2026-11-02"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["outcome"] for r in rows] == ["insufficient-information", ""]
    assert rows[0]["criteria"] == (
        "mdi-impractical=unknown;needle-phobia=unknown;type-1-diabetes=met;type-2-diabetes=not-met"
    )
    assert rows[0]["card_uuids"] == "c3"
    assert rows[0]["fetched_keys"] == "f0 f1 f2 f3 f4 f5 f6 f7"
    assert "exported 2 row(s)" in result.stderr

    out = tmp_path / "feedback.csv"
    result = runner.invoke(
        args=[
            "export-audit",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-02",
            "--feedback",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 4
    assert rows[3]["user_comment"] == '\'=HYPERLINK("http://x")'  # not a live formula

    bad = runner.invoke(args=["export-audit", "--since", "1 Nov"])
    assert bad.exit_code == 2
    assert "YYYY-MM-DD" in bad.output


def test_export_audit_from_the_flask_command_line(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    s = store.open_store(store.sqlite_url(db))
    try:
        seed(s)
    finally:
        s.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPORT_CDS_")}
    env.update(
        IPORT_CDS_REQUIRE_AUTH="false",
        IPORT_CDS_DATABASE_URL=store.sqlite_url(db),
        IPORT_CDS_AUDIT_HASH_KEY=HASH_KEY,
        IPORT_CDS_LOG_LEVEL="WARNING",
    )
    flask = Path(sys.executable).with_name("flask")
    done = subprocess.run(
        [str(flask), "--app", "service", "export-audit", "--since", "2026-11-01"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 4
    assert rows[0]["recorded_at"] == "2026-11-01T12:00:00.000+00:00"


def test_purge_before_reports_counts(make_app: AppFactory, database_url: str) -> None:
    s = store_of(make_app(database_url))
    seed(s)
    assert s.purge_before(at(D2, 0)) == (2, 2)
    left: dict[str, Any] = s.counts()
    assert left["audit_event"] == 2
    assert left["feedback"] == 2


def test_figures_split_by_policy(make_app: AppFactory, database_url: str) -> None:
    app = make_app(database_url)
    s = store_of(app)
    seed(s)
    met = [("nice-pump-criteria", "met", True)]
    pump = evaluation(
        D2, "meets-criteria", "p1", met, 8, 0, 0.0, 5, service="nice-insulin-pump-patient-view"
    )
    s.record(pump)
    assert s.flush(10)
    with app.test_client() as client:
        everything = client.get("/analytics.json?from=2026-11-01&to=2026-11-20").json
        pump_only = client.get(
            "/analytics.json?from=2026-11-01&to=2026-11-20&policy=nice-insulin-pump"
        ).json
        iport_only = client.get(
            "/analytics.json?from=2026-11-01&to=2026-11-20&policy=hny-iport-advance"
        ).json
        bad = client.get("/analytics.json?policy=nope")
    assert everything["totals"]["evaluations"] == 5
    assert pump_only["totals"]["evaluations"] == 1
    assert pump_only["policy"] == "nice-insulin-pump"
    assert iport_only["totals"]["evaluations"] == 4
    assert everything["byPolicy"]["nice-insulin-pump"]["cards"] == 1
    assert everything["byPolicy"]["hny-iport-advance"]["cards"] == 3
    assert bad.status_code == 400


def test_an_order_without_an_i_port_is_labelled_as_not_assessed(seeded: Flask) -> None:
    # An order hook whose order holds no i-Port is evaluated for nothing: the trend says so in
    # the same words in the table, the chart legend and the CSV, and never as a patient-view
    # outcome.
    from dashboard.data import OUTCOME_NAMES

    label = OUTCOME_NAMES["no-decision"]
    assert label == "Not assessed (order without an i-Port)"
    with seeded.test_client() as client:
        page = client.get("/analytics").get_data(as_text=True)
        names = client.get("/analytics.json?from=2026-11-01&to=2026-11-20").json["names"]
        script = client.get("/analytics/static/series.js")
        js = script.get_data(as_text=True)
        script.close()
    assert f'<th scope="col" class="n">{label}</th>' in page
    # the chart's legend is the figures' name, drawn in the style of its word
    assert names["outcomes"]["no-decision"] == label
    assert f'"{names["outcomeSeries"]["no-decision"]}": {{' in js
    assert "No i-Port order" not in page + js


def test_the_sign_in_throttle_grants_at_most_its_limit_under_a_race(
    make_app: AppFactory, database_url: str
) -> None:
    """120 wrong tokens at once, from 24 threads over two apps (two processes' stores): a try
    is claimed and counted in one step, so at most 5 are tried."""
    apps = [make_app(database_url), make_app(database_url)]
    throttles = [app_state_of(a).login_throttle for a in apps]
    start = threading.Barrier(24)
    tried: list[int] = []

    def guess(i: int) -> None:
        throttle = throttles[i % 2]
        assert throttle is not None
        start.wait(10)
        for _ in range(5):
            if throttle.claim("203.0.113.9", time.time()).granted:
                tried.append(i)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(tried) == 5


def test_a_right_token_does_not_count_as_a_wrong_one(make_app: AppFactory, sqlite_url: str) -> None:
    throttle = app_state_of(make_app(sqlite_url)).login_throttle
    assert throttle is not None
    for _ in range(10):
        claimed = throttle.claim("203.0.113.9", time.time())
        assert claimed.granted
        throttle.right_token(claimed)
