"""Authenticating the CDS client: the JWT every CDS Hooks request carries (CDS Hooks 2.0 §Security).

PyJWT (with cryptography) does the JOSE work — parsing, key handling, signatures, exp/iat/aud
checks; this module decides *which* issuers, keys, algorithms and audiences are acceptable,
which FHIR servers each tenant's tokens may reach, caches JWK Sets, and refuses replays (token
ids kept in the database, shared by every worker and pod). Any failure is a bare 401; the
reason is logged (never the token).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
import orjson
import requests
from flask import Flask, Response, g, request
from jwt import PyJWK, PyJWKSet

from fhirdata.allowlist import is_loopback, normalise_base
from service.errors import operation_outcome
from service.state import state_of
from service.tenants import TenantDirectory

log = logging.getLogger("iport_cds.auth")

RECOMMENDED_ALGORITHMS = ("ES384", "RS384")
OPTIONAL_ALGORITHMS = ("ES256", "RS256")


class AuthError(Exception):
    """Why a request is not authenticated (for the log only; the client sees a bare 401)."""


@dataclass(frozen=True)
class TrustedIssuer:
    """A CDS client the service trusts, and the FHIR servers its tokens may reach.

    ``tenants`` maps each tenant (the token's ``tenant`` claim) to its own FHIR servers: an
    integration engine fronting several trusts signs for all of them, and a token for one
    trust must not read another's records. Without ``tenants``, the issuer is one tenant and
    ``fhir_servers`` are its servers.
    """

    iss: str
    jwks_url: str | None = None
    jwks: Mapping[str, Any] | None = None
    allowed_jku: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()
    tenants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def servers_for(self, tenant: Any) -> tuple[str, ...]:
        """The FHIR servers a token with this ``tenant`` claim may reach; AuthError when the
        issuer has tenants and this is not one of them."""
        if not self.tenants:
            return self.fhir_servers
        if not isinstance(tenant, str) or tenant not in self.tenants:
            raise AuthError("tenant missing or not one of this issuer's")
        return self.tenants[tenant]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the validated token says (for FHIR access and the access audit)."""

    iss: str
    sub: str | None  # CDS Hooks 2.0 does not define it: the Sandbox, for one, never sends it
    tenant: str | None
    fhir_servers: tuple[str, ...]


def _key_set_url(url: Any) -> str | None:
    """Why ``url`` may not be a JWK Set URL, or None when it may.

    Keys fetched over plain http could be swapped in transit and every token forged, so
    https is required; plain http only for a loopback host (a local sandbox).
    """
    if not isinstance(url, str):
        return "must be a URL string"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "is not a valid URL"
    if not host:
        return "must be an absolute https URL"
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host.lower())):
        return None
    return "must use https (plain http only for a loopback host)"


def load_trusted_issuers(path: str | Path) -> dict[str, TrustedIssuer]:
    """Read the trusted-issuers JSON file; raise ValueError naming the problem."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read trusted issuers: {exc}") from exc
    if not isinstance(doc, list):
        raise ValueError(f"{path}: must be a JSON list of issuers")
    issuers: dict[str, TrustedIssuer] = {}
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict) or not isinstance(entry.get("iss"), str):
            raise ValueError(f"{path}: entry {i} needs an 'iss' string")
        if bool(entry.get("jwks_url")) == bool(entry.get("jwks")):
            raise ValueError(
                f"{path}: issuer {entry['iss']!r} needs exactly one of jwks_url or jwks"
            )
        if entry.get("jwks"):
            PyJWKSet.from_dict(entry["jwks"])  # fail at start-up, not on the first request
        allowed_jku = entry.get("allowed_jku", [])
        if not isinstance(allowed_jku, list):
            raise ValueError(f"{path}: issuer {entry['iss']!r}: allowed_jku must be a list")
        urls = [("jwks_url", entry["jwks_url"])] if entry.get("jwks_url") else []
        for name, url in [*urls, *(("allowed_jku", u) for u in allowed_jku)]:
            problem = _key_set_url(url)
            if problem:
                raise ValueError(f"{path}: issuer {entry['iss']!r}: {name} {url!r} {problem}")
        issuers[entry["iss"]] = TrustedIssuer(
            iss=entry["iss"],
            jwks_url=entry.get("jwks_url"),
            jwks=entry.get("jwks"),
            allowed_jku=tuple(allowed_jku),
            fhir_servers=_servers(entry.get("fhir_servers", []), f"{path}: {entry['iss']!r}"),
            tenants=_tenants(entry, path),
        )
    return issuers


def _servers(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(u, str) and u for u in value):
        raise ValueError(f"{where}: fhir_servers must be a list of base URLs")
    return tuple(value)


def _tenants(entry: Mapping[str, Any], path: str | Path) -> dict[str, tuple[str, ...]]:
    """``{"tenant-id": {"fhir_servers": [...]}, ...}``: each tenant's own FHIR servers."""
    where = f"{path}: issuer {entry['iss']!r}"
    tenants = entry.get("tenants", {})
    if not isinstance(tenants, dict):
        raise ValueError(
            f"{where}: tenants must map each tenant id to its own FHIR servers, e.g. "
            '{"trust-a": {"fhir_servers": ["https://fhir.trust-a.nhs.uk/r4"]}}'
        )
    if tenants and entry.get("fhir_servers"):
        raise ValueError(
            f"{where}: give fhir_servers per tenant, not for the whole issuer as well "
            "(a token for one tenant must not reach another's servers)"
        )
    out: dict[str, tuple[str, ...]] = {}
    for tenant, spec in tenants.items():
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: tenant {tenant!r} must be an object with fhir_servers")
        out[tenant] = _servers(spec.get("fhir_servers", []), f"{where}: tenant {tenant!r}")
    return out


