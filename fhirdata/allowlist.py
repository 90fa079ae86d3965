"""Which FHIR servers may be sent a request (and so an access token).

A CDS client names its ``fhirServer`` in every request. A service that fetches whatever URL
it is handed is a server-side request forgery hole, and would hand the EHR's access token to
anyone, so the service reads only from servers on an allowlist (the authenticated issuer's,
or the deployment's), over https unless the host is loopback or explicitly allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


class FhirServerNotAllowed(Exception):
    """The request's fhirServer is not one this service may contact."""


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (host already lower-cased, no brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unsafe_path(path: str) -> bool:
    """True when ``path`` is anything but plain segments: a ``.`` or ``..`` segment, an empty
    one (``//``), any percent-escape, a ``;`` (path parameters), a backslash, white space or a
    control character.

    A prefix check on such a path means nothing: ``/tenantA/../tenantB`` starts with
    ``/tenantA/`` but the HTTP stack (or the server) resolves it to ``/tenantB``; the HTTP
    client decodes ``/tenantA/%74enantB``, nginx merges ``//`` and Java servers drop
    ``;x``, each reaching another tenant's base while the text still starts with this one's.
    """
    if any(c in path for c in "%;\\") or any(c.isspace() or ord(c) < 32 for c in path):
        return True
    segments = path.rstrip("/").split("/")[1:]
    return any(seg in ("", ".", "..") for seg in segments)


def normalise_base(url: str) -> str:
    """scheme://host[:port]/path without a trailing slash, scheme and host lower-cased."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc.lower()
    default_port = {"https": ":443", "http": ":80"}.get(parts.scheme.lower())
    if default_port and netloc.endswith(default_port):
        netloc = netloc[: -len(default_port)]
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class FhirServerPolicy:
    """Allowed base URLs (exact, or a parent path of the fhirServer) and plain-http hosts."""

    allowed: tuple[str, ...]
    insecure_hosts: tuple[str, ...] = ()
    any_loopback: bool = False  # local sandboxes: any FHIR server on this machine

    @classmethod
    def from_config(
        cls, allowed: Iterable[str], insecure_hosts: Iterable[str] = (), any_loopback: bool = False
    ) -> FhirServerPolicy:
        return cls(
            tuple(normalise_base(u) for u in allowed),
            tuple(h.lower() for h in insecure_hosts),
            any_loopback,
        )

    def check(self, fhir_server: str, extra_allowed: Iterable[str] = ()) -> str:
        """The normalised base URL if ``fhir_server`` may be contacted; else raise.

        ``extra_allowed`` are the authenticated client's own servers. Raises
        FhirServerNotAllowed with a message safe to show the client.
        """
        try:
            parts = urlsplit(fhir_server)
            host = (parts.hostname or "").lower()
        except ValueError as exc:
            raise FhirServerNotAllowed("fhirServer is not a valid URL") from exc
        if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
            raise FhirServerNotAllowed("fhirServer must be an http(s) URL without credentials")
        if parts.query or parts.fragment:
            raise FhirServerNotAllowed("fhirServer must be a base URL without query or fragment")
        if unsafe_path(parts.path):
            raise FhirServerNotAllowed(
                "fhirServer path must be plain segments: no '.', '..' or empty segments, "
                "percent-escapes, ';' or backslashes"
            )
        if parts.scheme == "http" and not (is_loopback(host) or host in self.insecure_hosts):
            raise FhirServerNotAllowed("fhirServer must use https")
        base = normalise_base(fhir_server)
        if self.any_loopback and is_loopback(host):
            return base
        for allowed in (*self.allowed, *(normalise_base(u) for u in extra_allowed)):
            if base == allowed or base.startswith(allowed + "/"):
                return base
        raise FhirServerNotAllowed("fhirServer is not on this service's allowlist")
