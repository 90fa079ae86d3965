"""``iport-cds demo …``: list, load and export the demo patients; generate a population."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from cli.errors import EXIT_USAGE, CliError
from cli.http import FHIR_JSON, json_body, new_session, problem, send, shown
from demo import (
    NO_PATHWAY,
    DemoError,
    DemoPatient,
    Expectation,
    bundle_resources,
    get_patient,
    list_patients,
    users_bundle,
)
from demo.population import generate_population
from population.progress import Progress
from service.config import read_settings


def select(names: Sequence[str] | None) -> list[DemoPatient]:
    try:
        return [get_patient(n) for n in names] if names else list_patients()
    except DemoError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _first_declared(p: DemoPatient) -> tuple[str, Expectation]:
    """The expectation of the deployment's first policy the patient declares one for."""
    enabled = [str(n) for n in read_settings()["POLICIES"]]
    name = next((n for n in enabled if n in p.expected), next(iter(p.expected)))
    return name, p.expected[name]


def run_list(out: TextIO, as_json: bool) -> None:
    patients = select(None)
    if as_json:
        rows = [
            {
                "name": p.name,
                "patientId": p.patient_id,
                "expected": {
                    policy: {
                        "outcome": e.outcome,
                        "pathway": None if e.pathway == NO_PATHWAY else e.pathway,
                        "patientViewCard": e.card,
                    }
                    for policy, e in p.expected.items()
                },
                "description": p.description,
            }
            for p in patients
        ]
        out.write(json.dumps(rows, indent=2) + "\n")
        return
    w_id = max(len(p.patient_id) for p in patients) + 2
    policy = _first_declared(patients[0])[0]
    out.write(f"{'Patient id':<{w_id}}{'Expected outcome':<26}{'Pathway':<9}Scenario ({policy})\n")
    for p in patients:
        _, e = _first_declared(p)
        pathway = "-" if e.pathway in (None, NO_PATHWAY) else e.pathway
        out.write(f"{p.patient_id:<{w_id}}{e.outcome:<26}{pathway:<9}{p.description}\n")


def _check_transaction(resp_body: Any, name: str) -> None:
    if not isinstance(resp_body, dict) or resp_body.get("resourceType") != "Bundle":
        raise CliError(f"{name}: the FHIR server's answer is not a Bundle")
    failed = [
        str((e.get("response") or {}).get("status"))
        for e in resp_body.get("entry") or []
        if isinstance(e, dict)
        and not str((e.get("response") or {}).get("status", "")).startswith(("2", "3"))
    ]
    if failed:
        raise CliError(f"{name}: {len(failed)} entries were not stored ({', '.join(failed[:3])})")


def _store(
    session: Any, fhir_server: str, bundle: dict[str, Any], name: str, mode: str, timeout: float
) -> int:
    """PUT one demo Bundle into the server (one transaction, or resource by resource);
    returns how many resources were stored."""
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    if mode == "transaction":
        resp = send(
            session,
            "POST",
            fhir_server,
            "the FHIR server",
            timeout=timeout,
            data=json.dumps(bundle),
            headers=headers,
        )
        if resp.status_code != 200:
            raise CliError(f"{name}: the transaction failed: {problem(resp)}")
        _check_transaction(json_body(resp, "the FHIR server"), name)
        return len(bundle_resources(bundle))
    for r in bundle_resources(bundle):
        url = f"{fhir_server}/{r['resourceType']}/{r['id']}"
        resp = send(
            session,
            "PUT",
            url,
            "the FHIR server",
            timeout=timeout,
            data=json.dumps(r),
            headers=headers,
        )
        if resp.status_code not in (200, 201):
            raise CliError(f"{name}: PUT {r['resourceType']} failed: {problem(resp)}")
    return len(bundle_resources(bundle))


def run_load(
    fhir_server: str,
    names: Sequence[str] | None,
    today: date,
    mode: str,
    timeout: float,
    out: TextIO,
    err: TextIO,
) -> None:
    """PUT the demo users and every demo patient (one transaction each, or resource by
    resource) into the server."""
    patients = select(names)
    session = new_session()
    progress = Progress(err, f"loading into {shown(fhir_server)}", len(patients), "patients")
    try:
        users = users_bundle()
    except DemoError as exc:
        raise CliError(str(exc)) from exc
    try:
        # The users first: a clinician signing in as one is named on every confirmation.
        n_users = _store(session, fhir_server, users, "demo users", mode, timeout)
        stored = 0
        for n, p in enumerate(patients, 1):
            stored += _store(session, fhir_server, p.bundle(today), p.name, mode, timeout)
            progress.update(n)
    finally:
        session.close()
    progress.done(len(patients))
    out.write(
        f"Loaded {len(patients)} demo patient(s) ({stored} resources) and {n_users} demo "
        f"user(s) into {shown(fhir_server)}:\n"
    )
    for r in bundle_resources(users):
        out.write(f"  {r['resourceType'] + '/' + r['id']:<40} demo user\n")
    for p in patients:
        policy, e = _first_declared(p)
        out.write(f"  {p.patient_id:<40} expected: {e.outcome} ({policy})\n")


def run_export(out_dir: Path, names: Sequence[str] | None, today: date, out: TextIO) -> None:
    """Write the demo Bundles with dates resolved, for loading with another tool (curl …)."""
    patients = select(names)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for p in patients:
            (out_dir / f"{p.name}.json").write_text(
                json.dumps(p.bundle(today), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    except OSError as exc:
        raise CliError(f"{out_dir}: cannot write ({exc.strerror or exc})", EXIT_USAGE) from exc
    out.write(f"Wrote {len(patients)} transaction Bundle(s) dated for {today} to {out_dir}\n")


def run_generate(
    out_dir: Path, patients: int, seed: int, today: date, out: TextIO, err: TextIO
) -> None:
    if patients < 1:
        raise CliError("--patients must be at least 1", EXIT_USAGE)
    progress = Progress(err, "generating", patients, "patients")
    try:
        resources = generate_population(
            out_dir, patients, today=today, seed=seed, progress=progress.update
        )
    except OSError as exc:
        raise CliError(f"{out_dir}: cannot write ({exc.strerror or exc})", EXIT_USAGE) from exc
    progress.done(patients)
    out.write(
        f"Wrote {patients:,} synthetic patients ({resources:,} resources) as NDJSON to {out_dir}; "
        f"evaluate them with --today {today}\n"
    )
