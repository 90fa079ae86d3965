"""Authenticating the CDS client: what a valid CDS Hooks JWT is, and every way one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.auth import load_trusted_issuers
from service.state import state_of
from tests.builders import T1DM, condition, hba1c, iport_device_request, patient
from tests.hooks import hook_request

ISS = "https://ehr.example.nhs.uk"
ROTATING_ISS = "https://rotating.example.nhs.uk"
JWKS_URL = "https://rotating.example.nhs.uk/.well-known/jwks.json"
FHIR = "https://fhir.example.nhs.uk/r4"
OTHER_TENANT_FHIR = "https://fhir.trust-y.example.nhs.uk/r4"
BASE = "http://localhost"
DISCOVERY = f"{BASE}/cds-services"
ORDER_SIGN = f"{BASE}/cds-services/iport-advance-order-sign"


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.ECAlgorithm if alg.startswith("ES") else jwt.algorithms.RSAAlgorithm
    jwk = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


KEY = ec_key()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROTATED_KEY = ec_key()


def token(
    *,
    key: Any = KEY,
    alg: str = "ES384",
    kid: str = "k1",
    aud: str = DISCOVERY,
    iss: str = ISS,
    iat: float | None = None,
    exp: float | None = None,
    jti: str | None = None,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = time.time()
    payload = {
        "iss": iss,
        "sub": "ehr-client-1",
        "aud": aud,
        "iat": int(iat if iat is not None else now),
        "exp": int(exp if exp is not None else now + 300),
        "jti": jti or str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(
        payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT", **(headers or {})}
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs384() -> str:
    """A token "signed" with HS384 using the issuer's *public* key as the HMAC secret.

    PyJWT will not create one, which is the point: an attacker builds it by hand.
    """
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS384", "typ": "JWT", "kid": "k1"}).encode())
    claims = {"iss": ISS, "sub": "x", "aud": DISCOVERY, "iat": now, "exp": now + 300,
              "jti": str(uuid.uuid4())}  # fmt: skip
    payload = _b64(json.dumps(claims).encode())
    secret = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha384).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def hand_signed(header: dict[str, Any]) -> str:
    """A validly signed ES384 token with header values PyJWT itself would refuse to write."""
    now = int(time.time())
    head = {"alg": "ES384", "typ": "JWT", "kid": "k1", **header}
    claims = {"iss": ISS, "sub": "x", "aud": DISCOVERY, "iat": now, "exp": now + 300,
              "jti": str(uuid.uuid4())}  # fmt: skip
    signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(claims).encode())}"
    es384 = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA384)
    return f"{signing_input}.{_b64(es384.sign(signing_input.encode(), KEY))}"


@pytest.fixture
def issuers_file(tmp_path: Path) -> Path:
    path = tmp_path / "trusted-issuers.json"
    path.write_text(
        json.dumps(
            [
                {
                    "iss": ISS,
                    "jwks": {
                        "keys": [public_jwk(KEY, "k1", "ES384"), public_jwk(RSA_KEY, "r1", "RS384")]
                    },
                    "fhir_servers": [FHIR],
                },
                {
                    "iss": ROTATING_ISS,
                    "jwks_url": JWKS_URL,
                    "tenants": {
                        "practice-b82005": {"fhir_servers": [FHIR]},
                        "practice-y01234": {"fhir_servers": [OTHER_TENANT_FHIR]},
                    },
                },
            ]
        )
    )
    return path


@pytest.fixture
def make_app(issuers_file: Path) -> Callable[..., Flask]:
    def build(**config: Any) -> Flask:
        return create_app(
            {
                "REQUIRE_AUTH": True,
                "TRUSTED_ISSUERS_FILE": str(issuers_file),
                "EXTERNAL_BASE_URL": BASE,
                **config,
            }
        )

    return build


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> Iterator[FlaskClient]:
    with make_app().test_client() as c:
        yield c


def get(client: FlaskClient, bearer: str | None) -> int:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return client.get("/cds-services", headers=headers).status_code


def test_a_valid_es384_token_is_accepted(client: FlaskClient) -> None:
    assert get(client, token()) == 200


def test_a_valid_rs384_token_is_accepted(client: FlaskClient) -> None:
    assert get(client, token(key=RSA_KEY, alg="RS384", kid="r1")) == 200


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: None, id="no token"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
        pytest.param(lambda: token(aud=f"{BASE}/cds-services/other"), id="aud is another URL"),
        pytest.param(lambda: token(iss="https://stranger.example"), id="untrusted iss"),
        pytest.param(lambda: token(exp=time.time() - 120), id="expired"),
        pytest.param(lambda: token(iat=time.time() + 600), id="iat in the future"),
        pytest.param(lambda: token(iat=time.time() - 3600, exp=time.time() + 60), id="too old"),
        pytest.param(lambda: token(kid="unknown"), id="unknown kid"),
        pytest.param(lambda: token(key=ec_key()), id="signed by another key"),
        pytest.param(
            lambda: token(key=ec.generate_private_key(ec.SECP256R1()), alg="ES256"), id="ES256 off"
        ),
        pytest.param(
            lambda: jwt.encode({"iss": ISS, "aud": DISCOVERY}, None, algorithm="none"),
            id="alg none",
        ),
        pytest.param(forged_hs384, id="HMAC with the public key (algorithm confusion)"),
        pytest.param(
            lambda: token(headers={"jku": "https://attacker.example/jwks.json"}),
            id="jku not allowlisted",
        ),
        pytest.param(lambda: token(headers={"jku": [JWKS_URL]}), id="jku a list"),
        pytest.param(lambda: token(headers={"jku": {"url": JWKS_URL}}), id="jku an object"),
        pytest.param(
            lambda: token(iss=ROTATING_ISS, tenant="practice-b82005", headers={"jku": [JWKS_URL]}),
            id="jku a list (issuer with a jwks_url)",
        ),
        pytest.param(lambda: hand_signed({"kid": ["k1"]}), id="kid a list"),
        pytest.param(lambda: hand_signed({"kid": {"id": "k1"}}), id="kid an object"),
        pytest.param(lambda: hand_signed({"kid": 1}), id="kid a number"),
        pytest.param(lambda: hand_signed({"alg": "RS384"}), id="RS384 header on the EC key"),
        pytest.param(lambda: hand_signed({"alg": "RS384", "kid": "r1"}), id="RS384, EC signature"),
        pytest.param(lambda: hand_signed({"alg": "ES384", "kid": "r1"}), id="ES384 on the RSA key"),
        pytest.param(lambda: hand_signed({"alg": ["ES384"]}), id="alg a list"),
        pytest.param(lambda: token(sub=None), id="sub null"),
        pytest.param(lambda: token(sub=""), id="empty sub"),
        pytest.param(lambda: token(jti="j" * 300), id="jti too long"),
        pytest.param(lambda: token(exp=time.time() + 3600), id="exp - iat beyond the max age"),
    ],
)
def test_refused_tokens_get_a_bare_401(client: FlaskClient, bad: Callable[[], str | None]) -> None:
    bearer = bad()
    resp = client.get(
        "/cds-services", headers={"Authorization": f"Bearer {bearer}"} if bearer else {}
    )
    assert resp.status_code == 401
    assert resp.json["issue"][0]["diagnostics"] == "unauthorised"  # no detail for the caller
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_a_replayed_jti_is_refused(client: FlaskClient) -> None:
    same = token(jti="once-only")
    assert get(client, same) == 200
    assert get(client, same) == 401


def test_a_replay_is_refused_by_another_app_on_the_same_database(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    """Token ids live in the database, so another worker or pod refuses the replay too."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    first, second = make_app(DATABASE_URL=url), make_app(DATABASE_URL=url)
    same = token(jti="seen-by-the-first-worker")
    assert get(first.test_client(), same) == 200
    assert get(second.test_client(), same) == 401


