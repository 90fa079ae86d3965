"""SMART App Launch 2.x for the assessment app: EHR and standalone launch, authorization code
with PKCE (S256), done by Authlib's OAuth 2.0 client; nothing here hand-writes OAuth.

The FHIR server is the launch's ``iss``, and only when it is one tenant's FHIR server (the
same per-tenant lists the CDS service uses, ``service.tenants``); the launch and the session
remember that tenant, and every later request re-checks the server against its servers only;
the authorization and token endpoints come from that server's ``.well-known/
smart-configuration`` and must be https (or on this machine). Tokens stay on the server
(``store.sessions``, encrypted, shared by every worker): the browser holds only a random
session id, and no token is ever logged.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhirdata.allowlist import is_loopback
from fhirdata.client import FhirError, get_json

# Beside the read scopes (``scopes``): create a confirmation Observation and update one to
# withdraw it (SMART v2 "c" and "u"), and who signed in.
WRITE_AND_USER_SCOPES = ("patient/Observation.cu", "openid", "fhirUser")
# What each SMART v1 permission grants, in SMART v2 letters.
_V1_LETTERS = {"read": "rs", "write": "cud", "*": "cruds"}
EHR_LAUNCH_SCOPE = "launch"
STANDALONE_SCOPE = "launch/patient"
DISCOVERY_TIMEOUT_S = 3.0  # the token and key set requests (Authlib's own session)
DISCOVERY_MAX_BYTES = 256 * 1024  # a SMART configuration is a few kilobytes
_ID_TOKEN_ALGS = ["RS256", "RS384", "ES256", "ES384"]


class LaunchError(Exception):
    """The launch cannot go on; the message is safe to show the user."""


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None = None
    jwks_uri: str | None = None


def _endpoint(doc: Mapping[str, Any], key: str) -> str:
    url = doc.get(key)
    if not isinstance(url, str):
        raise LaunchError(f"the FHIR server's SMART configuration has no {key}")
    parts = urlsplit(url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and is_loopback(parts.hostname or "")
    ):
        raise LaunchError(f"the FHIR server's {key} must use https")
    return url


def discover(iss: str, session: requests.Session, deadline_s: float) -> SmartConfiguration:
    """Read ``{iss}/.well-known/smart-configuration`` (no redirects followed) within
    ``deadline_s`` in all, body included (a server dripping it is cut off then), and at most
    ``DISCOVERY_MAX_BYTES``. Raises LaunchError."""
    url = f"{iss.rstrip('/')}/.well-known/smart-configuration"
    try:
        doc = get_json(session, url, deadline_s, DISCOVERY_MAX_BYTES)
    except FhirError as exc:
        raise LaunchError("the FHIR server's SMART configuration could not be read") from exc
    if not isinstance(doc, dict):
        raise LaunchError("the FHIR server's SMART configuration is not a JSON object")
    jwks = doc.get("jwks_uri")
    return SmartConfiguration(
        authorization_endpoint=_endpoint(doc, "authorization_endpoint"),
        token_endpoint=_endpoint(doc, "token_endpoint"),
        issuer=doc.get("issuer") if isinstance(doc.get("issuer"), str) else None,
        jwks_uri=_endpoint(doc, "jwks_uri") if isinstance(jwks, str) else None,
    )


@dataclass(frozen=True)
class PendingLaunch:
    """Between the redirect to the authorization server and its answer: the OAuth ``state``
    the answer must carry, and the PKCE verifier that redeems its code."""

    iss: str
    config: SmartConfiguration
    code_verifier: str = field(repr=False)
    redirect_uri: str
    state: str = field(repr=False)
    issuer: str | None = None  # the tenant whose FHIR server iss is (service.tenants.Tenant)
    tenant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingLaunch:
        return cls(**{**data, "config": SmartConfiguration(**data["config"])})


@dataclass
class ReviewSession:
    """One clinician's launch: the FHIR server, the token, the patient, who they are."""

    iss: str
    access_token: str = field(repr=False)
    patient_id: str = field(repr=False)
    user_ref: str | None = field(default=None, repr=False)
    app_context: str | None = None
    expires_in_s: float | None = None  # the token's lifetime: the session ends with it
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    # The tenant whose FHIR server iss is: the token goes to no server but that tenant's.
    issuer: str | None = None
    tenant: str | None = None
    # The scopes the authorization server granted (its token answer's ``scope``); None when
    # it did not say, which by OAuth 2.0 means all that were asked for.
    scope: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReviewSession:
        return cls(**data)

    def may(self, letter: str, resource_type: str) -> bool:
        """Whether the granted scopes allow interaction ``letter`` (SMART v2: c r u d s) on
        ``resource_type`` for this patient: ``patient/`` or ``user/`` scopes, v2
        (``patient/Observation.cu``) or v1 (``patient/Observation.write``), the type or ``*``."""
        if self.scope is None:
            return True
        for one in self.scope.split():
            context, _, rule = one.partition("/")
            kind, _, permissions = rule.partition(".")
            if context not in ("patient", "user") or kind not in (resource_type, "*"):
                continue
            letters = _V1_LETTERS.get(permissions, permissions.partition("?")[0])
            if letter in letters:
                return True
        return False


