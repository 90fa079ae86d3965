"""The one door to FHIR: every read the service makes goes through ``FhirClient``.

Reads run concurrently (or as one ``batch`` Bundle) under one overall deadline, over a
pooled keep-alive session, following ``next`` links. The deadline bounds the whole exchange,
bodies included: when it passes, the connections still in use are dropped (``transport``).
Failures become typed errors; the access token is only ever sent to the server the caller has
already checked against the allowlist, and never appears in an error message or a log line.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests
import urllib3

from fhirdata.allowlist import unsafe_path
from fhirdata.breaker import Pass
from fhirdata.transport import WATCHDOG, Watch, new_session, origin_of, release_freed_memory

FHIR_JSON = "application/fhir+json"


class FhirError(Exception):
    """Base of every FHIR read failure. Messages never hold tokens or patient identifiers."""


class FhirUnreachable(FhirError):
    """Could not connect, or the connection failed mid-answer."""


class FhirTimeout(FhirError):
    """The request's overall deadline passed before the data arrived."""


class FhirUnauthorised(FhirError):
    """The server answered 401 or 403 to the access token."""


class FhirNotFound(FhirError):
    """The server answered 404."""


class FhirBadResponse(FhirError):
    """The server answered, but not with usable FHIR JSON (5xx, HTML, wrong resourceType ...)."""


class FhirConflict(FhirBadResponse):
    """The server refused a change because the resource is no longer the version it names
    (409 or 412 to ``If-Match``): someone changed it meanwhile."""


class FhirTooLarge(FhirBadResponse):
    """An answer, or one request's answers together, went past a byte budget (as sent, or
    decompressed); reading stopped there and the connection was dropped."""


MiB = 1024 * 1024
_HOOK_SENT = "FHIR_HOOK_MAX_COMPRESSED_BYTES"
_CHUNK = 64 * 1024  # bytes read, and inflated, at a time


@dataclass(frozen=True)
class Versioned:
    """A resource as read, and the version the server gave it (what an update must name)."""

    resource: dict[str, Any]
    version: str


@dataclass(frozen=True)
class FetchSettings:
    deadline_s: float = 4.0
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 3.0
    max_pages: int = 10
    mode: str = "parallel"  # or "batch": one FHIR batch Bundle for all queries
    # Byte budgets, enforced while reading (a gzip bomb stops at the budget, not in memory):
    # per answer and per hook (all its reads together), as sent and decompressed.
    max_response_bytes: int = 4 * MiB
    max_response_compressed_bytes: int = 4 * MiB
    max_hook_bytes: int = 8 * MiB
    max_hook_compressed_bytes: int = 8 * MiB


class _Budget:
    """The bytes one ``FhirClient`` (one hook) may still read, shared by its reads."""

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._decoded = self._wire = 0

    def take(self, decoded: int, wire: int) -> None:
        s = self._settings
        with self._lock:
            self._decoded += decoded
            self._wire += wire
            used, sent = self._decoded, self._wire
        if used > s.max_hook_bytes:
            raise _too_large(
                "the FHIR answers to one hook", "FHIR_HOOK_MAX_BYTES", s.max_hook_bytes
            )
        if sent > s.max_hook_compressed_bytes:
            limit = s.max_hook_compressed_bytes
            raise _too_large("the FHIR answers to one hook as sent", _HOOK_SENT, limit)


def _too_large(what: str, setting: str, limit: int) -> FhirTooLarge:
    return FhirTooLarge(f"{what} exceeded {setting} ({limit} bytes); reading stopped")


class _Inflater:
    """Undoes the answer's Content-Encoding (gzip or deflate, the ones asked for) at most
    ``_CHUNK`` bytes at a time, so that what a few compressed bytes inflate to is checked
    against the budget piece by piece; every gzip member of a stream is read."""

    def __init__(self, encoding: str) -> None:
        coding = encoding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            self._wbits: int | None = 16 + zlib.MAX_WBITS
        elif coding == "deflate":
            self._wbits = 32 + zlib.MAX_WBITS  # the zlib format (or gzip) as sent
        elif coding in ("", "identity"):
            self._wbits = None
        else:
            raise FhirBadResponse("the FHIR server's answer has a Content-Encoding not asked for")
        self._inflate = zlib.decompressobj(self._wbits) if self._wbits else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflate is None or self._wbits is None:
            yield data
            return
        pending = data
        try:
            while pending:
                yield self._inflate.decompress(pending, _CHUNK)
                if self._inflate.eof:  # what follows is the next gzip member
                    pending = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(self._wbits)
                else:
                    pending = self._inflate.unconsumed_tail
        except zlib.error as exc:
            raise FhirBadResponse("the FHIR server's answer could not be decompressed") from exc


