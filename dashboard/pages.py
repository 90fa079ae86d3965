"""The commissioners' dashboard: ``GET /analytics`` (HTML, charts), ``GET /analytics.json``
(the same figures) and ``GET /analytics/export.csv``, behind the dashboard sign-in
(``dashboard.login``); the figures' names and CSV rows are ``dashboard.data``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    render_template,
    request,
)

import places
import store
from dashboard import data, login
from dashboard.figures import access_json, summary_json
from dashboard.login import Forbidden, access, login_page, require_access, secure
from dashboard.throttle import LoginThrottle
from disclosure import Disclosure
from facts.london import london_day
from service.errors import BadRequest
from service.evaluation import Runtime
from service.state import AppState, app_state
from store import people

log = logging.getLogger("iport_cds.analytics")

MAX_RANGE_DAYS = 3 * 366
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2999, 12, 31)
DEFAULT_RANGE_DAYS = 30

bp = Blueprint(
    "analytics",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/analytics/static",
)

# Paths that carry their own admin-token check: the CDS client JWT check must not apply.
EXEMPT_PATHS = (
    "/analytics",
    "/analytics.json",
    "/analytics/login",
    "/analytics/logout",
    "/analytics/export.csv",
    "/analytics/static/analytics.css",
    "/analytics/static/analytics.js",
    "/analytics/static/vendor/chart.umd.min.js",
)


bp.add_url_rule("/analytics/login", view_func=login.analytics_login, methods=["POST"])
bp.add_url_rule("/analytics/logout", view_func=login.analytics_logout, methods=["POST"])


def init_app(app: Flask, state: AppState, key: bytes) -> None:
    """Register the dashboard (its views, sign-in and static files) and its login throttle."""
    state.login_throttle = LoginThrottle(state.store, key)
    app.register_blueprint(bp)
    state.auth_exempt.update(EXEMPT_PATHS)


def _today() -> date:
    now: datetime = current_app.config["CLOCK"]()
    return london_day(now)


def _filter(args: Mapping[str, str]) -> store.Filter:
    def day(name: str, default: date) -> date:
        raw = args.get(name)
        if not raw:
            return default
        try:
            found = date.fromisoformat(raw)
        except ValueError as exc:
            raise BadRequest(f"'{name}' must be a date (YYYY-MM-DD)") from exc
        if not EARLIEST_DAY <= found <= LATEST_DAY:
            # Also keeps date arithmetic (a default start, time zones) far from its limits.
            raise BadRequest(f"'{name}' must be between {EARLIEST_DAY} and {LATEST_DAY}")
        return found

    end = day("to", _today())
    start = day("from", end - timedelta(days=DEFAULT_RANGE_DAYS - 1))
    if start > end:
        raise BadRequest("'from' must not be after 'to'")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise BadRequest(f"the date range may span at most {MAX_RANGE_DAYS} days")
    service = args.get("service") or None
    runtime = app_state().runtime
    if service is not None and service not in runtime.services:
        raise BadRequest("'service' is not a service of this deployment")
    policy = args.get("policy") or None
    if policy is not None and policy not in runtime.policies:
        raise BadRequest("'policy' is not a policy of this deployment")
    place = args.get("place") or None
    directory = app_state().places
    if place is not None and place not in data.place_keys(runtime, directory):
        raise BadRequest("'place' is not a place of this deployment")
    return store.Filter(
        start, end, service, _policy_services(runtime, policy) if policy else (), place
    )


def _policy_services(runtime: Runtime, policy_id: str) -> tuple[str, ...]:
    return tuple(sorted(s.id for s in runtime.services.values() if s.policy == policy_id))


def figures(f: store.Filter) -> dict[str, Any]:
    """The dashboard's figures, with criterion titles and policy versions added."""
    s, runtime, d = app_state().store, app_state().runtime, app_state().disclosure
    out = summary_json(s.summary(f), f, d)
    titles: dict[str, str] = {}
    for policy in runtime.policies.values():
        for cid in policy.criterion_ids:
            titles.setdefault(cid, policy.title_of(cid))
    # As on the page: a pathway's diagnosis chooses the pathway, it does not stand in its way.
    gates = {p.diagnosis for policy in runtime.policies.values() for p in policy.pathways}
    out["blockingCriteria"] = [b for b in out["blockingCriteria"] if b["id"] not in gates]
    for b in out["blockingCriteria"]:
        b["title"] = titles.get(b["id"], b["id"])
    out["access"] = access_json(s.access_counts(f), d)
    out["generatedAt"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["policies"] = [
        {"key": key, "id": p.info.id, "version": p.info.version, "title": p.info.title}
        for key, p in runtime.policies.items()
    ]
    out["policy"] = next(
        (
            p
            for p in runtime.policies
            if f.service_ids and f.service_ids == _policy_services(runtime, p)
        ),
        None,
    )
    out.update(data.figures(s, f, runtime, d))
    # The same totals split by policy (i-Port Advance and NICE insulin pump), for the date range.
    out["byPolicy"] = {
        p: _totals(s, replace(f, service_ids=_policy_services(runtime, p)), d)
        for p in runtime.policies
    }
    out["disclosure"] = d.as_json()
    return out


def _totals(s: store.AuditStore, f: store.Filter, d: Disclosure) -> Any:
    return summary_json(s.summary(f), f, d)["totals"]


@bp.get("/analytics.json")
def analytics_json() -> Response:
    require_access()
    body = orjson.dumps(figures(_filter(request.args)))
    return secure(Response(body, mimetype="application/json"))


@bp.get("/analytics")
def analytics_page() -> Response | str:
    granted = access()
    if granted == "forbidden":
        raise Forbidden("the dashboard is off: set ANALYTICS_TOKEN to enable it")
    if granted == "login":
        return login_page(error=None, status=401)
    try:
        f = _filter(request.args)
    except BadRequest as exc:  # a person typed it: a page that says what to change
        html = render_template("analytics_bad_input.html", message=exc.message)
        return secure(Response(html, status=400, mimetype="text/html"))
    runtime = app_state().runtime
    directory = app_state().places
    policy = request.args.get("policy") or ""
    html = render_template(
        "analytics.html",
        start=f.start.isoformat(),
        end=f.end.isoformat(),
        service=f.service_id or "",
        services=sorted(data.service_names(runtime).items(), key=lambda kv: kv[1]),
        policy=policy,
        policies=[(pid, data.policy_name(p)) for pid, p in sorted(runtime.policies.items())],
        place=f.place or "",
        places=[(p, places.place_name(p)) for p in data.place_keys(runtime, directory)],
        heading=data.policy_name(runtime.policies[policy]) if policy else None,
        coverage=data.coverage(runtime, directory),
        disclosure_note=app_state().disclosure.note(),
        token_login=bool(current_app.config.get("ANALYTICS_TOKEN")),
    )
    return secure(Response(html, mimetype="text/html"))


@bp.get("/analytics/export.csv")
def analytics_export() -> Response:
    """The evaluations (or, with ``kind=feedback``, the feedback) of the current filters as a
    spreadsheet-ready CSV: behind the same sign-in as the data."""
    require_access()
    f = _filter(request.args)
    kind = request.args.get("kind") or "evaluations"
    if kind not in ("evaluations", "feedback"):
        raise BadRequest("'kind' must be 'evaluations' or 'feedback'")
    runtime = app_state().runtime
    s = app_state().store
    s.flush(10)

    def body() -> Iterator[bytes]:
        with s.engine.connect() as conn, conn.begin():
            if kind == "feedback":
                yield from data.csv_stream(
                    data.FEEDBACK_COLUMNS,
                    data.feedback_rows(people.export_feedback(conn, f), runtime),
                )
                return
            columns = data.criterion_columns(runtime)
            yield from data.csv_stream(
                (*data.EVALUATION_COLUMNS, *(c.header for c in columns)),
                data.evaluation_rows(people.export_evaluations(conn, f), runtime, columns),
            )

    name = f"iport-cds-{kind}-{f.start.isoformat()}-to-{f.end.isoformat()}.csv"
    resp = Response(body(), mimetype="text/csv")
    resp.headers["Content-Type"] = "text/csv; charset=utf-8"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return secure(resp)