def client(client_id: str, redirect_uri: str, scope: str | None = None) -> OAuth2Session:
    """A public SMART client (no secret): PKCE S256 is what proves the code is ours."""
    return OAuth2Session(
        client_id,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",  # noqa: S106 (a method name, not a secret)
    )


def scopes(read: Iterable[str]) -> tuple[str, ...]:
    """The narrowest scopes for the app: SMART v2 ``patient/X.rs`` for each type in ``read``
    (``fhirdata.read_types`` of the queries the hook path makes, so they cannot drift apart;
    an EHR enforcing scopes answers 403 to a type left out), and ``WRITE_AND_USER_SCOPES``."""
    return (*(f"patient/{t}.rs" for t in sorted(set(read))), *WRITE_AND_USER_SCOPES)


def authorization_url(
    iss: str,
    launch: str | None,
    config: SmartConfiguration,
    client_id: str,
    redirect_uri: str,
    read: Iterable[str],
    issuer: str | None = None,
    tenant: str | None = None,
) -> tuple[str, PendingLaunch]:
    """The URL to send the browser to and what to remember until it returns (with the
    ``issuer`` and ``tenant`` whose FHIR server ``iss`` is).

    With ``launch`` (EHR launch) the scope asks for that launch context; without (standalone
    launch) it asks the authorization server to choose a patient. ``read`` are the resource
    types the app reads (``scopes``).
    """
    scope = " ".join([EHR_LAUNCH_SCOPE if launch else STANDALONE_SCOPE, *scopes(read)])
    verifier = generate_token(64)
    extra = {"aud": iss, **({"launch": launch} if launch else {})}
    with client(client_id, redirect_uri, scope) as oauth:
        url, state = oauth.create_authorization_url(
            config.authorization_endpoint, code_verifier=verifier, **extra
        )
    return url, PendingLaunch(iss, config, verifier, redirect_uri, state, issuer, tenant)


def exchange_code(
    pending: PendingLaunch, code: str, client_id: str, session: requests.Session
) -> ReviewSession:
    """Trade the authorization code (with the PKCE verifier) for a token and launch context."""
    with client(client_id, pending.redirect_uri) as oauth:
        try:
            token = oauth.fetch_token(
                pending.config.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=pending.code_verifier,
                timeout=DISCOVERY_TIMEOUT_S,
                # a redirect would re-send the code and its verifier to wherever it points
                allow_redirects=False,
            )
        # ArithmeticError: an expires_in JSON reads as infinite (1e400) breaks Authlib's sums.
        except (AuthlibBaseError, requests.RequestException, ValueError, ArithmeticError) as exc:
            raise LaunchError("the authorization server did not grant access") from exc
    access_token, patient = token.get("access_token"), token.get("patient")
    if not isinstance(access_token, str) or not isinstance(patient, str) or not patient:
        raise LaunchError("the authorization server gave no access token or no patient")
    user = _fhir_user(token.get("id_token"), pending, client_id, session)
    ctx = token.get("appContext")
    expires_in = token.get("expires_in")
    granted = token.get("scope")
    return ReviewSession(
        iss=pending.iss,
        access_token=access_token,
        patient_id=patient,
        user_ref=user,
        app_context=ctx if isinstance(ctx, str) else None,
        expires_in_s=_lifetime(expires_in),
        issuer=pending.issuer,
        tenant=pending.tenant,
        scope=granted if isinstance(granted, str) else None,
    )


def _lifetime(expires_in: Any) -> float | None:
    """A token's lifetime in seconds when it is one (finite, positive); None otherwise (the
    session then lasts REVIEW_APP_SESSION_MINUTES, or until the FHIR server refuses it)."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return None
    seconds = float(expires_in)
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _fhir_user(
    id_token: Any, pending: PendingLaunch, client_id: str, session: requests.Session
) -> str | None:
    """The ``fhirUser`` claim of a verified id_token ("Practitioner/123"), or None.

    The id_token is trusted only when its signature checks against the server's JWK Set and
    its issuer and audience are right; otherwise the app simply does not know who is using it.
    """
    config = pending.config
    if not isinstance(id_token, str) or not config.jwks_uri:
        return None
    try:
        doc = get_json(session, config.jwks_uri, DISCOVERY_TIMEOUT_S, DISCOVERY_MAX_BYTES)
        keys = KeySet.import_key_set(doc)
        token = jwt.decode(id_token, keys, algorithms=_ID_TOKEN_ALGS)
        expected: dict[str, Any] = {"aud": {"essential": True, "value": client_id}}
        if config.issuer:
            expected["iss"] = {"essential": True, "value": config.issuer}
        jwt.JWTClaimsRegistry(leeway=30, exp={"essential": True}, **expected).validate(token.claims)
        claims = token.claims
    except (FhirError, ValueError, TypeError, JoseError):
        return None
    user = claims.get("fhirUser")
    if not isinstance(user, str):
        return None
    # An absolute fhirUser on this FHIR server becomes a relative reference.
    base = pending.iss.rstrip("/") + "/"
    return user.removeprefix(base) if user.startswith(base) or "://" not in user else None