def read_capped(resp: requests.Response, settings: FetchSettings, budget: _Budget | None) -> bytes:
    """The body of a ``stream=True`` response, read under the byte budgets: the bytes as
    sent counted as they come off the connection, and decompressed here a chunk at a time.
    Raises FhirTooLarge at the first chunk past a budget, FhirBadResponse for a body that
    cannot be decompressed; urllib3's errors as they come (the caller maps them). The
    caller closes ``resp``."""
    declared = resp.headers.get("Content-Length", "")
    wire_max = settings.max_response_compressed_bytes
    if declared.isdigit() and int(declared) > wire_max:
        raise _too_large("the FHIR answer as sent", "FHIR_RESPONSE_MAX_COMPRESSED_BYTES", wire_max)
    # Pieces, joined once when all is in: a buffer grown to the budget and dropped would be
    # kept by the allocator (each reading thread's arena), and a worker would grow with
    # every refused answer.
    pieces: list[bytes] = []
    try:
        _read_pieces(resp, settings, budget, pieces)
    except FhirTooLarge as exc:
        refused = str(exc)
    else:
        return b"".join(pieces)
    # Raised afresh, out of the except block: no traceback keeps the reading frames (their
    # chunks and inflater) alive until a garbage collection, and the pieces go back to the
    # system at once.
    pieces.clear()
    release_freed_memory()
    raise FhirTooLarge(refused)


def _read_pieces(
    resp: requests.Response, settings: FetchSettings, budget: _Budget | None, pieces: list[bytes]
) -> None:
    inflater = _Inflater(resp.headers.get("Content-Encoding", ""))
    wire_max = settings.max_response_compressed_bytes
    size = sent = 0
    for raw in resp.raw.stream(_CHUNK, decode_content=False):
        sent += len(raw)
        if sent > wire_max:
            raise _too_large(
                "the FHIR answer as sent", "FHIR_RESPONSE_MAX_COMPRESSED_BYTES", wire_max
            )
        if budget is not None:
            budget.take(0, len(raw))
        for piece in inflater.feed(raw):
            size += len(piece)
            if size > settings.max_response_bytes:
                raise _too_large(
                    "the FHIR answer", "FHIR_RESPONSE_MAX_BYTES", settings.max_response_bytes
                )
            if budget is not None:
                budget.take(len(piece), 0)
            pieces.append(piece)


@dataclass
class FetchResult:
    """Resources per query key, plus what went wrong along the way (reported on the card)."""

    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    requests_made: int = 0
    unfiltered: set[str] = field(default_factory=set)  # keys the server could not filter


_LATE = "the FHIR server did not answer within the deadline"
_REPORTED_UNSUPPORTED: set[str] = set()  # search keys already logged as not supported
log = logging.getLogger("iport_cds.fhir")


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise FhirTimeout(_LATE)
        return left

    def passed(self) -> bool:
        return time.monotonic() >= self.end


class _NotFound:
    """A read (not a search) the server answered 404 to: a value, so that it does not end the
    wait for the other reads as an exception would."""


_NOT_FOUND = _NotFound()


