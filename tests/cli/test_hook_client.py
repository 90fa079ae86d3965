"""``hook`` as a CDS client, against a stand-in service that records what it is sent.

``--jwt-key/--jwt-iss/--jwt-kid``: each request carries a fresh ES384 JWT whose ``aud`` is the
exact URL called; without the options no Authorization header is sent at all. Prefetch is
filled as an EHR would, leaving out what it cannot fill."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import demo
from tests.cli.conftest import Run, one_line_error
from tests.fhir_server import FhirTestServer
from tests.service_process import ServiceProcess, free_port

Cli = Callable[..., Run]
ISS = "https://ehr.example.nhs.uk/cds-client"
KID = "cli-test-key-1"


def pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def key_file(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> Path:
    f = tmp_path / "client.pem"
    f.write_bytes(pem(ec_key))
    return f


class _Recorder:
    """A stand-in CDS service that records what the client sends."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.bodies: list[dict[str, Any]] = []
        self.discovery: dict[str, Any] = {
            "services": [{"id": "svc-1", "hook": "order-sign", "prefetch": {}}]
        }
        # POST path -> (status, body); any other path answers 200 with no cards
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}


@pytest.fixture
def stub_service() -> Iterator[tuple[str, _Recorder]]:
    rec = _Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            rec.requests.append(("GET", self.path, self.headers.get("Authorization")))
            self._answer(rec.discovery)

        def do_POST(self) -> None:
            rec.requests.append(("POST", self.path, self.headers.get("Authorization")))
            rec.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status, body = rec.answers.get(self.path, (200, {"cards": []}))
            self._answer(body, status)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def hook_argv(service: str, *extra: str) -> list[str]:
    return [
        "hook", "order-sign", "--service", service, "--fhir-server", "http://127.0.0.1:9/fhir",
        "--patient", "p-1", *extra,
    ]  # fmt: skip


