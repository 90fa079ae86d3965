"""``iport-cds hook``: act as a CDS client (an EHR) against any CDS Hooks service.

Reads discovery and, like an EHR, calls every service registered for the hook (or the one
``--service-id`` names): optionally fills each service's prefetch templates from the FHIR
server first, sends the hook (with an i-Port Advance draft order for order-select /
order-sign), and shows all the cards. A service that fails (a 412, a timeout) is reported and
the next one is still called; the exit status is 1 when any failed. Progress and errors go to
stderr, cards to stdout.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

import requests

from cli.auth import ClientSigner
from cli.errors import CliError
from cli.http import FHIR_JSON, json_body, new_session, problem, send, shown
from cli.render import cards_text

HOOKS = ("patient-view", "order-select", "order-sign")
DRAFT_ID = "iport-cds-cli-draft-1"
_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")


@dataclass(frozen=True)
class HookOptions:
    hook: str
    service: str  # base URL, e.g. http://127.0.0.1:8080
    fhir_server: str
    patient: str
    user: str
    service_id: str | None
    prefetch: bool
    as_json: bool
    timeout: float
    signer: ClientSigner | None


def service_base(url: str) -> str:
    """Accept the service's base URL or its discovery URL."""
    url = url.rstrip("/")
    return url[: -len("/cds-services")] if url.endswith("/cds-services") else url


def draft_order(patient: str) -> dict[str, Any]:
    """An i-Port Advance DeviceRequest in draft, as an EHR's order entry would hold it."""
    return {
        "resourceType": "DeviceRequest",
        "id": DRAFT_ID,
        "status": "draft",
        "intent": "order",
        "codeCodeableConcept": {"text": "i-Port Advance injection port"},
        "subject": {"reference": f"Patient/{patient}"},
    }


class _Client:
    def __init__(self, opts: HookOptions, err: TextIO) -> None:
        self.opts = opts
        self.err = err
        self.session = new_session()

    def close(self) -> None:
        self.session.close()

    def _auth(self, url: str) -> dict[str, str]:
        return self.opts.signer.header(url) if self.opts.signer else {}

    def _unauthorised(self, resp: requests.Response) -> CliError:
        hint = (
            "the service did not accept the JWT "
            "(check --jwt-iss, --jwt-kid and that the service trusts the key)"
            if self.opts.signer
            else "the service requires a signed JWT: pass --jwt-key, --jwt-iss and --jwt-kid"
        )
        return CliError(f"{hint} ({problem(resp)})")

    def discover(self) -> list[dict[str, Any]]:
        """The services to call: every one for the hook, or the one ``--service-id`` names."""
        url = f"{self.opts.service}/cds-services"
        resp = send(
            self.session,
            "GET",
            url,
            "the CDS service",
            timeout=self.opts.timeout,
            headers={"Accept": "application/json", **self._auth(url)},
        )
        if resp.status_code in (401, 403):
            raise self._unauthorised(resp)
        if resp.status_code != 200:
            raise CliError(f"discovery at {shown(url)} failed: {problem(resp)}")
        doc = json_body(resp, "the CDS service's discovery endpoint")
        services = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(services, list):
            raise CliError(
                f"{shown(url)} is not a CDS Hooks discovery endpoint (no 'services' list)"
            )
        usable = [s for s in services if isinstance(s, dict) and isinstance(s.get("id"), str)]
        chosen = [
            s
            for s in usable
            if s.get("hook") == self.opts.hook and self.opts.service_id in (None, s["id"])
        ]
        if chosen:
            return chosen
        if self.opts.service_id:
            ids = ", ".join(s["id"] for s in usable if s.get("hook") == self.opts.hook)
            raise CliError(
                f"no {self.opts.hook} service with id {self.opts.service_id!r} "
                f"(the {self.opts.hook} services are: {ids or 'none'})"
            )
        offered = sorted({str(s.get("hook")) for s in usable})
        raise CliError(
            f"the service offers no {self.opts.hook} service "
            f"(it offers: {', '.join(offered) or 'none'})"
        )

    def fill_prefetch(self, templates: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
        """Each template's answer from the FHIR server; ``cache`` shares reads across services."""
        values = {
            "context.patientId": self.opts.patient,
            "context.userId": self.opts.user,
            "userPractitionerId": self.opts.user.split("/", 1)[-1],
        }
        out: dict[str, Any] = {}
        started = time.perf_counter()
        for key, template in templates.items():
            if not isinstance(template, str):
                continue
            names = _TOKEN.findall(template)
            if any(n not in values for n in names):
                self.err.write(
                    f"prefetch '{key}': left for the service (token not supported here)\n"
                )
                continue
            query = _TOKEN.sub(lambda m: quote(values[m.group(1)], safe="/"), template)
            if query in cache:
                out[key] = cache[query]
                continue
            url = f"{self.opts.fhir_server}/{query}"
            resp = send(
                self.session,
                "GET",
                url,
                "the FHIR server",
                timeout=self.opts.timeout,
                headers={"Accept": FHIR_JSON},
            )
            if resp.status_code == 404 and query.startswith("Patient/"):
                raise CliError("the FHIR server has no such patient (HTTP 404 reading the Patient)")
            if resp.status_code != 200:  # as an EHR would: leave the key out, say why
                self.err.write(f"prefetch '{key}': {problem(resp)}; left for the service\n")
                continue
            out[key] = cache[query] = json_body(resp, "the FHIR server")
        self.err.write(
            f"prefetch: {len(out)} of {len(templates)} template(s) filled from "
            f"{shown(self.opts.fhir_server)} in {time.perf_counter() - started:.2f} s\n"
        )
        return out

    def request_body(self, prefetch: dict[str, Any] | None) -> dict[str, Any]:
        o = self.opts
        context: dict[str, Any] = {"userId": o.user, "patientId": o.patient}
        if o.hook in ("order-select", "order-sign"):
            context["draftOrders"] = {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": draft_order(o.patient)}],
            }
        if o.hook == "order-select":
            context["selections"] = [f"DeviceRequest/{DRAFT_ID}"]
        body: dict[str, Any] = {
            "hookInstance": str(uuid.uuid4()),
            "hook": o.hook,
            "fhirServer": o.fhir_server,
            "context": context,
        }
        if prefetch is not None:
            body["prefetch"] = prefetch
        return body

    def call(self, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.opts.service}/cds-services/{quote(service_id, safe='')}"
        started = time.perf_counter()
        resp = send(
            self.session,
            "POST",
            url,
            "the CDS service",
            timeout=self.opts.timeout,
            data=json.dumps(body),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                **self._auth(url),
            },
        )
        if resp.status_code in (401, 403):
            raise self._unauthorised(resp)
        if resp.status_code != 200:
            raise CliError(
                f"'{service_id}' answered the {self.opts.hook} hook with {problem(resp)}"
            )
        answer = json_body(resp, "the CDS service")
        if not isinstance(answer, dict) or not isinstance(answer.get("cards"), list):
            raise CliError(f"'{service_id}' answered with no 'cards' list")
        self.err.write(
            f"{service_id}: HTTP 200 in {time.perf_counter() - started:.2f} s, "
            f"{len(answer['cards'])} card(s)\n"
        )
        return answer


