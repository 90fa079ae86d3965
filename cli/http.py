"""HTTP for the CLI: every failure becomes a one-line CliError that names the server, never
a traceback, a token or a query string (which may hold a patient id)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from cli.errors import EXIT_USAGE, CliError

FHIR_JSON = "application/fhir+json"
USER_AGENT = "iport-cds-cli"


def check_base_url(url: str, option: str) -> str:
    """An http(s) base URL without a trailing slash, or a usage error naming the option."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"{option} must be an http:// or https:// URL, not {url!r}", EXIT_USAGE)
    return url.strip().rstrip("/")


def shown(url: str) -> str:
    """The URL as printed in messages: scheme, host and path only."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, p.path, "", ""))


def new_session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def send(
    session: requests.Session,
    method: str,
    url: str,
    what: str,
    *,
    timeout: float,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; connection problems and timeouts raise CliError naming ``what``."""
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.exceptions.Timeout as exc:
        raise CliError(f"{what} at {shown(url)} did not answer within {timeout:g} s") from exc
    except requests.exceptions.ConnectionError as exc:
        raise CliError(f"cannot connect to {what} at {shown(url)} (is it running?)") from exc
    except requests.exceptions.RequestException as exc:
        raise CliError(f"request to {what} at {shown(url)} failed: {type(exc).__name__}") from exc


def json_body(resp: requests.Response, what: str) -> Any:
    try:
        return resp.json()
    except ValueError as exc:
        raise CliError(
            f"{what} answered HTTP {resp.status_code} with a body that is not JSON"
        ) from exc


def problem(resp: requests.Response) -> str:
    """A short description of an error answer: its OperationOutcome diagnostics, if any."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}"
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = [
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code"))
            for i in body.get("issue") or []
            if isinstance(i, dict)
        ]
        if texts:
            return f"HTTP {resp.status_code}: " + "; ".join(texts)[:300]
    return f"HTTP {resp.status_code}"