class FhirClient:
    """Reads from one FHIR server on behalf of one hook request, under one deadline.

    ``session`` and ``executor`` are shared across requests (connection reuse, bounded
    concurrency); the client itself is cheap and per request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session,
        executor: ThreadPoolExecutor,
        settings: FetchSettings,
        access_token: str | None = None,
        request_id: str | None = None,
        breaker_pass: Pass | None = None,
        foreign_bases: Sequence[str] = (),
    ) -> None:
        """``breaker_pass``: the origin's circuit breaker let this request read; ``close``
        tells it whether the server answered. ``foreign_bases``: other tenants' base URLs
        under ``base_url``, whose paths a link must not lead the token into."""
        self.base_url = base_url.rstrip("/")
        self._foreign_paths = tuple(urlsplit(b).path.rstrip("/") for b in foreign_bases)
        self._breaker_pass = breaker_pass
        self._answered: bool | None = None
        self._origin = origin_of(self.base_url)
        self._base_path = urlsplit(self.base_url).path
        self._session = session
        self._executor = executor
        self._settings = settings
        self._deadline = _Deadline(settings.deadline_s)  # one deadline for all of its I/O
        self._budget = _Budget(settings)  # and one byte budget
        # When it passes, whatever is still being read is dropped (no read outlives it).
        self._watch = Watch()
        self._watchdog_id = WATCHDOG.at(self._deadline.end, self._watch.expire)
        # Only the encodings read_capped can inflate under its budget.
        self._headers = {"Accept": FHIR_JSON, "Accept-Encoding": "gzip, deflate"}
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"
        if request_id:
            self._headers["X-Request-ID"] = request_id

    # -- public ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Done with this request: nothing is left to drop at the deadline."""
        WATCHDOG.cancel(self._watchdog_id)
        if self._breaker_pass is not None:
            self._breaker_pass.breaker.record(self._breaker_pass, self._answered)
            self._breaker_pass = None

    def continue_pages(
        self, key: str, first_page: Mapping[str, Any], result: FetchResult
    ) -> list[dict[str, Any]]:
        """All resources of a prefetched searchset, reading its further pages from this server."""
        with self._noting_answer():
            return self._collect(key, first_page, self._deadline, result)

    @contextmanager
    def _noting_answer(self) -> Iterator[None]:
        """Whether the server answered, for its circuit breaker: a deadline passed or no
        connection is no answer; anything it said (an error status too) is one."""
        try:
            yield
        except (FhirTimeout, FhirUnreachable):
            self._answered = False
            raise
        except FhirError:
            self._answered = self._answered is not False
            raise
        self._answered = self._answered is not False

    def fetch_all(self, queries: Mapping[str, str]) -> FetchResult:
        """Run every query ("Condition?patient=1" or "Patient/1") at once; each key's resources.

        Raises FhirError (usually FhirTimeout or FhirUnreachable) when any query cannot be
        answered: the caller answers 412, because deciding on part of the record is unsafe.
        """
        deadline = self._deadline
        result = FetchResult()
        if not queries:
            return result
        with self._noting_answer():
            if self._settings.mode == "batch":
                first_pages = self._batch(queries, deadline, result)
            else:
                first_pages = self._parallel(queries, deadline, result)
            for key, body in first_pages.items():
                result.resources[key] = self._collect(key, body, deadline, result)
        return result

    # -- transport ---------------------------------------------------------------------
    def _get(self, url: str, deadline: _Deadline) -> Any:
        # A next link (or anything else) pointing elsewhere never gets our token: not another
        # host, and not another base on the same host (another tenant's FHIR endpoint).
        if origin_of(url) != self._origin:
            raise FhirBadResponse("the FHIR server linked to a different host; not followed")
        path = urlsplit(url).path
        foreign = any(path == p or path.startswith(p + "/") for p in self._foreign_paths)
        if (
            unsafe_path(path)
            or foreign
            or not (
                path in (self._base_path, self._base_path + "/")
                or path.startswith(self._base_path + "/")
            )
        ):
            raise FhirBadResponse("the FHIR server linked outside its base URL; not followed")
        return self._send("GET", url, deadline)[0]

    def create(self, resource: Mapping[str, Any], if_none_exist: str) -> Any:
        """A conditional create (``If-None-Exist``): the server writes ``resource`` unless a
        resource matches the search ``if_none_exist`` (then it answers 200 and writes
        nothing), so a retry never writes twice. Returns what the server answered, or None
        when its answer is not JSON: the write was acknowledged (2xx) either way. Raises
        FhirUnauthorised, FhirBadResponse (any other status), FhirTimeout, FhirUnreachable."""
        url = self._url(str(resource["resourceType"]))
        with self._noting_answer():
            return self._send(
                "POST",
                url,
                self._deadline,
                orjson.dumps(resource),
                extra_headers={"If-None-Exist": if_none_exist},
                answer_optional=True,
            )[0]

    def read(self, path: str) -> Versioned:
        """One resource (``"Observation/123"``) and its version, for an update that must not
        overwrite a change made since: the ETag's version (``W/"3"``), else ``meta.versionId``.
        Raises FhirNotFound, FhirUnauthorised, FhirBadResponse (not that resource, or no
        version), FhirTimeout, FhirUnreachable."""
        rtype, _, rid = path.partition("/")
        with self._noting_answer():
            answer, headers = self._send("GET", self._url(path), self._deadline)
        if (
            not isinstance(answer, dict)
            or answer.get("resourceType") != rtype
            or answer.get("id") != rid
        ):
            raise FhirBadResponse(f"the FHIR server did not answer with the {rtype} asked for")
        etag = str(headers.get("ETag") or "").removeprefix("W/").strip('"')
        meta = answer.get("meta")
        version = etag or (str(meta.get("versionId") or "") if isinstance(meta, dict) else "")
        if not version:
            raise FhirBadResponse(f"the FHIR server gave the {rtype} no version")
        return Versioned(answer, version)

    def update(self, resource: Mapping[str, Any], version: str) -> Any:
        """Replace ``resource`` (a PUT to its type and id) only if the server still holds
        ``version`` (``If-Match``): a change someone made since ``read`` is never overwritten.
        Returns what the server answered (None when not JSON). Raises ValueError (no type or
        id), FhirConflict (it changed meanwhile), FhirUnauthorised, FhirNotFound,
        FhirBadResponse, FhirTimeout, FhirUnreachable."""
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(rtype, str) or not isinstance(rid, str) or not rtype or not rid:
            raise ValueError("an update needs the resource's type and id")
        with self._noting_answer():
            return self._send(
                "PUT",
                self._url(f"{rtype}/{rid}"),
                self._deadline,
                orjson.dumps(resource),
                extra_headers={"If-Match": f'W/"{version}"'},
                answer_optional=True,
            )[0]

    def _send(
        self,
        method: str,
        url: str,
        deadline: _Deadline,
        body: bytes | None = None,
        extra_headers: Mapping[str, str] | None = None,
        answer_optional: bool = False,
    ) -> tuple[Any, Mapping[str, str]]:
        """The answer's JSON and its headers."""
        remaining = deadline.remaining()
        timeout = (
            min(self._settings.connect_timeout_s, remaining),
            min(self._settings.read_timeout_s, remaining),
        )
        headers = {**self._headers, **(extra_headers or {})}
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
        try:
            # The body is read inside: the deadline's watch covers it too.
            with self._watch.sending():
                resp = self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                )
                try:
                    _check_status(resp.status_code, updating=method == "PUT")
                    content = read_capped(resp, self._settings, self._budget)
                    answer_headers: Mapping[str, str] = resp.headers
                finally:
                    resp.close()  # a body not read to its end takes its connection with it
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            if self._watch.expired or deadline.passed():
                raise FhirTimeout(f"{_LATE}; the connection was dropped") from exc
            if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
                raise FhirTimeout("the FHIR server did not answer in time") from exc
            raise FhirUnreachable(
                f"could not reach the FHIR server ({type(exc).__name__})"
            ) from exc
        try:
            return orjson.loads(content), answer_headers
        except orjson.JSONDecodeError as exc:
            if answer_optional:
                return None, answer_headers
            raise FhirBadResponse("the FHIR server's answer is not JSON") from exc

    def _parallel(
        self, queries: Mapping[str, str], deadline: _Deadline, result: FetchResult
    ) -> dict[str, Any]:
        futures: dict[str, Future[Any]] = {
            key: self._executor.submit(self._read, q, deadline) for key, q in queries.items()
        }
        result.requests_made += len(futures)
        done, pending = wait(
            futures.values(), timeout=deadline.remaining(), return_when=FIRST_EXCEPTION
        )
        for f in pending:
            f.cancel()
        # A read that failed is the reason, not the ones it stopped waiting for (a read's 404
        # is a value, see _read: only a failure is an exception here). Past the deadline, a
        # read cut short by the dropped connection failed because it was late.
        for f in done:
            error = f.exception()
            if error is not None:
                if self._watch.expired or deadline.passed():
                    raise FhirTimeout(_LATE) from error
                raise error
        out = {}
        for key, f in futures.items():
            if f not in done:
                raise FhirTimeout(_LATE)
            answer = f.result()  # re-raises the typed FhirError of a failed read
            out[key] = (
                self._not_found(key, queries[key], result) if answer is _NOT_FOUND else answer
            )
        return out

    def _read(self, query: str, deadline: _Deadline) -> Any:
        try:
            return self._get(self._url(query), deadline)
        except FhirNotFound:
            if "?" in query:
                raise  # a search that 404s means the server cannot search that type
            return _NOT_FOUND

    @staticmethod
    def _not_found(key: str, query: str, result: FetchResult) -> None:
        """A read that 404s: the context patient missing is fatal (the EHR and this FHIR
        server disagree about who the patient is); anything else is a warning."""
        if query.startswith("Patient/"):
            raise FhirNotFound(f"the FHIR server has no {query}")
        result.warnings.append(f"{key}: not found on the FHIR server.")

    def _batch(
        self, queries: Mapping[str, str], deadline: _Deadline, result: FetchResult
    ) -> dict[str, Any]:
        keys = list(queries)
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": queries[k]}} for k in keys],
        }
        result.requests_made += 1
        answer, _ = self._send("POST", self.base_url, deadline, orjson.dumps(bundle))
        if not isinstance(answer, dict) or answer.get("resourceType") != "Bundle":
            raise FhirBadResponse("the batch answer is not a Bundle")
        entries = answer.get("entry")
        if not isinstance(entries, list) or len(entries) != len(keys):
            raise FhirBadResponse("the batch answer does not have one entry per request")
        out: dict[str, Any] = {}
        for key, entry in zip(keys, entries, strict=True):
            response = entry.get("response") if isinstance(entry, dict) else None
            status = response.get("status") if isinstance(response, dict) else None
            if not isinstance(status, str) or not status.strip():
                raise FhirBadResponse(f"the batch entry for {key} has no response status")
            status = status.strip()
            if not status.startswith("2"):
                if status.startswith("404") and "?" not in queries[key]:
                    out[key] = self._not_found(key, queries[key], result)
                    continue
                # A search that 404s means the server cannot search that type (as in parallel).
                raise FhirBadResponse(f"a batch entry answered {status[:40]}")
            out[key] = entry.get("resource")
        return out

    def _url(self, query: str) -> str:
        return f"{self.base_url}/{query.lstrip('/')}"

    # -- pages -------------------------------------------------------------------------
    def _collect(
        self, key: str, body: Any, deadline: _Deadline, result: FetchResult
    ) -> list[dict[str, Any]]:
        """The resources of a read (one resource) or a search (all pages, OperationOutcomes out)."""
        if body is None:
            return []
        if not isinstance(body, dict):
            raise FhirBadResponse(f"the answer for {key} is not a FHIR resource")
        if body.get("resourceType") != "Bundle":
            if body.get("resourceType") == "OperationOutcome":
                raise FhirBadResponse(f"the FHIR server answered {key} with an OperationOutcome")
            return [body]
        resources: list[dict[str, Any]] = []
        pages = 1
        while True:
            resources.extend(bundle_resources(body, key, result.warnings, result.unfiltered))
            nxt = next_link(body)
            if nxt is None:
                break
            if pages >= self._settings.max_pages:
                result.warnings.append(
                    f"{key}: more than {self._settings.max_pages} pages; the rest was not read."
                )
                break
            body = self._get(urljoin(self.base_url + "/", nxt), deadline)
            result.requests_made += 1
            pages += 1
            if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
                raise FhirBadResponse(f"a later page of {key} is not a Bundle")
        return resources