def test_every_request_carries_a_fresh_es384_jwt_for_the_exact_url(
    cli: Cli,
    stub_service: tuple[str, _Recorder],
    key_file: Path,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    url, rec = stub_service
    argv = hook_argv(url, "--jwt-key", str(key_file), "--jwt-iss", ISS, "--jwt-kid", KID)
    run = cli(*argv)
    assert run.code == 0, run.err
    assert [(m, p) for m, p, _ in rec.requests] == [
        ("GET", "/cds-services"),
        ("POST", "/cds-services/svc-1"),
    ]
    jtis = set()
    for (_, _path, auth), expected_aud in zip(
        rec.requests, [f"{url}/cds-services", f"{url}/cds-services/svc-1"], strict=True
    ):
        assert auth is not None
        scheme, token = auth.split(" ")
        assert scheme == "Bearer"
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "ES384"
        assert header["kid"] == KID
        assert header["typ"] == "JWT"
        claims = jwt.decode(
            token, ec_key.public_key(), algorithms=["ES384"], audience=expected_aud, issuer=ISS
        )
        assert claims["exp"] - claims["iat"] == 300
        assert set(claims) == {"iss", "sub", "aud", "iat", "exp", "jti"}
        jtis.add(claims["jti"])
        assert token not in run.out + run.err  # never printed
    assert len(jtis) == 2
    body = rec.bodies[0]
    assert body["hook"] == "order-sign"
    assert body["context"]["patientId"] == "p-1"
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert draft["status"] == "draft"
    assert "prefetch" not in body  # without --prefetch the service fetches for itself
    assert run.out.startswith("No cards")


def test_jku_goes_in_the_header(
    cli: Cli, stub_service: tuple[str, _Recorder], key_file: Path
) -> None:
    url, rec = stub_service
    jku = "https://ehr.example.nhs.uk/.well-known/jwks.json"
    argv = hook_argv(url, "--jwt-key", str(key_file), "--jwt-iss", ISS, "--jwt-kid", KID)
    assert cli(*argv, "--jwt-jku", jku).code == 0
    token = str(rec.requests[0][2]).split(" ")[1]
    assert jwt.get_unverified_header(token)["jku"] == jku


def test_the_tenant_goes_in_the_claims(
    cli: Cli, stub_service: tuple[str, _Recorder], key_file: Path
) -> None:
    url, rec = stub_service
    argv = hook_argv(url, "--jwt-key", str(key_file), "--jwt-iss", ISS, "--jwt-kid", KID)
    assert cli(*argv, "--jwt-tenant", "trust-a").code == 0
    token = str(rec.requests[0][2]).split(" ")[1]
    assert jwt.decode(token, options={"verify_signature": False})["tenant"] == "trust-a"
    assert cli(*hook_argv(url), "--jwt-tenant", "trust-a").code == 2  # needs a key


def test_without_options_no_authorization_header(
    cli: Cli, stub_service: tuple[str, _Recorder]
) -> None:
    url, rec = stub_service
    assert cli(*hook_argv(url)).code == 0
    assert [auth for _, _, auth in rec.requests] == [None, None]


def test_bad_key_options(cli: Cli, stub_service: tuple[str, _Recorder], tmp_path: Path) -> None:
    url, rec = stub_service
    rsa_file = tmp_path / "rsa.pem"
    rsa_file.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    p256_file = tmp_path / "p256.pem"
    p256_file.write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    cases = [
        (["--jwt-key", str(rsa_file), "--jwt-iss", ISS, "--jwt-kid", KID], "EC P-384"),
        (["--jwt-key", str(p256_file), "--jwt-iss", ISS, "--jwt-kid", KID], "EC P-384"),
        (["--jwt-key", str(junk), "--jwt-iss", ISS, "--jwt-kid", KID], "not an unencrypted PEM"),
        (
            ["--jwt-key", str(tmp_path / "none.pem"), "--jwt-iss", ISS, "--jwt-kid", KID],
            "cannot read",
        ),
        (["--jwt-key", str(junk), "--jwt-iss", ISS], "go together: give all three"),
        (["--jwt-iss", ISS, "--jwt-kid", KID], "go together: give all three"),
    ]
    for extra, message in cases:
        run = cli(*hook_argv(url, *extra))
        assert run.code == 2, extra
        assert message in one_line_error(run)
    assert rec.requests == []  # nothing is sent with a bad key


@pytest.mark.integration
def test_the_real_service_accepts_the_cli_jwt(
    cli: Cli,
    demo_fhir: FhirTestServer,
    tmp_path: Path,
    key_file: Path,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    issuers = tmp_path / "issuers.json"
    issuers.write_text(
        json.dumps(
            [
                {
                    "iss": ISS,
                    "jwks": {"keys": [{**public, "kid": KID, "alg": "ES384", "use": "sig"}]},
                    "fhir_servers": [demo_fhir.base_url],
                }
            ]
        )
    )
    port = free_port()
    env = {
        "REQUIRE_AUTH": "true",
        "TRUSTED_ISSUERS_FILE": str(issuers),
        "EXTERNAL_BASE_URL": f"http://127.0.0.1:{port}",  # the URL the CLI calls, so its aud
    }
    p = demo.get_patient("t1-mdi-needle-phobia")
    with ServiceProcess(env, port=port) as svc:
        base = [
            "--service",
            svc.url,
            "--fhir-server",
            demo_fhir.base_url,
            "--patient",
            p.patient_id,
        ]
        run = cli("hook", "order-sign", *base)
        assert run.code == 1
        assert "the service requires a signed JWT: pass --jwt-key" in one_line_error(run)
        jwt_opts = ["--jwt-key", str(key_file), "--jwt-iss", ISS, "--jwt-kid", KID]
        run = cli("hook", "order-sign", *base, *jwt_opts, "--json")
        assert run.code == 0, run.err
        card = json.loads(run.out)["iport-advance-order-sign"]["cards"][0]
        assert (
            card["extension"]["iport-cds.eligibility"]["outcome"]
            == p.expected["iport-advance"].outcome
        )
        run = cli(
            "hook",
            "order-sign",
            *base,
            "--jwt-key",
            str(key_file),
            "--jwt-iss",
            "https://other",
            "--jwt-kid",
            KID,
        )
        assert run.code == 1
        assert "the service did not accept the JWT" in one_line_error(run)
        log = svc.log
    # An issuer that signs for several tenants: the token must name one.
    issuers.write_text(
        json.dumps(
            [
                {
                    "iss": ISS,
                    "jwks": {"keys": [{**public, "kid": KID, "alg": "ES384", "use": "sig"}]},
                    "tenants": {"trust-a": {"fhir_servers": [demo_fhir.base_url]}},
                }
            ]
        )
    )
    with ServiceProcess(env, port=port) as svc:
        run = cli("hook", "order-sign", *base, *jwt_opts)
        assert run.code == 1
        assert "the service did not accept the JWT" in one_line_error(run)
        run = cli("hook", "order-sign", *base, *jwt_opts, "--jwt-tenant", "trust-a", "--json")
        assert run.code == 0, run.err
        log += svc.log
    assert "Bearer" not in log
    assert p.patient_id not in log


@pytest.mark.integration
def test_prefetch_leaves_out_what_it_cannot_fill(
    cli: Cli, stub_service: tuple[str, _Recorder], demo_fhir: FhirTestServer
) -> None:
    url, rec = stub_service
    pid = demo.get_patient("no-diabetes").patient_id
    rec.discovery = {
        "services": [
            {
                "id": "svc-1",
                "hook": "order-sign",
                "prefetch": {
                    "patient": "Patient/{{context.patientId}}",
                    "conditions": "Condition?patient={{context.patientId}}",
                    "encounter": "Encounter/{{context.encounterId}}",
                    "broken": "NoSuchType?patient={{context.patientId}}",
                },
            }
        ]
    }
    argv = ["hook", "order-sign", "--service", url, "--fhir-server", demo_fhir.base_url]
    run = cli(*argv, "--patient", pid, "--prefetch")
    assert run.code == 0, run.err
    prefetch = rec.bodies[0]["prefetch"]
    assert set(prefetch) == {"patient", "conditions"}
    assert prefetch["patient"]["id"] == pid
    assert prefetch["conditions"]["resourceType"] == "Bundle"
    assert "prefetch 'encounter': left for the service (token not supported here)" in run.err
    assert "prefetch 'broken': HTTP 4" in run.err
    assert "prefetch: 2 of 4 template(s) filled" in run.err


def _outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


PATIENT_VIEW_SERVICES = {
    "services": [
        {"id": "svc-a", "hook": "patient-view", "prefetch": {}},
        {"id": "svc-b", "hook": "patient-view", "prefetch": {}},
        {"id": "svc-c", "hook": "patient-view", "prefetch": {}},
    ]
}
CARD = {"summary": "svc-b speaks", "indicator": "info", "source": {"label": "B"}}


def test_every_service_of_the_hook_is_called_when_one_fails(
    cli: Cli, stub_service: tuple[str, _Recorder]
) -> None:
    """An EHR calls every service of a hook: the first one's 412 does not hide the others'
    answers. Each service's result or error is shown; the exit status says one failed."""
    url, rec = stub_service
    rec.discovery = PATIENT_VIEW_SERVICES
    rec.answers = {
        "/cds-services/svc-a": (412, _outcome("no Patient/p-1 on the FHIR server")),
        "/cds-services/svc-b": (200, {"cards": [CARD]}),
        "/cds-services/svc-c": (500, _outcome("it broke")),
    }
    argv = hook_argv(url)
    argv[1] = "patient-view"
    run = cli(*argv)
    assert [p for m, p, _ in rec.requests if m == "POST"] == [
        "/cds-services/svc-a",
        "/cds-services/svc-b",
        "/cds-services/svc-c",
    ]
    assert run.code == 1
    assert "svc-b speaks" in run.out  # the service that answered is shown
    assert "svc-a: failed: 'svc-a' answered the patient-view hook with HTTP 412" in run.err
    assert "no Patient/p-1 on the FHIR server" in run.err
    assert "svc-b: HTTP 200" in run.err
    assert "svc-c: failed: 'svc-c' answered the patient-view hook with HTTP 500" in run.err
    last = one_line_error(run)
    assert "2 of 3 patient-view service(s) failed" in last
    assert "'svc-a'" in last
    assert "'svc-c'" in last
    assert "'svc-b'" not in last


def test_json_shows_each_service_answer_or_error(
    cli: Cli, stub_service: tuple[str, _Recorder]
) -> None:
    url, rec = stub_service
    rec.discovery = PATIENT_VIEW_SERVICES
    rec.answers = {"/cds-services/svc-b": (412, _outcome("no record"))}
    argv = hook_argv(url, "--json")
    argv[1] = "patient-view"
    run = cli(*argv)
    assert run.code == 1
    shown = json.loads(run.out)
    assert list(shown) == ["svc-a", "svc-c", "svc-b"]
    assert shown["svc-a"] == shown["svc-c"] == {"cards": []}
    assert "HTTP 412" in shown["svc-b"]["error"]


def test_all_services_answering_exits_zero(cli: Cli, stub_service: tuple[str, _Recorder]) -> None:
    url, rec = stub_service
    rec.discovery = PATIENT_VIEW_SERVICES
    argv = hook_argv(url)
    argv[1] = "patient-view"
    run = cli(*argv)
    assert run.code == 0, run.err
    assert len([m for m, _, _ in rec.requests if m == "POST"]) == 3
    assert run.out.startswith("No cards: patient-view speaks only when")