@dataclass
class _CachedSet:
    keys: list[Mapping[str, Any]]  # the JWKs as published (checked to parse when fetched)
    fetched_at: float


class JwksCache:
    """JWK Sets by URL, cached with expiry.

    An unknown kid triggers one refetch (key rotation), at most once per ``min_refetch_s``
    per URL, so unknown kids cannot be used to flood the issuer with requests.
    """

    def __init__(
        self, session: requests.Session, ttl_s: float, timeout_s: float, min_refetch_s: float = 30
    ) -> None:
        self._session = session
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._min_refetch = min_refetch_s
        self._sets: dict[str, _CachedSet] = {}
        self._lock = threading.Lock()

    def _fetch(self, url: str) -> _CachedSet:
        try:
            resp = self._session.get(url, timeout=self._timeout, allow_redirects=False)
            resp.raise_for_status()
            doc = resp.json()
            PyJWKSet.from_dict(doc)  # a malformed set fails here, not on each token
            entry = _CachedSet(list(doc["keys"]), time.monotonic())
        except (
            requests.RequestException,
            ValueError,
            KeyError,
            TypeError,
            jwt.PyJWKSetError,
        ) as exc:
            raise AuthError(f"could not fetch the JWK Set ({type(exc).__name__})") from exc
        with self._lock:
            self._sets[url] = entry
        return entry

    def key(self, url: str, kid: str | None, alg: str) -> Any:
        cached = self._sets.get(url)
        if cached is None or time.monotonic() - cached.fetched_at > self._ttl:
            cached = self._fetch(url)
        found = _find_key(cached.keys, kid, alg)
        if found is None and time.monotonic() - cached.fetched_at > self._min_refetch:
            found = _find_key(self._fetch(url).keys, kid, alg)
        if found is None:
            raise AuthError("no key with that kid for that algorithm in the issuer's JWK Set")
        return found


_KTY_FOR_ALG = {"ES": "EC", "RS": "RSA"}


def _find_key(keys: Iterable[Any], kid: str | None, alg: str) -> Any:
    """The one key for this ``kid`` whose ``kty`` fits ``alg`` and whose own ``alg`` (when it
    states one) is ``alg``: a key is never tried with an algorithm it was not made for.
    None when there is no such key (or, without a ``kid``, more than one)."""
    kty = _KTY_FOR_ALG.get(alg[:2])
    candidates = [
        k
        for k in keys
        if isinstance(k, Mapping)
        and (kid is None or k.get("kid") == kid)
        and k.get("kty") == kty
        and k.get("alg", alg) == alg
        and k.get("use", "sig") == "sig"
    ]
    if not (len(candidates) == 1 or (candidates and kid)):
        return None
    try:
        return PyJWK(dict(candidates[0]), algorithm=alg).key
    except jwt.PyJWTError as exc:
        raise AuthError(f"the issuer's key cannot be used ({type(exc).__name__})") from exc


class ReplayGuard(Protocol):
    """Remembers each token id until it expires, shared by every worker and pod (the database).

    ``claim_token`` is True the first time an (issuer, jti) pair is seen and False after; it raises
    when it cannot tell (the caller refuses the request).
    """

    def claim_token(self, iss: str, jti: str, expires_at: float) -> bool: ...