def get_json(session: requests.Session, url: str, deadline_s: float, max_bytes: int) -> Any:
    """One GET of a JSON document beside the FHIR API (a SMART configuration, a JWK Set)
    under a total deadline, body included, and a byte budget; no redirect followed.

    ``session`` must be one of ``new_session``'s (its connections are the ones a deadline
    can drop). Raises FhirTimeout, FhirUnreachable, FhirBadResponse (FhirTooLarge)."""
    settings = FetchSettings(
        deadline_s=deadline_s,
        connect_timeout_s=deadline_s,
        read_timeout_s=deadline_s,
        max_response_bytes=max_bytes,
        max_response_compressed_bytes=max_bytes,
    )
    watch = Watch()
    deadline = _Deadline(deadline_s)
    ident = WATCHDOG.at(deadline.end, watch.expire)
    try:
        with watch.sending():
            resp = session.get(
                url,
                headers={"Accept": "application/json", "Accept-Encoding": "gzip, deflate"},
                timeout=(deadline_s, deadline_s),
                allow_redirects=False,
                stream=True,
            )
            try:
                _check_status(resp.status_code)
                content = read_capped(resp, settings, None)
            finally:
                resp.close()
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        if watch.expired or deadline.passed():
            raise FhirTimeout(f"{_LATE}; the connection was dropped") from exc
        raise FhirUnreachable(f"could not reach the server ({type(exc).__name__})") from exc
    finally:
        WATCHDOG.cancel(ident)
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise FhirBadResponse("the answer is not JSON") from exc


