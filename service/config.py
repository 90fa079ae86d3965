"""Configuration: defaults, then an optional JSON file, then IPORT_CDS_* environment variables.

Read once in ``create_app`` (and by the command line, ``read_settings``); every setting is
documented in the README.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flask import Config, Flask

from policy.decide import Core, load_core
from policy.loading import policy_names

ENV_PREFIX = "IPORT_CDS"

DEFAULTS: dict[str, Any] = {
    # HTTP
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,  # bytes; larger request bodies get 413
    "EXTERNAL_BASE_URL": None,  # e.g. https://cds.example.nhs.uk when behind a proxy
    "CORS_ORIGINS": "*",
    # Proxies in front (an ingress) whose X-Forwarded-For is believed; 0: the header is ignored
    "TRUSTED_PROXY_HOPS": 0,
    # Authentication of the CDS client (CDS Hooks 2.0 JWT)
    "REQUIRE_AUTH": True,
    # JSON list of {iss, jwks_url | jwks, allowed_jku, fhir_servers | tenants: {id: {fhir_servers}}}
    "TRUSTED_ISSUERS_FILE": None,
    "JWT_ALLOW_256": False,  # also accept ES256/RS256 (ES384/RS384 always)
    "JWT_LEEWAY_SECONDS": 30,
    "JWT_MAX_AGE_SECONDS": 600,
    "JWKS_CACHE_SECONDS": 3600,
    "JWKS_TIMEOUT_SECONDS": 2.0,
    "JWKS_MIN_REFETCH_SECONDS": 30,  # an unknown kid refetches the JWK Set at most this often
    "AUTH_EXEMPT_PATHS": ["/healthz", "/readyz", "/metrics"],
    # Calls refused (401) per client (address and the issuer its token names) per worker: a
    # burst, then this many a minute; past them 429 with Retry-After (service/refusals.py)
    "REFUSED_CALLS_BURST": 20,
    "REFUSED_CALLS_PER_MINUTE": 60,
    # FHIR access
    "FHIR_SERVER_ALLOWLIST": [],  # with auth off: base URLs the service may read from
    "FHIR_INSECURE_HOSTS": [],  # hosts allowed over plain http besides loopback
    "FHIR_ALLOW_LOOPBACK": False,  # any FHIR server on this machine (local sandboxes)
    "FHIR_DEADLINE_SECONDS": 4.0,
    "FHIR_CONNECT_TIMEOUT_SECONDS": 1.0,
    "FHIR_READ_TIMEOUT_SECONDS": 3.0,
    "FHIR_POOL_SIZE": 16,  # per FHIR server (origin) per worker: connections and reads at once
    "FHIR_SERVER_HOOKS_MAX": None,  # per worker per FHIR server; None: HOOKS_IN_FLIGHT_MAX - 2
    "FHIR_MAX_PAGES": 10,
    # Byte budgets of FHIR answers, enforced while reading (past one: 412 naming it)
    "FHIR_RESPONSE_MAX_BYTES": 4 * 1024 * 1024,  # one answer, decompressed
    "FHIR_RESPONSE_MAX_COMPRESSED_BYTES": 4 * 1024 * 1024,  # one answer, as sent
    "FHIR_HOOK_MAX_BYTES": 8 * 1024 * 1024,  # all answers of one hook, decompressed
    "FHIR_HOOK_MAX_COMPRESSED_BYTES": 8 * 1024 * 1024,  # all answers of one hook, as sent
    # Per FHIR server per worker: after this many reads in a row without an answer, hooks
    # needing it are answered 412 at once for the cool-off, then one is let through. 0: off.
    "FHIR_BREAKER_FAILURES": 3,
    "FHIR_BREAKER_COOL_OFF_SECONDS": 30.0,
    "FHIR_FETCH_MODE": "parallel",  # or "batch"
    # Policy and value sets
    # The folder of policy files; None: the shipped policy/policies/
    "POLICY_DIR": None,
    # Names of files in POLICY_DIR (or paths); None: every policy file there, in the order
    # the files declare (metadata.listOrder)
    "POLICIES": None,
    "POLICY_PARAMETERS": {},  # overrides of parameters, applied to each policy that has them
    # patient-view: one card per patient (the technology first in the policies' precedence
    # speaks, naming the others); false: every service speaks for itself
    "PATIENT_VIEW_ONE_CARD": True,
    # None: as each policy file's services say; or "when-met" / "when-met-or-one-judgement-away"
    # for every patient-view service that speaks only when met
    "PATIENT_VIEW_SPEAKS": None,
    "VALUESET_EXTRA_DIR": None,
    # Operations
    "LOG_LEVEL": "INFO",
    # A request body must arrive within this, in all; slower is 408 (slow-upload clients)
    "BODY_READ_SECONDS": 10.0,
    "HOOKS_IN_FLIGHT_MAX": None,  # per worker; None: THREADS - 2 (probes keep a free thread)
    # Audit trail, feedback and the commissioners' dashboard (dashboard/, store/)
    "DATABASE_URL": None,  # None: SQLite in the instance folder; else postgresql://...
    "AUDIT_HASH_KEY": None,  # HMAC key for patient ids; None: generated in the instance folder
    "AUDIT_RETENTION_DAYS": 365,  # audit records and feedback older than this are deleted
    # Keep the text of feedback comments (free text, may name a patient), capped at 500
    # characters; off: only that a comment was given and its length (stored texts deleted)
    "FEEDBACK_STORE_COMMENTS": False,
    "ANALYTICS_TOKEN": None,  # admin bearer token for /analytics; None: open only without auth
    # Counts 1 to SMALL_NUMBER_THRESHOLD - 1 on the dashboard and in the uptake-gap report are
    # suppressed, others rounded to the nearest 5 (disclosure/); 0: exact, for local audit only
    "SMALL_NUMBER_THRESHOLD": 8,
    # Place of each evaluation (places/): a CSV of practice_code,place, and tenant -> place
    "PLACE_BY_PRACTICE_FILE": None,
    "PLACE_BY_TENANT": {},
}


def load_config(app: Flask, overrides: Mapping[str, Any] | None = None) -> None:
    """Defaults < IPORT_CDS_CONFIG_FILE (JSON) < IPORT_CDS_* environment < ``overrides``."""
    app.config.update(read_settings(overrides, app.root_path))


def read_settings(overrides: Mapping[str, Any] | None = None, root: str = ".") -> Config:
    """The deployment's settings without an app (the command line reads them too)."""
    config = Config(root)
    config.update(DEFAULTS)
    config_file = os.environ.get(f"{ENV_PREFIX}_CONFIG_FILE")
    if config_file:
        from_file = json.loads(Path(config_file).read_text(encoding="utf-8"))
        config.update(_paths_beside(from_file, Path(config_file).parent))
    config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        config.update(overrides)
    if config.get("POLICIES") is None:
        config["POLICIES"] = policy_names(config.get("POLICY_DIR"))
    return config


def _paths_beside(settings: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """A config file's relative ``*_FILE`` / ``*_DIR`` settings, resolved against the file's
    own folder: the file works from any working directory."""
    out = dict(settings)
    for key, value in settings.items():
        relative = isinstance(value, str) and value and not Path(value).is_absolute()
        if key.endswith(("_FILE", "_DIR")) and relative:
            out[key] = str((folder / value).resolve())
    return out


def core_from_config(config: Mapping[str, Any], extra_dirs: Sequence[str] = ()) -> Core:
    """The start-up assembly (``policy.decide.load_core``) from the settings POLICY_DIR,
    POLICIES, POLICY_PARAMETERS and VALUESET_EXTRA_DIR (plus ``extra_dirs``); every caller
    starts here."""
    names = config.get("POLICIES")
    folder = config.get("POLICY_DIR")
    return load_core(
        policy_names(folder) if names is None else names,
        config.get("POLICY_PARAMETERS") or {},
        valueset_dirs(config, extra_dirs),
        folder,
    )


def valueset_dirs(config: Mapping[str, Any], extra_dirs: Sequence[str] = ()) -> list[str]:
    extra = config.get("VALUESET_EXTRA_DIR")
    return [*([str(extra)] if extra else []), *extra_dirs]