class ReplayCheckUnavailable(Exception):
    """The replay store cannot be asked: the request is refused with 503, not let through."""


@dataclass
class JwtValidator:
    issuers: Mapping[str, TrustedIssuer]
    jwks: JwksCache
    replay: ReplayGuard
    algorithms: tuple[str, ...] = RECOMMENDED_ALGORITHMS
    leeway_s: float = 30
    max_age_s: float = 600
    clock: Callable[[], float] = field(default=time.time)

    def validate(self, token: str, audience: str) -> Principal:
        """Who a valid token for ``audience`` speaks for; AuthError otherwise.

        Raises ReplayCheckUnavailable when the replay store cannot be asked.
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"not a JWT ({type(exc).__name__})") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthError("algorithm not accepted")
        issuer = self.issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise AuthError("issuer not trusted")
        key = self._key(issuer, header, alg)
        now = self.clock()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer.iss,
                leeway=self.leeway_s,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"rejected: {type(exc).__name__}") from exc
        except Exception as exc:  # a key that does not fit the header's algorithm, and the like
            raise AuthError(
                f"rejected: key and algorithm do not fit ({type(exc).__name__})"
            ) from exc
        return self._accept(issuer, claims, now)

    def _accept(self, issuer: TrustedIssuer, claims: Mapping[str, Any], now: float) -> Principal:
        sub, jti = claims.get("sub"), claims["jti"]
        if sub is not None and not (isinstance(sub, str) and 0 < len(sub) <= 255):
            raise AuthError("sub, when sent, is not a string of 1 to 255 characters")
        if not (isinstance(jti, str) and 0 < len(jti) <= 255):
            raise AuthError("jti is not a string of 1 to 255 characters")
        try:
            iat, exp = float(claims["iat"]), float(claims["exp"])
        except (TypeError, ValueError) as exc:
            raise AuthError("iat or exp is not a number") from exc
        if now - iat > self.max_age_s + self.leeway_s:
            raise AuthError("token too old (iat)")
        if exp - iat > self.max_age_s:
            raise AuthError("token lives longer than the maximum age (exp - iat)")
        tenant = claims.get("tenant")
        servers = issuer.servers_for(tenant)
        # Past this moment the token is refused anyway (too old or expired): forget it then.
        expires_at = min(exp, iat + self.max_age_s) + self.leeway_s
        try:
            first_use = self.replay.claim_token(issuer.iss, jti, expires_at)
        except Exception as exc:
            raise ReplayCheckUnavailable(type(exc).__name__) from exc
        if not first_use:
            raise AuthError("jti replayed")
        return Principal(
            iss=issuer.iss,
            sub=sub,
            tenant=tenant if isinstance(tenant, str) and issuer.tenants else None,
            fhir_servers=servers,
        )

    def _key(self, issuer: TrustedIssuer, header: Mapping[str, Any], alg: str) -> Any:
        kid = header.get("kid")
        jku = header.get("jku")
        # Both are attacker-chosen JSON: a list or object would break the lookups below.
        if kid is not None and not isinstance(kid, str):
            raise AuthError("kid is not a string")
        if jku is not None and not isinstance(jku, str):
            raise AuthError("jku is not a string")
        if jku is not None:
            allowed = {issuer.jwks_url, *issuer.allowed_jku} - {None}
            if jku not in allowed:
                raise AuthError("jku not on the issuer's allowlist")
            return self.jwks.key(jku, kid, alg)
        if issuer.jwks is not None:
            found = _find_key(issuer.jwks.get("keys", ()), kid, alg)
            if found is None:
                raise AuthError("no key with that kid for that algorithm in the configured JWK Set")
            return found
        assert issuer.jwks_url is not None
        return self.jwks.key(issuer.jwks_url, kid, alg)


def build_validator(
    config: Mapping[str, Any], session: requests.Session, replay: ReplayGuard
) -> JwtValidator:
    path = config.get("TRUSTED_ISSUERS_FILE")
    if not path:
        raise ValueError("REQUIRE_AUTH is on but TRUSTED_ISSUERS_FILE is not set")
    algorithms = RECOMMENDED_ALGORITHMS + (OPTIONAL_ALGORITHMS if config["JWT_ALLOW_256"] else ())
    return JwtValidator(
        issuers=load_trusted_issuers(path),
        jwks=JwksCache(
            session,
            ttl_s=float(config["JWKS_CACHE_SECONDS"]),
            timeout_s=float(config["JWKS_TIMEOUT_SECONDS"]),
            min_refetch_s=float(config["JWKS_MIN_REFETCH_SECONDS"]),
        ),
        replay=replay,
        algorithms=algorithms,
        leeway_s=float(config["JWT_LEEWAY_SECONDS"]),
        max_age_s=float(config["JWT_MAX_AGE_SECONDS"]),
    )


def external_base_url(config: Mapping[str, Any]) -> str:
    """The configured public base URL, normalised; ValueError when it is missing or malformed.

    The JWT ``aud`` is checked against it. It is never derived from the request: the Host
    header is the caller's to choose, so a token minted for another CDS service would pass.
    """
    value = config.get("EXTERNAL_BASE_URL")
    hint = (
        "REQUIRE_AUTH is on but EXTERNAL_BASE_URL is {}: set it to the public base URL "
        "clients call (e.g. https://cds.example.nhs.uk); the JWT 'aud' is checked against it"
    )
    if not value:
        raise ValueError(hint.format("not set"))
    try:
        parts = urlsplit(str(value))
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or parts.query or parts.fragment:
        raise ValueError(hint.format(f"not an absolute http(s) base URL ({str(value)[:80]!r})"))
    return normalise_base(str(value))


def audience_for(path: str, external_base: str) -> str:
    """The URL the client called, as it will have put it in ``aud``."""
    return external_base + path


def init_app(app: Flask, session: requests.Session, replay: ReplayGuard) -> None:
    """Require a valid CDS client JWT on every endpoint except CORS preflight and exempt paths.

    The validated caller is ``g.principal``; a refusal's reason is ``g.auth_refused`` (for the
    access audit). Raises ValueError at start-up for a configuration that would be unsafe.
    """
    config = app.config
    state = state_of(app)
    if not config["REQUIRE_AUTH"]:
        log.warning(_AUTH_OFF)
        state.tenants = TenantDirectory.deployment(state.runtime.server_policy)

        @app.before_request
        def warn_on_discovery() -> None:
            if request.method == "GET" and request.path == "/cds-services":
                log.warning(_AUTH_OFF)

        return
    if config["FHIR_ALLOW_LOOPBACK"]:
        raise ValueError(
            "FHIR_ALLOW_LOOPBACK is for local sandboxes without authentication: with "
            "REQUIRE_AUTH on it would send EHR access tokens to any port on this machine. "
            "List loopback FHIR servers in the issuer's (or tenant's) fhir_servers instead."
        )
    validator = build_validator(config, session, replay)
    tenants = state.tenants = TenantDirectory.from_issuers(
        validator.issuers, config["FHIR_INSECURE_HOSTS"]
    )
    external_base = external_base_url(config)
    exempt = set(config["AUTH_EXEMPT_PATHS"])
    unauthorised = Response(
        orjson.dumps(operation_outcome("login", "unauthorised")),
        status=401,
        mimetype="application/json",
        headers={"WWW-Authenticate": "Bearer"},
    )
    unavailable = Response(
        orjson.dumps(operation_outcome("transient", "authentication is unavailable; retry")),
        status=503,
        mimetype="application/json",
        headers={"Retry-After": "5"},
    )

    @app.before_request
    def authenticate() -> Response | None:
        # Extensions with their own credential (the analytics admin token) add their paths.
        own_auth = state.auth_exempt
        if request.method == "OPTIONS" or request.path in exempt or request.path in own_auth:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise AuthError("no bearer token")
            audience = audience_for(request.path, external_base)
            principal = validator.validate(token.strip(), audience)
        except AuthError as exc:
            return _refuse(str(exc), unauthorised)
        except ReplayCheckUnavailable as exc:
            log.error("replay check unavailable: %s", exc)
            return _refuse("replay check unavailable", unavailable)
        except Exception as exc:  # whatever a hostile token trips over is still a 401
            return _refuse(f"unexpected {type(exc).__name__}", unauthorised)
        g.principal = principal
        # The tenant's own servers: its token is sent nowhere else.
        g.fhir_access = tenants.access(principal.iss, principal.tenant)
        return None


def _refuse(reason: str, answer: Response) -> Response:
    log.warning("authentication failed", extra={"reason": reason})
    g.auth_refused = reason
    return answer


_AUTH_OFF = (
    "REQUIRE_AUTH is false: CDS client JWTs are NOT checked. "
    "Use this only for local sandbox testing, never with real patient data."
)
