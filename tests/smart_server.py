"""A local SMART on FHIR authorization server in front of a real FHIR server, built on Authlib.

It plays the EHR's part in a SMART App Launch 2.x: it serves ``{iss}/.well-known/
smart-configuration``, an authorization endpoint that approves at once (the test user is
signed in), a token endpoint (authorization code with PKCE S256, public clients), an id_token
with ``fhirUser``, and the FHIR API itself at ``{iss}`` as a proxy to the real FHIR server
that admits only the bearer tokens it issued, and enforces their scopes as an EHR would: a
read, search or write of a type the token was not granted (SMART v1 ``patient/X.read`` or v2
``patient/X.rs``), or a search answer that includes one, is 403 (``refused`` lists them).
It also answers the launch-context request the CDS Hooks Sandbox makes before it opens a
SMART link:

    POST {iss}/_services/smart/Launch  {"launchUrl": …, "parameters": {"patient": …}}
    → {"launch_id": …}

Used by tests/browser/test_review_app.py, and by integrators to launch the assessment app
from the Sandbox against a local FHIR server (docs/sandbox.md):

    .venv/bin/python -m tests.smart_server --fhir http://127.0.0.1:8081/fhir --port 9090
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, abort, jsonify, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "iport-cds-review"
USER = "Practitioner/demo-clinician"
TOKEN_SECONDS = 3600
_HOP_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection"}


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A registered public client: its id and where it may be redirected."""

    client_id: str
    redirect_uris: list[str]
    withheld: frozenset[str] = frozenset()  # scopes never granted to it

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s not in self.withheld)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris or not self.redirect_uris

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    context: dict[str, Any]
    expires: float = field(default_factory=lambda: time.time() + 300)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class SmartServer:
    """The authorization server and FHIR proxy; ``serve()`` runs it on a loopback port."""

    def __init__(
        self,
        fhir_base: str,
        port: int,
        standalone_patient: str | None = None,
        open_reads: bool = False,
        withheld: frozenset[str] = frozenset(),
        user: str = USER,
    ) -> None:
        """``withheld``: scopes asked for that it does not grant (an EHR whose registration
        of the app is narrower than what the app asks); its token answer names the rest.
        ``user``: the FHIR reference it signs everyone in as (its ``fhirUser``)."""
        self.user = user
        self.fhir_base = fhir_base.rstrip("/")
        self.base = f"http://127.0.0.1:{port}"
        self.iss = f"{self.base}/fhir"
        self.port = port
        self.standalone_patient = standalone_patient
        # The Sandbox reads the record itself without a token (as from an open FHIR server)
        # and calls from a browser page: open_reads allows token-less reads and searches
        # (GET, and POST to _search), and CORS.
        self.open_reads = open_reads
        self.client = Client(CLIENT_ID, [], withheld)  # any redirect URI: the app's host varies
        self.launches: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.presented: list[str] = []  # the bearer token of every FHIR request, in order
        self.interactions: list[str] = []  # "<v2 permission letter> <type>" of each request
        self.refused: list[str] = []  # those refused for the token's scopes
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.app = self._build()

    # -- the Flask app -------------------------------------------------------------------------
    def _build(self) -> Flask:
        app = Flask("smart_server")
        server = AuthorizationServer(app, query_client=self._query_client, save_token=self._save)
        server.register_grant(self._grant_class(), [CodeChallenge(required=True)])
        self._register_routes(app, server)
        return app

    def _query_client(self, client_id: str) -> Client | None:
        return self.client if client_id == CLIENT_ID else None

    def _save(self, token: dict[str, Any], req: Any) -> None:
        self.tokens[token["access_token"]] = {
            "expires": time.time() + TOKEN_SECONDS,
            "scope": str(token.get("scope") or ""),
        }

    def _grant_class(self) -> type[grants.AuthorizationCodeGrant]:
        outer = self

        class Grant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (Authlib's own attribute)

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                if data.get("aud", "").rstrip("/") != outer.iss:
                    abort(400, "aud must be this FHIR server")
                outer.codes[code] = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.scope,  # what is granted: the client's allowed part of what was asked
                    data.get("code_challenge"),
                    data.get("code_challenge_method"),
                    outer.launch_context(data.get("launch"), req.scope),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = outer.codes.get(code)
                if found and found.client_id == client.client_id and found.expires > time.time():
                    return found
                return None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                outer.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> str:
                return outer.user

            def create_token_response(self) -> tuple[int, dict[str, Any], Any]:
                status, token, headers = super().create_token_response()
                code: Code = self.request.authorization_code
                token.update(code.context)
                if "openid" in code.scope.split():
                    token["id_token"] = outer.id_token()
                return status, token, headers

        return Grant

    def launch_context(self, launch: str | None, scope: str) -> dict[str, Any]:
        scopes = scope.split()
        if launch and "launch" in scopes:
            params = self.launches.get(launch)
            if params is None:
                abort(400, "unknown launch")
            return {k: v for k, v in params.items() if k in ("patient", "appContext", "encounter")}
        if "launch/patient" not in scopes or not self.standalone_patient:
            abort(400, "no launch context")
        return {"patient": self.standalone_patient}

    def id_token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.base,
            "sub": self.user.rsplit("/", 1)[-1],
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + TOKEN_SECONDS,
            "fhirUser": f"{self.iss}/{self.user}",
        }
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)

    def _register_routes(self, app: Flask, server: AuthorizationServer) -> None:
        @app.get("/fhir/.well-known/smart-configuration")
        def smart_configuration() -> Response:
            return jsonify(
                {
                    "issuer": self.base,
                    "authorization_endpoint": f"{self.base}/auth/authorize",
                    "token_endpoint": f"{self.base}/auth/token",
                    "jwks_uri": f"{self.base}/auth/jwks",
                    "grant_types_supported": ["authorization_code"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["none"],
                    "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient"],
                    "response_types_supported": ["code"],
                    "capabilities": [
                        "launch-ehr",
                        "launch-standalone",
                        "client-public",
                        "context-ehr-patient",
                        "context-standalone-patient",
                        "sso-openid-connect",
                        "permission-patient",
                        "permission-v2",
                    ],
                }
            )

        @app.post("/fhir/_services/smart/Launch")
        def launch() -> Response:
            body = request.get_json(silent=True) or {}
            params = body.get("parameters")
            if not isinstance(params, dict) or not isinstance(params.get("patient"), str):
                abort(400, "parameters.patient is required")
            launch_id = secrets.token_urlsafe(16)
            self.launches[launch_id] = params
            return jsonify({"launch_id": launch_id})

        @app.get("/auth/authorize")
        def authorize() -> Response:
            grant = server.get_consent_grant(end_user=self.user)  # the test user approves at once
            resp: Response = server.create_authorization_response(grant_user=self.user, grant=grant)
            return resp

        @app.post("/auth/token")
        def token() -> Response:
            resp: Response = server.create_token_response()
            return resp

        @app.get("/auth/jwks")
        def jwks() -> Response:
            return jsonify({"keys": [self.key.as_dict(private=False)]})

        @app.after_request
        def cors(resp: Response) -> Response:
            if self.open_reads:
                resp.headers["Access-Control-Allow-Origin"] = "*"
                resp.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
                resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
            return resp

        @app.route("/fhir/<path:rest>", methods=["GET", "POST", "PUT"])
        def fhir(rest: str) -> Response:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            self.presented.append(token)
            issued = self.tokens.get(token)
            token_ok = scheme.lower() == "bearer" and issued and issued["expires"] > time.time()
            # The Sandbox searches by POST {type}/_search first (form-encoded), GET after.
            is_read = request.method == "GET" or (
                request.method == "POST" and rest.endswith("/_search")
            )
            open_read = self.open_reads and is_read and not header
            if not (token_ok or open_read):
                return Response(status=401, headers={"WWW-Authenticate": "Bearer"})
            scope = issued["scope"] if token_ok and issued else None
            wanted = _interaction(request.method, rest)
            if wanted:
                self.interactions.append(" ".join(wanted))
            if scope is not None and wanted and not _permitted(scope, *wanted, rest, self.user):
                return self._refuse(*wanted)
            upstream = requests.request(
                request.method,
                f"{self.fhir_base}/{rest}",
                params=request.args,
                data=request.get_data(),
                headers={
                    k: v
                    for k, v in request.headers.items()
                    if k in ("Accept", "Content-Type", "If-None-Exist", "If-Match")
                },
                timeout=10,
                allow_redirects=False,
            )
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
            if scope is not None and wanted and wanted[0] == "s":
                for included in _entry_types(upstream):
                    if not _permitted(scope, "r", included, "", self.user):
                        return self._refuse("r", included)
            return Response(upstream.content, status=upstream.status_code, headers=headers)

    def _refuse(self, interaction: str, resource_type: str) -> Response:
        self.refused.append(f"{interaction} {resource_type}")
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "forbidden",
                    "diagnostics": f"the token's scopes do not allow {resource_type}",
                }
            ],
        }
        return Response(json.dumps(outcome), status=403, mimetype="application/fhir+json")

    # -- running ---------------------------------------------------------------------------------
    @contextmanager
    def serve(self) -> Iterator[SmartServer]:
        httpd = make_server("127.0.0.1", self.port, self.app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(10)


_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def _interaction(method: str, rest: str) -> tuple[str, str] | None:
    """(SMART v2 permission letter, resource type) of a FHIR request; None for ``metadata``
    and other requests no resource scope governs."""
    parts = rest.strip("/").split("/")
    resource_type = parts[0]
    if not resource_type[:1].isupper():
        return None
    if method == "GET":
        return ("r" if len(parts) > 1 else "s"), resource_type
    if method == "POST":
        return ("s" if parts[-1] == "_search" else "c"), resource_type
    return "u", resource_type


def _permitted(scope: str, letter: str, resource_type: str, rest: str, user: str) -> bool:
    """Whether ``scope`` grants ``letter`` on ``resource_type``. ``fhirUser`` lets the user's
    own resource be read (SMART: information about the current logged-in user)."""
    granted = scope.split()
    if letter == "r" and "fhirUser" in granted and rest.strip("/") == user:
        return True
    for one in granted:
        context, _, rule = one.partition("/")
        kind, _, permissions = rule.partition(".")
        if context not in ("patient", "user", "system") or kind not in (resource_type, "*"):
            continue
        if letter in _V1.get(permissions, permissions.partition("?")[0]):
            return True
    return False


def _entry_types(resp: requests.Response) -> set[str]:
    try:
        bundle = resp.json()
    except ValueError:
        return set()
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return set()
    return {
        str(e["resource"].get("resourceType"))
        for e in bundle.get("entry") or ()
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    } - {"OperationOutcome"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fhir", required=True, help="base URL of the FHIR server to front")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--patient", help="patient for a standalone launch")
    parser.add_argument(
        "--open-reads",
        action="store_true",
        help="also answer FHIR reads without a token, with CORS (for the CDS Hooks Sandbox)",
    )
    args = parser.parse_args()
    smart = SmartServer(args.fhir, args.port, args.patient, args.open_reads)
    print(f"SMART FHIR base (iss): {smart.iss}", flush=True)
    smart.app.run("127.0.0.1", args.port, threaded=True)


if __name__ == "__main__":
    main()