def _check_status(status: int, updating: bool = False) -> None:
    """A typed error for a status that is not success; 409 and 412 answer an update only as
    a conflict (to a read they are a bad response like any other)."""
    if status in (401, 403):
        raise FhirUnauthorised(f"the FHIR server refused the access token ({status})")
    if status == 404:
        raise FhirNotFound("the FHIR server answered 404")
    if updating and status in (409, 412):
        raise FhirConflict(f"the FHIR server answered {status}: the resource changed meanwhile")
    if status >= 300:
        raise FhirBadResponse(f"the FHIR server answered {status}")


def bundle_resources(
    bundle: Mapping[str, Any],
    key: str,
    warnings: list[str],
    unfiltered: set[str] | None = None,
) -> list[dict[str, Any]]:
    """The resources of a searchset page; warning-level OperationOutcome entries become warnings.

    Raises FhirBadResponse when the page cannot be read as the whole answer: ``entry`` is not
    a list, an OperationOutcome is malformed, or one says ``error``/``fatal`` (the search
    failed or is incomplete, so the entries are not all the patient's records). The message
    names the key and the severity, never the server's text (it may quote the query).
    """
    out: list[dict[str, Any]] = []
    entries = bundle.get("entry")
    if entries is None:
        return out
    if not isinstance(entries, list):
        raise FhirBadResponse(f"{key}: the Bundle's entry is not a list")
    skipped = 0
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            skipped += 1
            continue
        if resource.get("resourceType") == "OperationOutcome":
            _outcome_entry(resource, key, warnings, unfiltered)
            continue
        out.append(resource)
    if skipped:
        warnings.append(f"{key}: {skipped} Bundle entries held no FHIR resource; ignored.")
    return out