def test_a_replay_check_that_cannot_be_made_is_503_not_a_pass(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    db = tmp_path / "locked.sqlite3"
    app = make_app(DATABASE_URL=f"sqlite:///{db}")
    blocker = sqlite3.connect(str(db), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the database cannot take the token id now
        resp = app.test_client().get(
            "/cds-services", headers={"Authorization": f"Bearer {token()}"}
        )
    finally:
        blocker.close()
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert resp.json["issue"][0]["code"] == "transient"


def test_seen_token_ids_are_forgotten_once_their_tokens_could_not_be_accepted(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'tokens.sqlite3'}")
    s = state_of(app).store
    now = time.time()
    assert s.claim_token(ISS, "expired-long-ago", now - 5)
    s._next_token_purge = 0.0  # the next claim purges
    assert s.claim_token(ISS, "fresh", now + 60)
    with s.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM seen_token").scalar_one()
    assert rows == 1  # the fresh one; the expired one was deleted


def test_es256_is_accepted_when_configured(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    key256 = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "issuers256.json"
    path.write_text(
        json.dumps([{"iss": ISS, "jwks": {"keys": [public_jwk(key256, "e1", "ES256")]}}])
    )
    app = make_app(JWT_ALLOW_256=True, TRUSTED_ISSUERS_FILE=str(path))
    assert get(app.test_client(), token(key=key256, alg="ES256", kid="e1")) == 200


def test_aud_uses_the_external_base_url_behind_a_proxy(make_app: Callable[..., Flask]) -> None:
    app = make_app(EXTERNAL_BASE_URL="https://cds.example.nhs.uk/")
    c = app.test_client()
    assert get(c, token(aud="https://cds.example.nhs.uk/cds-services")) == 200
    assert get(c, token(aud=DISCOVERY)) == 401


def test_the_host_header_cannot_choose_the_audience(client: FlaskClient) -> None:
    """A token minted for another CDS service is refused, whatever Host the caller sends."""
    other = "https://other-cds.example.nhs.uk"
    resp = client.get(
        "/cds-services",
        base_url=other,
        headers={"Authorization": f"Bearer {token(aud=f'{other}/cds-services')}"},
    )
    assert resp.status_code == 401


@pytest.mark.parametrize("base", [None, "", "cds.example.nhs.uk", "ftp://cds.example.nhs.uk"])
def test_auth_on_without_an_external_base_url_fails_start_up(
    issuers_file: Path, base: str | None
) -> None:
    with pytest.raises(ValueError, match="EXTERNAL_BASE_URL"):
        create_app(
            {
                "REQUIRE_AUTH": True,
                "TRUSTED_ISSUERS_FILE": str(issuers_file),
                "EXTERNAL_BASE_URL": base,
            }
        )


@pytest.mark.parametrize(
    ("entry", "ok"),
    [
        ({"jwks_url": "http://ehr.example.nhs.uk/jwks.json"}, False),
        ({"jwks_url": "ftp://ehr.example.nhs.uk/jwks.json"}, False),
        ({"jwks_url": "https:///jwks.json"}, False),
        ({"jwks_url": 5}, False),
        ({"jwks_url": JWKS_URL, "allowed_jku": ["http://ehr.example.nhs.uk/jwks.json"]}, False),
        ({"jwks_url": JWKS_URL, "allowed_jku": "https://ehr.example.nhs.uk/jwks.json"}, False),
        ({"jwks_url": JWKS_URL, "allowed_jku": [7]}, False),
        ({"jwks_url": JWKS_URL, "allowed_jku": ["https://keys.example.nhs.uk/jwks.json"]}, True),
        ({"jwks_url": "http://localhost:8081/jwks.json"}, True),
        ({"jwks_url": "http://127.0.0.1:8081/jwks.json", "allowed_jku": ["http://[::1]/k"]}, True),
    ],
)
def test_jwk_set_urls_must_be_https_unless_loopback(
    tmp_path: Path, entry: dict[str, Any], ok: bool
) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": ISS, **entry}]))
    if ok:
        assert load_trusted_issuers(path)[ISS].iss == ISS
    else:
        with pytest.raises(ValueError, match=r"jwks_url|allowed_jku"):
            load_trusted_issuers(path)


@responses.activate
def test_jwks_url_is_fetched_cached_and_refetched_on_key_rotation(
    make_app: Callable[..., Flask],
) -> None:
    old = ec_key()
    responses.get(JWKS_URL, json={"keys": [public_jwk(old, "old", "ES384")]})
    c = make_app(JWKS_MIN_REFETCH_SECONDS=0).test_client()
    kw: dict[str, Any] = {"iss": ROTATING_ISS, "tenant": "practice-b82005"}
    assert get(c, token(key=old, kid="old", **kw)) == 200
    assert get(c, token(key=old, kid="old", **kw)) == 200
    assert len(responses.calls) == 1  # cached

    # The issuer rotates its key; the first token with the new kid triggers one refetch.
    responses.replace(
        responses.GET, JWKS_URL, json={"keys": [public_jwk(ROTATED_KEY, "new", "ES384")]}
    )
    assert get(c, token(key=ROTATED_KEY, kid="new", **kw)) == 200
    assert len(responses.calls) == 2


@responses.activate
@pytest.mark.parametrize("tenant", ["another-practice", None, ["practice-b82005"]])
def test_tenant_must_be_one_of_the_issuers(make_app: Callable[..., Flask], tenant: Any) -> None:
    responses.get(JWKS_URL, json={"keys": [public_jwk(ROTATED_KEY, "new", "ES384")]})
    c = make_app().test_client()
    claims = {} if tenant is None else {"tenant": tenant}
    assert get(c, token(key=ROTATED_KEY, kid="new", iss=ROTATING_ISS, **claims)) == 401


@responses.activate
def test_a_tenants_token_reaches_only_that_tenants_fhir_servers(
    make_app: Callable[..., Flask],
) -> None:
    """One integration engine signs for two trusts: practice-b82005's token naming the other
    trust's FHIR server is refused before anything is sent there."""
    responses.get(JWKS_URL, json={"keys": [public_jwk(ROTATED_KEY, "new", "ES384")]})
    c = make_app().test_client()
    body = hook_request(
        "order-sign",
        drafts=[iport_device_request()],
        fhir_server=OTHER_TENANT_FHIR,
        access_token="trust-b-token",
    )
    bearer = token(key=ROTATED_KEY, kid="new", iss=ROTATING_ISS, tenant="practice-b82005",
                   aud=ORDER_SIGN)  # fmt: skip
    resp = c.post(
        "/cds-services/iport-advance-order-sign",
        json=body,
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert resp.status_code == 412
    assert "allowlist" in resp.json["issue"][0]["diagnostics"]
    assert [call.request.url for call in responses.calls] == [JWKS_URL]  # nothing to FHIR


@pytest.mark.parametrize(
    "entry",
    [
        {"tenants": ["practice-b82005"], "fhir_servers": [FHIR]},
        {"tenants": {"t1": {"fhir_servers": [FHIR]}}, "fhir_servers": [FHIR]},
        {"tenants": {"t1": [FHIR]}},
        {"tenants": {"t1": {"fhir_servers": FHIR}}},
    ],
)
def test_tenants_must_each_have_their_own_fhir_servers(
    tmp_path: Path, entry: dict[str, Any]
) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": ISS, "jwks_url": JWKS_URL, **entry}]))
    with pytest.raises(ValueError, match=r"tenant|fhir_servers"):
        load_trusted_issuers(path)


def test_loopback_fhir_with_auth_on_refuses_to_start(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ValueError, match="FHIR_ALLOW_LOOPBACK"):
        make_app(FHIR_ALLOW_LOOPBACK=True)


@responses.activate
def test_jku_on_the_issuers_allowlist_is_used(make_app: Callable[..., Flask]) -> None:
    responses.get(JWKS_URL, json={"keys": [public_jwk(ROTATED_KEY, "new", "ES384")]})
    c = make_app().test_client()
    bearer = token(
        key=ROTATED_KEY,
        kid="new",
        iss=ROTATING_ISS,
        tenant="practice-b82005",
        headers={"jku": JWKS_URL},
    )
    assert get(c, bearer) == 200


def test_cors_preflight_needs_no_token(client: FlaskClient) -> None:
    resp = client.options(
        "/cds-services",
        headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "GET"},
    )
    assert resp.status_code == 200


def test_every_endpoint_requires_the_token(client: FlaskClient) -> None:
    body = hook_request("order-sign", drafts=[iport_device_request()])
    assert client.post("/cds-services/iport-advance-order-sign", json=body).status_code == 401
    assert (
        client.post(
            "/cds-services/iport-advance-order-sign/feedback", json={"feedback": []}
        ).status_code
        == 401
    )


@responses.activate
def test_fhir_server_must_be_on_the_authenticated_issuers_list(client: FlaskClient) -> None:
    body = hook_request(
        "order-sign",
        drafts=[iport_device_request()],
        fhir_server="https://other.example/fhir",
        access_token="tok",
    )
    resp = client.post(
        "/cds-services/iport-advance-order-sign",
        json=body,
        headers={"Authorization": f"Bearer {token(aud=ORDER_SIGN)}"},
    )
    assert resp.status_code == 412
    assert len(responses.calls) == 0  # no request went out, so the token went nowhere


def test_logs_of_a_full_cycle_hold_no_token_jwt_or_patient_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pid = "patient-9434765919"
    resources = [patient(pid=pid), condition(T1DM, pid=pid), hba1c(75, pid=pid)]
    body = hook_request(
        "order-sign", resources=resources, drafts=[iport_device_request(pid=pid)], patient_id=pid,
        fhir_server=FHIR, access_token="fhir-access-token-xyz",
    )  # fmt: skip
    bearer = token(aud=ORDER_SIGN)
    ok = client.post(
        "/cds-services/iport-advance-order-sign",
        json=body,
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert ok.status_code == 200, ok.json
    refused = client.get("/cds-services", headers={"Authorization": f"Bearer {bearer}x"})
    assert refused.status_code == 401
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "hook answered" in text
    assert "authentication failed" in text
    for secret in (bearer, bearer.split(".")[1], "fhir-access-token-xyz", pid):
        assert secret not in text


def test_auth_off_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    app = create_app({"REQUIRE_AUTH": False})
    app.test_client().get("/cds-services")
    warnings = [r for r in caplog.records if "NOT checked" in r.getMessage()]
    assert len(warnings) >= 2  # at start-up and on discovery


def test_auth_on_without_trusted_issuers_fails_start_up() -> None:
    with pytest.raises(ValueError, match="TRUSTED_ISSUERS_FILE"):
        create_app({"REQUIRE_AUTH": True, "TRUSTED_ISSUERS_FILE": None})


def test_the_dashboard_has_its_own_admin_token_not_the_cds_jwt(
    make_app: Callable[..., Flask],
) -> None:
    c = make_app(ANALYTICS_TOKEN="commissioner-secret").test_client()
    assert c.get("/analytics.json").status_code in (401, 403)  # neither JWT nor admin token
    ok = c.get("/analytics.json", headers={"Authorization": "Bearer commissioner-secret"})
    assert ok.status_code == 200
    assert (
        c.get("/cds-services", headers={"Authorization": "Bearer commissioner-secret"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    "jwk_changes",
    [{"use": "enc"}, {"alg": "ES256"}],
    ids=["an encryption key", "a key for another algorithm"],
)
def test_only_a_signing_key_made_for_the_headers_algorithm_is_used(
    make_app: Callable[..., Flask], tmp_path: Path, jwk_changes: dict[str, str]
) -> None:
    path = tmp_path / "issuers.json"
    jwk = {**public_jwk(KEY, "k1", "ES384"), **jwk_changes}
    path.write_text(json.dumps([{"iss": ISS, "jwks": {"keys": [jwk]}}]))
    app = make_app(TRUSTED_ISSUERS_FILE=str(path))
    assert get(app.test_client(), token()) == 401


SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JWKS = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


@responses.activate
def test_a_token_as_the_cds_hooks_sandbox_signs_it_is_accepted(tmp_path: Path) -> None:
    """The public CDS Hooks Sandbox signs exactly the claims CDS Hooks 2.0 defines: iss, aud,
    exp, iat, jti, and no ``sub``; its header names its JWK Set in ``jku``."""
    sandbox_key = ec_key()
    responses.get(SANDBOX_JWKS, json={"keys": [public_jwk(sandbox_key, "sandbox-kid", "ES384")]})
    path = tmp_path / "issuers.json"
    path.write_text(
        json.dumps([{"iss": SANDBOX_ISS, "jwks_url": SANDBOX_JWKS, "fhir_servers": [FHIR]}])
    )
    app = create_app(
        {"REQUIRE_AUTH": True, "TRUSTED_ISSUERS_FILE": str(path), "EXTERNAL_BASE_URL": BASE}
    )

    def sandbox_token(aud: str) -> str:
        now = int(time.time())
        claims = {"iss": SANDBOX_ISS, "aud": aud, "exp": now + 300, "iat": now,
                  "jti": str(uuid.uuid4())}  # fmt: skip
        headers = {"typ": "JWT", "kid": "sandbox-kid", "jku": SANDBOX_JWKS}
        return jwt.encode(claims, sandbox_key, algorithm="ES384", headers=headers)

    c = app.test_client()
    assert get(c, sandbox_token(DISCOVERY)) == 200
    feedback = c.post(
        "/cds-services/iport-advance-order-sign/feedback",
        json={"feedback": []},
        headers={"Authorization": f"Bearer {sandbox_token(ORDER_SIGN + '/feedback')}"},
    )
    assert feedback.status_code == 200
