"""The decision's vocabulary: three-valued results, evidence, criteria, pathways, outcome."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from facts.model import NotTheirs, WithdrawnConfirmation


class Tri(enum.Enum):
    """Kleene's three-valued logic: met / not met / unknown (missing data)."""

    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"

    @staticmethod
    def all_of(values: Iterable[Tri]) -> Tri:
        """AND: any not-met is not-met; all met is met; otherwise unknown."""
        return _kleene(values, Tri.NOT_MET, Tri.MET)

    @staticmethod
    def any_of(values: Iterable[Tri]) -> Tri:
        """OR: any met is met; all not-met is not-met; otherwise unknown."""
        return _kleene(values, Tri.MET, Tri.NOT_MET)

    def negate(self) -> Tri:
        return _NEGATED[self]


_NEGATED = {Tri.MET: Tri.NOT_MET, Tri.NOT_MET: Tri.MET, Tri.UNKNOWN: Tri.UNKNOWN}


def _kleene(values: Iterable[Tri], dominant: Tri, identity: Tri) -> Tri:
    """``dominant`` as soon as one value is it (the rest are not read); else unknown if one
    is unknown; else ``identity`` (also for no values)."""
    found = identity
    for v in values:
        if v is dominant:
            return v
        if v is Tri.UNKNOWN:
            found = v
    return found


class Outcome(enum.Enum):
    MEETS = "meets-criteria"
    DOES_NOT_MEET = "does-not-meet-criteria"
    INSUFFICIENT = "insufficient-information"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One record a result rests on. ``ref`` is "Type/id"; ``matched_by`` says how it counted."""

    ref: str
    summary: str
    date: date | None = None
    matched_by: str = "code"  # code | term | confirmation
    # A product's name as the record writes it (a dm+d or RxNorm name), where a reason quotes
    # it: a card may show it shorter, the assessment app and the extension show it whole.
    product: str = ""


@dataclass(frozen=True)
class CriterionResult:
    id: str
    title: str
    result: Tri
    reason: str
    evidence: tuple[Evidence, ...] = ()
    context: tuple[Evidence, ...] = ()  # supporting, not deciding (e.g. a specialist referral)
    missing: str | None = None  # what would settle an unknown
    confirmable: bool = True  # a clinician may record a confirmation for it


@dataclass(frozen=True)
class PathwayResult:
    id: str
    title: str
    result: Tri
    criteria: tuple[str, ...]  # every criterion id the pathway reads, in reading order
    diagnosis: str


@dataclass(frozen=True)
class PolicyInfo:
    id: str
    title: str
    version: str
    publisher: str
    url: str  # the policy document; "": not configured for this deployment
    created: date
    last_modified: date
    review_due: date
    places: tuple[str, ...]
    funding_request_url: str  # "": not configured for this deployment
    criteria_system: str
    presentation: Mapping[str, Any] = field(default_factory=dict)  # card wording, from the file
    # An individual funding request route exists where the criteria are not met: the policy
    # names its address, or declares the ``fundingRequestUrl`` parameter a deployment sets
    funding_route: bool = False


HOOKS = ("order-select", "order-sign", "patient-view")
ORDER_HOOKS = ("order-select", "order-sign")
# "when-met-or-one-judgement-away": also when one clinician's confirmation would make it met
SPEAKS = ("always", "when-met", "when-met-or-one-judgement-away")


@dataclass(frozen=True)
class ServiceSpec:
    """One CDS service a policy offers, as its file declares it (``services``).

    Order hooks answer only when a draft order is coded in ``trigger_value_set`` (with
    ``selected_only``, only the drafts the clinician selected). ``speaks`` is "always" (a card
    on every answered call), "when-met" (only when the outcome is meets-criteria and no
    criterion in the presentation's ``silenceWhenMet`` is met) or
    "when-met-or-one-judgement-away" (also when one clinician's confirmation would make it
    met).
    """

    id: str
    hook: str
    title: str
    description: str
    policy: str  # the policy id (metadata.id)
    speaks: str = "always"
    trigger_value_set: str | None = None
    selected_only: bool = False


@dataclass(frozen=True)
class Decision:
    policy: PolicyInfo
    outcome: Outcome
    pathway: str | None
    reason: str
    criteria: dict[str, CriterionResult]
    pathways: tuple[PathwayResult, ...]
    evaluated_on: date
    assumptions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # Records not used because they are not shown to be this patient's (also among warnings)
    not_theirs: tuple[NotTheirs, ...] = ()
    policy_overdue: bool = False
    shown_criteria: tuple[str, ...] = field(default=())  # those the deciding pathway reads
    notices: tuple[str, ...] = ()  # sentences about the patient's state, shown first
    deceased: bool = False  # recorded as deceased (plausibly or not): no eligibility assessed
    # Why the recorded death is not plausible (a date of death after today): whether the
    # patient is alive is unknown, and they are not assessed until the record is corrected.
    deceased_implausible: str | None = None
    decided_by: tuple[str, ...] = ()  # the criteria that gave the outcome (policy.decisive)
    decisive: tuple[str, ...] = ()  # unknowns whose answer could change the outcome
    # confirmable unknowns whose confirmation alone would make the outcome "meets"
    one_judgement_away: tuple[str, ...] = ()
    # every confirmable unknown whose confirmation alone would make the outcome "meets" (the
    # judgements above, and confirmable facts with nothing in the record yet): a confirmation
    # offered that is not among them is said not to change the outcome on its own
    meets_if_confirmed: tuple[str, ...] = ()
    # derived criteria on the deciding pathway holding a met deciding criterion or a decisive one
    composites: tuple[str, ...] = ()
    # Records read and not used that every output names, whatever the outcome: an HbA1c
    # dated after today (a record error a clinician should see, not silently dropped).
    not_used: tuple[Evidence, ...] = ()
    # Confirmations of this policy's criteria marked entered-in-error: never evidence, each
    # named as withdrawn (by whom and when) wherever the assessment is shown.
    withdrawn: tuple[WithdrawnConfirmation, ...] = ()
