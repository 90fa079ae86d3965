"""Read one patient's FHIR resources from a file: a Bundle, a single resource, a JSON list of
resources, or NDJSON (one resource per line, as a Bulk FHIR export writes them)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from cli.errors import EXIT_USAGE, CliError
from demo import resolve_dates
from fhirdata.binding import PATIENT_SPECIFIC

_NDJSON_SUFFIXES = (".ndjson", ".jsonl")


def _bad(path: Path, what: str) -> CliError:
    return CliError(f"{path}: {what}", EXIT_USAGE)


def _resources_of(doc: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(doc, list):
        if not all(isinstance(r, dict) and "resourceType" in r for r in doc):
            raise _bad(path, "a JSON list must hold only FHIR resources")
        return list(doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise _bad(path, "not a FHIR resource or Bundle (no resourceType)")
    if doc["resourceType"] != "Bundle":
        return [doc]
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise _bad(path, "Bundle.entry is not a list")
    out: list[dict[str, Any]] = []
    for e in entries:
        resource = e.get("resource") if isinstance(e, dict) else None
        if isinstance(resource, dict):
            out.extend(
                _resources_of(resource, path)
                if resource.get("resourceType") == "Bundle"
                else [resource]
            )
    return out


def _ndjson(text: str, path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            resource = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(path, f"line {lineno} is not valid JSON ({exc.msg})") from exc
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise _bad(path, f"line {lineno} is not a FHIR resource")
        out.append(resource)
    return out


def read_resources(path: Path, today: date) -> list[dict[str, Any]]:
    """Every resource in the file, with demo ``@today…`` dates resolved against ``today``.

    Raises CliError (exit 2) for a missing, unreadable or malformed file.
    """
    if not path.exists():
        raise _bad(path, "no such file")
    if path.is_dir():
        raise _bad(path, "is a folder (for Bulk FHIR NDJSON files use --population DIR)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"cannot read as UTF-8 text ({type(exc).__name__})") from exc
    if not text.strip():
        raise _bad(path, "is empty")
    if path.suffix.lower() in _NDJSON_SUFFIXES:
        resources = _ndjson(text, path)
    else:
        try:
            resources = _resources_of(json.loads(text), path)
        except json.JSONDecodeError as exc:
            first = text.lstrip().splitlines()[0]
            try:  # NDJSON under another name: the first line is a whole resource
                json.loads(first)
            except json.JSONDecodeError:
                raise _bad(
                    path, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
                ) from exc
            resources = _ndjson(text, path)
    result: list[dict[str, Any]] = resolve_dates(resources, today)
    return result


def require_patient_record(resources: list[dict[str, Any]], path: Path) -> None:
    """CliError (exit 2) unless the file holds a Patient or a record about one: deciding on
    anything else would print a confident "does not meet" about nothing."""
    if any(
        r.get("resourceType") == "Patient" or r.get("resourceType") in PATIENT_SPECIFIC
        for r in resources
    ):
        return
    found = sorted({str(r.get("resourceType"))[:40] for r in resources}) or ["nothing"]
    raise _bad(
        path,
        f"not a patient record: no Patient and no clinical resource (found {', '.join(found)})",
    )


def _referenced_patient(resource: dict[str, Any]) -> str | None:
    for key in ("subject", "patient"):
        target = resource.get(key)
        ref = target.get("reference") if isinstance(target, dict) else None
        if isinstance(ref, str):
            parts = ref.split("/_history")[0].rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient":
                return parts[-1]
    return None


def choose_patient(resources: list[dict[str, Any]], wanted: str | None, path: Path) -> str | None:
    """The id of the patient to evaluate: ``wanted``, the only Patient, or the only one
    the resources refer to. None when nothing names a patient (every resource is used)."""
    ids = [
        r["id"]
        for r in resources
        if r.get("resourceType") == "Patient" and isinstance(r.get("id"), str)
    ]
    referenced = {p for p in (_referenced_patient(r) for r in resources) if p}
    known = dict.fromkeys([*ids, *sorted(referenced)])
    if wanted is not None:
        if wanted not in known:
            raise CliError(f"{path}: no patient with id {wanted!r} in the file", EXIT_USAGE)
        return wanted
    if len(known) > 1:
        raise CliError(
            f"{path}: holds {len(known)} patients; choose one with --patient ID, "
            "or evaluate them all with --population DIR",
            EXIT_USAGE,
        )
    return next(iter(known), None)


def bundle_entries(path: Path) -> list[Any]:
    """The entries of the top-level Bundle a file holds (their ``fullUrl``s say which
    ``urn:uuid`` is whose); empty for any other file. The file was read by ``read_resources``
    first, so it is readable JSON or NDJSON."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        entries = doc.get("entry")
        return entries if isinstance(entries, list) else []
    return []