def _outcome_entry(
    outcome: Mapping[str, Any], key: str, warnings: list[str], unfiltered: set[str] | None
) -> None:
    issues = outcome.get("issue")
    if not isinstance(issues, list):
        raise FhirBadResponse(f"{key}: an OperationOutcome in the Bundle has no list of issues")
    for issue in issues:
        if not isinstance(issue, dict):
            continue
        severity = issue.get("severity")
        if severity in ("error", "fatal"):
            raise FhirBadResponse(
                f"{key}: the FHIR server reported that the search failed or is incomplete "
                f"(severity {severity})"
            )
        if severity in ("warning", "information") and issue.get("code") == "not-supported":
            # A search parameter the server ignored (lenient handling): the answer is wider
            # than asked. Said once per process in the log; the caller keeps only this
            # patient's records and says so once, not a line per record or per server message.
            if unfiltered is not None:
                unfiltered.add(key)
            if key not in _REPORTED_UNSUPPORTED:
                _REPORTED_UNSUPPORTED.add(key)
                log.warning("the FHIR server ignored a search parameter", extra={"key": key})
            continue
        if severity == "warning":
            text = str(issue.get("diagnostics") or issue.get("code") or "issue")[:160]
            warnings.append(f"{key}: the FHIR server reported: {text}")


def next_link(bundle: Mapping[str, Any]) -> str | None:
    """The Bundle's ``next`` link; FhirBadResponse when ``link`` is malformed (pages would be
    silently lost)."""
    links = bundle.get("link")
    if links is None:
        return None
    if not isinstance(links, list):
        raise FhirBadResponse("a Bundle's link is not a list")
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url:
                raise FhirBadResponse("a Bundle's next link has no URL")
            return url
    return None


__all__: Sequence[str] = (
    "FetchResult",
    "FetchSettings",
    "FhirBadResponse",
    "FhirClient",
    "FhirError",
    "FhirNotFound",
    "FhirTimeout",
    "FhirTooLarge",
    "FhirUnauthorised",
    "FhirUnreachable",
    "bundle_resources",
    "get_json",
    "new_session",
    "next_link",
    "read_capped",
)
