"""``iport-cds evaluate FILE``: the policy's decision for one patient's record, offline.

Uses the pure core only (value sets, facts, policy, the card extension): no service, no
network. The date is today in Europe/London unless ``--today`` fixes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from cds_cards import extension
from cli.errors import EXIT_USAGE, CliError
from cli.inputs import choose_patient, read_resources, require_patient_record
from cli.render import decision_table
from facts import extract_record
from policy import Decision, Policy, PolicyError, evaluate, load_policy
from policy.loading import POLICY_DIR, policy_names
from valuesets import ValueSetError, ValueSetLibrary, load_value_sets

LONDON = ZoneInfo("Europe/London")


def london_today() -> date:
    return datetime.now(LONDON).date()


@dataclass(frozen=True)
class Core:
    vsl: ValueSetLibrary
    policy: Policy


def load_core(policy: str = "iport-advance", valueset_dirs: Sequence[str] = ()) -> Core:
    """Value sets and policy, as the service loads them; a bad file is a usage error."""
    if not Path(policy).suffix and not (POLICY_DIR / f"{policy}.json").is_file():
        names = ", ".join(policy_names())
        raise CliError(
            f"--policy {policy!r} is not a policy of this service; choose one of: {names} "
            "(or give the path of a policy file)",
            EXIT_USAGE,
        )
    try:
        vsl = load_value_sets(valueset_dirs)
        pol = load_policy(policy)
        vsl.require(pol.value_sets)
    except (ValueSetError, PolicyError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    return Core(vsl, pol)


def decide_file(
    core: Core, path: Path, today: date, patient: str | None
) -> tuple[Decision, str | None]:
    resources = read_resources(path, today)
    require_patient_record(resources, path)
    pid = choose_patient(resources, patient, path)
    record = extract_record(
        resources, core.vsl, patient_id=pid, criteria_system=core.policy.info.criteria_system
    )
    return evaluate(core.policy, record, today), pid


def run_evaluate(
    core: Core, path: Path, today: date, patient: str | None, as_json: bool, out: TextIO
) -> None:
    decision, pid = decide_file(core, path, today, patient)
    if as_json:
        out.write(json.dumps(extension(decision), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(decision_table(decision, f"Patient/{pid}" if pid else None))
