"""The app's state: one typed object per Flask app, and the accessor that returns it.

``create_app`` builds an ``AppState`` once at start-up and ``install``s it; every module reads
it with ``app_state()`` (inside a request or app context) or ``state_of(app)``. Nothing else
is kept in ``app.extensions``: mypy sees every field's type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from disclosure import Disclosure
from places import PlaceDirectory
from service.admission import HookAdmission
from service.evaluation import HookResult, Runtime
from service.hookrequest import HookRequest
from service.tenants import TenantDirectory
from store import AuditStore
from store.sessions import SessionStore

if TYPE_CHECKING:  # the dashboard's and the review app's guards (they import nothing of the app)
    from dashboard.throttle import LoginThrottle
    from review_app.guards import DiscoveryCache, LaunchLimiter

EvaluationListener = Callable[[str, HookRequest, HookResult], None]
"""Called after each evaluation with the service id, the request and the result; must not
block or raise (the audit trail, the metrics)."""

FeedbackHandler = Callable[[str, Mapping[str, Any]], None]
"""Validates and stores one CDS Hooks feedback body; raises BadRequest naming a bad item."""

_KEY = "iport_cds"


@dataclass
class AppState:
    runtime: Runtime  # value sets, policies, services, FHIR pool: built once
    store: AuditStore  # the audit trail, feedback, token claims, sessions
    admission: HookAdmission  # hook slots per worker and per FHIR server
    places: PlaceDirectory = field(default_factory=PlaceDirectory)
    disclosure: Disclosure = field(default_factory=Disclosure)  # small-number suppression
    listeners: list[EvaluationListener] = field(default_factory=list)
    feedback_handler: FeedbackHandler | None = None
    login_throttle: LoginThrottle | None = None
    auth_exempt: set[str] = field(default_factory=set)  # paths carrying their own credential
    # Each tenant's FHIR servers (service.auth sets it): where an access token may be sent
    tenants: TenantDirectory | None = None
    review_sessions: SessionStore | None = None  # the SMART assessment app's launches
    smart_launch_path: str | None = None
    smart_discovery: DiscoveryCache | None = None  # SMART configurations, per FHIR server
    launch_limiter: LaunchLimiter | None = None  # the review app's launches per address


def install(app: Flask, state: AppState) -> AppState:
    app.extensions[_KEY] = state
    return state


def state_of(app: Flask) -> AppState:
    state = app.extensions[_KEY]
    if not isinstance(state, AppState):  # pragma: no cover - only install() writes the key
        raise TypeError("the app's state is not an AppState")
    return state


def app_state() -> AppState:
    """The current app's state (inside a request or an app context)."""
    return state_of(current_app)
