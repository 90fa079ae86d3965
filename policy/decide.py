"""The one start-up assembly and the one decide path, shared by every caller.

``load_core`` loads the value sets and the policies (with the deployment's parameter
overrides) once: the service, ``iport-cds evaluate`` and population runs all start here.
``read_record`` turns one patient's FHIR resources into a ``PatientRecord`` and ``decide``
evaluates a policy for it with its companion policies' notes: a hook call, the review app
(through the hook path), ``evaluate`` and population runs all decide here.

Pure: no Flask, no HTTP, no database, no clock (``today`` is given).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from facts import NotTheirs, PatientRecord, extract_record
from policy.engine import Assessment, assess, explain
from policy.expr import PolicyError
from policy.loading import Policy, load_policies
from policy.model import CriterionResult, Decision, Outcome, Tri
from valuesets import ValueSetLibrary, load_value_sets


@dataclass(frozen=True)
class Core:
    """What every caller loads once: value sets and policies, checked against each other."""

    vsl: ValueSetLibrary
    policies: dict[str, Policy]  # by policy id, in the order named
    criteria_system: str  # the confirmation CodeSystem all the policies share


def load_core(
    names: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    valueset_dirs: Iterable[str | Path] = (),
    policy_dir: str | Path | None = None,
) -> Core:
    """Value sets (shipped, plus ``valueset_dirs``) and the policies ``names`` (names in
    ``policy_dir``, default ``policy/policies/``, or paths) with ``overrides`` of their
    parameters.

    Raises ValueSetError or PolicyError naming the bad file: a policy that needs a value set
    not loaded, an override no policy declares, policies with different confirmation systems.
    """
    vsl = load_value_sets(list(valueset_dirs))
    policies = load_policies(names, overrides or {}, policy_dir)
    for policy in policies.values():
        vsl.require(policy.value_sets)
    systems = {p.info.criteria_system for p in policies.values()}
    if len(systems) != 1:
        raise PolicyError("all policies must share one confirmation CodeSystem")
    return Core(vsl=vsl, policies=policies, criteria_system=systems.pop())


def read_record(
    core: Core,
    resources: Iterable[Mapping[str, Any]],
    patient_id: str | None,
    warnings: Sequence[str] = (),
    not_theirs: Sequence[NotTheirs] = (),
) -> PatientRecord:
    """One patient's FHIR resources as the facts the policies read; ``warnings`` and
    ``not_theirs`` are what reading them earlier found (``fhirdata.Gathered``)."""
    return extract_record(
        resources,
        core.vsl,
        patient_id=patient_id,
        criteria_system=core.criteria_system,
        warnings=warnings,
        not_theirs=not_theirs,
    )


@dataclass(frozen=True)
class Decided:
    decision: Decision
    companion_note: str | None  # the first companion policy's note, when it speaks


class Evaluations:
    """Each policy assessed at most once for one record on one day, and explained (decisive
    unknowns, deciding criteria, reason) only when its decision is needed: a hook reads its
    own policy, its companions and the other patient-view policies, which overlap, and of
    the others it needs only whether they speak: their criteria and outcome."""

    def __init__(self, record: PatientRecord, today: date) -> None:
        self.record = record
        self.today = today
        self._assessed: dict[str, Assessment] = {}
        self._done: dict[str, Decision] = {}

    def assessed(self, policy: Policy) -> Assessment:
        found = self._assessed.get(policy.info.id)
        if found is None:
            found = self._assessed[policy.info.id] = assess(policy, self.record, self.today)
        return found

    def of(self, policy: Policy) -> Decision:
        found = self._done.get(policy.info.id)
        if found is None:
            found = self._done[policy.info.id] = explain(self.assessed(policy))
        return found

    @property
    def explained(self) -> tuple[str, ...]:
        """The ids of the policies explained so far, in the order they were."""
        return tuple(self._done)

    def speaks(self, policy: Policy, speaks: str = "when-met") -> bool:
        """``speaks_proactively`` for ``policy``, read from its assessment: it is explained
        only when whether it speaks rests on the judgements a clinician could record."""
        assessed = self.assessed(policy)
        if not could_speak(assessed.outcome, speaks):
            return False
        if assessed.outcome is not Outcome.MEETS and not self.of(policy).one_judgement_away:
            return False
        return not _silenced(policy.info.presentation, assessed.results, self.record)


def decide(
    record: PatientRecord,
    policy: Policy,
    today: date,
    companions: Sequence[Policy] = (),
    evaluations: Evaluations | None = None,
) -> Decided:
    """``policy``'s decision for ``record`` on ``today`` (a day in Europe/London), and the note
    of the first companion policy that speaks for this patient. ``evaluations``, when given,
    is shared with the caller's other readings of the same record."""
    done = evaluations or Evaluations(record, today)
    return Decided(done.of(policy), companion_note(companions, record, today, done))