def run_hook(opts: HookOptions, out: TextIO, err: TextIO) -> None:
    """Call every service of the hook, as an EHR does: one service's failure (a 412, a timeout,
    a bad answer) is reported and the others are still called. Cards of the services that
    answered go to ``out``; CliError after all of them when any failed (exit 1)."""
    client = _Client(opts, err)
    answers: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    try:
        services = client.discover()
        err.write(
            f"discovery: {len(services)} {opts.hook} service(s): "
            + ", ".join(s["id"] for s in services)
            + "\n"
        )
        cache: dict[str, Any] = {}
        for service in services:
            sid = service["id"]
            try:
                prefetch = None
                if opts.prefetch:
                    templates = service.get("prefetch")
                    prefetch = client.fill_prefetch(
                        templates if isinstance(templates, dict) else {}, cache
                    )
                answers[sid] = client.call(sid, client.request_body(prefetch))
            except CliError as exc:
                failures[sid] = exc.message
                err.write(f"{sid}: failed: {exc.message}\n")
    finally:
        client.close()
    _show(opts, answers, failures, out)
    if failures:
        raise CliError(
            f"{len(failures)} of {len(failures) + len(answers)} {opts.hook} service(s) failed: "
            + "; ".join(
                m if m.startswith(f"'{sid}'") else f"'{sid}': {m}" for sid, m in failures.items()
            )
        )


def _show(
    opts: HookOptions,
    answers: dict[str, dict[str, Any]],
    failures: dict[str, str],
    out: TextIO,
) -> None:
    """Every service's answer: in JSON by service id (a failed one as ``{"error": …}``), or
    the cards as text."""
    if opts.as_json:
        shown_json = {**answers, **{sid: {"error": m} for sid, m in failures.items()}}
        out.write(json.dumps(shown_json, indent=2, ensure_ascii=False) + "\n")
        return
    if not answers:
        return  # every service failed: the errors are on stderr
    cards = [c for a in answers.values() for c in a["cards"]]
    if not cards and opts.hook == "patient-view":
        out.write(
            "No cards: patient-view speaks only when a patient meets the criteria and the "
            "prompt is still useful (try order-sign for the full i-Port check).\n"
        )
        return
    out.write(cards_text(cards))
