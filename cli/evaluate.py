"""``iport-cds evaluate FILE``: the policy's decision for one patient's record, offline.

Starts as the service does (``service.config.core_from_config``: value sets, the policy, the
deployment's parameter overrides) and decides as it does (``policy.decide``); no network.
The date is today in Europe/London unless ``--today`` fixes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from cds_cards import extension
from cli.errors import EXIT_USAGE, CliError
from cli.inputs import bundle_entries, choose_patient, read_resources, require_patient_record
from cli.render import decision_table
from facts import NotTheirs
from facts.london import london_day
from fhirdata.binding import bundle_links, file_link_problem, not_theirs
from policy import Decision, PolicyError
from policy.decide import Core, decide, read_record
from policy.loading import policy_names
from service.config import core_from_config, read_settings
from valuesets import ValueSetError


def london_today() -> date:
    return london_day(datetime.now(UTC))


def load_core(
    policy: str | None = None,
    valueset_dirs: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
) -> Core:
    """The service's start-up assembly for one policy (default: the deployment's first):
    value sets (VALUESET_EXTRA_DIR and ``valueset_dirs``) and the policy with the deployment's
    POLICY_DIR and POLICY_PARAMETERS, from ``settings`` (default: the service's configuration
    file and IPORT_CDS_* environment). A bad file or setting is a usage error."""
    settings = read_settings() if settings is None else settings
    folder = settings.get("POLICY_DIR")
    names = policy_names(folder)
    if policy is None:
        enabled = settings.get("POLICIES") or names
        if not enabled:
            raise CliError("no policy is enabled: set POLICIES or POLICY_DIR", EXIT_USAGE)
        policy = str(enabled[0])
    if not Path(policy).suffix and policy not in names:
        raise CliError(
            f"--policy {policy!r} is not a policy of this service; choose one of: "
            f"{', '.join(names)} (or give the path of a policy file)",
            EXIT_USAGE,
        )
    config = {**settings, "POLICIES": [policy]}
    try:
        return core_from_config(config, valueset_dirs)
    except (ValueSetError, PolicyError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def decide_file(
    core: Core, path: Path, today: date, patient: str | None
) -> tuple[Decision, str | None]:
    """The decision for the one policy of ``core`` on the patient in ``path``."""
    resources = read_resources(path, today)
    require_patient_record(resources, path)
    pid = choose_patient(resources, patient, path)
    (policy,) = core.policies.values()
    kept, refused = _bound_by_full_urls(resources, bundle_entries(path), pid)
    record = read_record(core, kept, pid, not_theirs=refused)
    return decide(record, policy, today).decision, pid


def _bound_by_full_urls(
    resources: list[dict[str, Any]], entries: list[Any], pid: str | None
) -> tuple[list[dict[str, Any]], list[NotTheirs]]:
    """A Bundle file's resources less those its ``fullUrl``s do not show to be ``pid``'s (an
    entry sharing its fullUrl with a different one, a urn:uuid naming another entry), each
    named as not used (``fhirdata.binding.file_link_problem``)."""
    if not entries or pid is None:
        return resources, []
    urls = frozenset(
        e["fullUrl"] for e in entries if isinstance(e, dict) and isinstance(e.get("fullUrl"), str)
    )
    # read_resources resolved dates in copies: the links are built over those copies, each
    # beside its entry's fullUrl, when the entries and the resources line up one to one (a
    # Bundle nested in an entry does not: then only the urn:uuid references are checked).
    held = [e for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    if len(held) == len(resources):
        links = bundle_links(
            [{**e, "resource": r} for e, r in zip(held, resources, strict=True)], pid
        )
    else:
        links = bundle_links(entries, pid)
    kept, refused = [], []
    for r in resources:
        problem = file_link_problem(r, links, urls)
        if problem is None:
            kept.append(r)
        else:
            refused.append(not_theirs(r, problem))
    return kept, refused


def run_evaluate(
    core: Core, path: Path, today: date, patient: str | None, as_json: bool, out: TextIO
) -> None:
    decision, pid = decide_file(core, path, today, patient)
    if as_json:
        out.write(json.dumps(extension(decision), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(decision_table(decision, f"Patient/{pid}" if pid else None))