def speaks_proactively(decision: Decision, record: PatientRecord, speaks: str = "when-met") -> bool:
    """A "when-met" service speaks only when the criteria are met and the prompt is still
    useful: not when an order in the presentation's ``silenceWhenOrdered`` value set is
    active, nor when a criterion in its ``silenceWhenMet`` is met (already in use). A
    "when-met-or-one-judgement-away" service also speaks, on the same terms, when one
    clinician's confirmation would make the criteria met."""
    if not could_speak(decision.outcome, speaks):
        return False
    if decision.outcome is not Outcome.MEETS and not decision.one_judgement_away:
        return False
    return not _silenced(decision.policy.presentation, decision.criteria, record)


def _silenced(
    words: Mapping[str, Any], results: Mapping[str, CriterionResult], record: PatientRecord
) -> bool:
    """Whether a prompt would no longer be useful: the technology ordered, or maybe in use."""
    ordered = words.get("silenceWhenOrdered")
    if ordered and record.orders_in(ordered["valueSet"]):
        return True
    # Silent unless each "already using it" criterion is known not met: a technology that may
    # be in use (a device record not shown to be the patient's) is no prompt to start it.
    silencers = words.get("silenceWhenMet", [])
    return not all(results[c].result is Tri.NOT_MET for c in silencers)


def could_speak(outcome: Outcome, speaks: str) -> bool:
    """Whether a service that speaks as ``speaks`` says could speak with ``outcome`` at all:
    met, or (one judgement away) not enough information."""
    return outcome is Outcome.MEETS or (
        speaks == "when-met-or-one-judgement-away" and outcome is Outcome.INSUFFICIENT
    )


# A policy without ``presentation.patientViewPrecedence`` gives way to every one with it.
DEFAULT_PRECEDENCE = 1000


def precedence(policy: Policy) -> int:
    """Where the policy's technology stands when several would prompt at once (lower first):
    the policy file's ``presentation.patientViewPrecedence``."""
    return int(policy.info.presentation.get("patientViewPrecedence", DEFAULT_PRECEDENCE))


@dataclass(frozen=True)
class Turn:
    """Whether a patient-view card speaks when the deployment shows one card per patient,
    and the other technologies whose criteria the patient also meets (named on that card)."""

    speaks: bool
    also: tuple[Policy, ...] = ()


def patient_view_turn(
    policy: Policy,
    decision: Decision,
    record: PatientRecord,
    today: date,
    rivals: Sequence[tuple[Policy, str]],
    speaks: str = "when-met",
    evaluations: Evaluations | None = None,
) -> Turn:
    """One card per patient per moment: ``policy``'s patient-view card speaks only when no
    rival (another policy's patient-view service, with its own ``speaks``) that would also
    speak ranks first — a policy met before one a judgement away, then by precedence (NICE's
    order by default: hybrid closed loop, insulin pump, i-Port), then by id. The card that
    speaks names the rivals the patient also meets."""
    if not speaks_proactively(decision, record, speaks):
        return Turn(False)

    def rank(p: Policy, outcome: Outcome) -> tuple[int, int, str]:
        return (0 if outcome is Outcome.MEETS else 1, precedence(p), p.info.id)

    mine = rank(policy, decision.outcome)
    speaking = []
    done = evaluations or Evaluations(record, today)
    for rival, mode in rivals:
        if done.speaks(rival, mode):
            outcome = done.assessed(rival).outcome
            if rank(rival, outcome) < mine:
                return Turn(False)
            if outcome is Outcome.MEETS:
                speaking.append((rank(rival, outcome), rival))
    return Turn(True, tuple(p for _, p in sorted(speaking, key=lambda x: x[0])))


def companion_note(
    companions: Sequence[Policy],
    record: PatientRecord,
    today: date,
    evaluations: Evaluations | None = None,
) -> str | None:
    """The note of the first companion policy (in the order the policy file lists them) whose
    criteria the patient meets and whose technology they are not already using: e.g. the
    i-Port card defers to hybrid closed loop, then to an insulin pump."""
    done = evaluations or Evaluations(record, today)
    for companion in companions:
        if done.speaks(companion):
            note: str | None = companion.info.presentation.get("companionNote")
            return note
    return None
