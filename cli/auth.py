"""The CDS client's JWT (CDS Hooks 2.0 "Trusting CDS Clients"): ES384, signed per request.

Claims: ``iss`` (the client), ``sub`` (its client id, here the same), ``aud`` (the exact URL
called), ``iat``, ``exp = iat + 300`` and a fresh ``jti``, and ``tenant`` when given (a
client that signs for several organisations); header ``kid`` (and ``jku`` when given). Tokens
are never printed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from cli.errors import EXIT_USAGE, CliError

LIFETIME_S = 300


@dataclass(frozen=True)
class ClientSigner:
    key: ec.EllipticCurvePrivateKey
    iss: str
    kid: str
    jku: str | None = None
    tenant: str | None = None

    def token(self, aud: str, now: float | None = None) -> str:
        iat = int(time.time() if now is None else now)
        headers = {"kid": self.kid, "typ": "JWT"}
        if self.jku:
            headers["jku"] = self.jku
        claims = {
            "iss": self.iss,
            "sub": self.iss,
            "aud": aud,
            "iat": iat,
            "exp": iat + LIFETIME_S,
            "jti": str(uuid.uuid4()),
        }
        if self.tenant:
            claims["tenant"] = self.tenant
        return jwt.encode(claims, self.key, algorithm="ES384", headers=headers)

    def header(self, aud: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(aud)}"}


def load_signer(
    key_file: str, iss: str, kid: str, jku: str | None = None, tenant: str | None = None
) -> ClientSigner:
    """An ES384 signer from a PEM private key (P-384); a bad key is a usage error."""
    path = Path(key_file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(
            f"--jwt-key {path}: cannot read ({exc.strerror or exc})", EXIT_USAGE
        ) from exc
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CliError(f"--jwt-key {path}: not an unencrypted PEM private key", EXIT_USAGE) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp384r1":
        raise CliError(
            f"--jwt-key {path}: ES384 needs an EC P-384 (secp384r1) private key", EXIT_USAGE
        )
    if not iss.strip() or not kid.strip():
        raise CliError("--jwt-iss and --jwt-kid must not be empty", EXIT_USAGE)
    if tenant is not None and not tenant.strip():
        raise CliError("--jwt-tenant must not be empty", EXIT_USAGE)
    return ClientSigner(key, iss, kid, jku, tenant)
