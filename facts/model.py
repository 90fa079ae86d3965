"""The typed facts the policy reads: small frozen records, one per piece of evidence.

Every fact keeps ``ref`` ("Condition/abc") so a decision can cite where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

MatchedBy = Literal["code", "term"]
_Day = date  # for fields declared after a field named ``date``


@dataclass(frozen=True, slots=True)
class Finding:
    """A coded (or term-matched) clinical finding: a Condition, Observation, Procedure or referral.

    ``value_set`` is the concept it belongs to (e.g. "needle-phobia"); a record that belongs to
    two concepts yields two findings.
    """

    ref: str
    value_set: str
    display: str
    date: date | None  # the latest date it carries: recorded, else onset / effective / issued
    matched_by: MatchedBy
    matched_on: str  # "SNOMED 238894004" or the term, e.g. "needle phobia"
    # A Condition's verificationStatus when it says the record is a query, not yet established
    # ("unconfirmed", "provisional", "differential"); None otherwise.
    tentative: str | None = None

    @property
    def established(self) -> bool:
        return self.tentative is None


# A result beyond the analyser's range, as the laboratory reports it: ">" 130 is "more than
# 130", "<=" 20 "at most 20" (FHIR's Quantity.comparator).
Bound = Literal["", ">", ">=", "<", "<="]
BOUNDS: tuple[Bound, ...] = (">", ">=", "<", "<=")


@dataclass(frozen=True, slots=True)
class HbA1cResult:
    ref: str
    mmol_mol: float  # IFCC; DCCT % results are converted. For a bound, the bound.
    original: str  # as recorded, e.g. "8.4 %", ">130 mmol/mol"
    date: date
    at: datetime | None = None  # the moment, to order same-day results
    # "" for a measured value; otherwise the result is censored: only known to be beyond
    # ``mmol_mol`` in this direction (certain one way, unknown the other).
    bound: Bound = ""

    @property
    def mmol_text(self) -> str:
        """The value in mmol/mol as a card says it: "75 mmol/mol", ">130 mmol/mol"."""
        return f"{self.bound}{self.mmol_mol:g} mmol/mol"


@dataclass(frozen=True, slots=True)
class UnusableHbA1c:
    """A dated HbA1c result that cannot be used, and why ("unit 'mmol/L' not recognised")."""

    ref: str
    date: date
    why: str
    shown: str = ""  # the value as recorded ("80 mmol/L"), when there is one


@dataclass(frozen=True, slots=True)
class InsulinOrder:
    """An active insulin prescription and what its dosage says about injections per day."""

    ref: str
    display: str
    action: str  # basal | bolus | mixed | unknown
    injections_per_day: float | None  # None: the dosage does not say ("as directed")
    frequency_from: str  # which part of the dosage gave the count, for the reason
    date: date | None
    matched_by: MatchedBy
    product: str = (
        ""  # "system|code" of the product, or its normalised name: what a re-issue shares
    )
    valid_until: _Day | None = None  # dispenseRequest.validityPeriod.end: not current after it


@dataclass(frozen=True, slots=True)
class StoppedInsulin:
    """Insulin deliberately stopped: a MedicationRequest or MedicationStatement with status
    ``stopped``."""

    ref: str
    display: str
    began: date | None  # when it was prescribed (authoredOn) or started (effectivePeriod.start)
    stopped: _Day | None  # when it stopped, when the record gives it
    began_as: str = "prescribed"  # how ``began`` is said: "prescribed" or "started"

    @property
    def said(self) -> str:
        """The stop as a card says it: "Insulin glargine stopped on 2026-10-01", or, with no
        end recorded, "… stopped (prescribed on 2026-01-10)"."""
        if self.stopped is not None:
            return f"{self.display} stopped on {self.stopped.isoformat()}"
        if self.began is not None:
            return f"{self.display} stopped ({self.began_as} on {self.began.isoformat()})"
        return f"{self.display} stopped"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A clinician's record that a criterion is (value=True) or is not (False) met."""

    ref: str
    criterion: str
    value: bool
    date: date
    performer: str | None
    at: datetime | None = None  # the moment recorded, to order same-day confirmations
    reason: str | None = None  # the clinician's reason, as written (Observation.note)


@dataclass(frozen=True, slots=True)
class WithdrawnConfirmation:
    """A clinician's confirmation marked entered-in-error: never evidence, and named as
    withdrawn, so that nobody reads its absence as "never confirmed" or confirms again
    unaware. Who withdrew it and when come from its withdrawal note, when it has one (the
    assessment app writes one); a record marked entered-in-error elsewhere has neither."""

    ref: str
    criterion: str
    date: date  # when it was confirmed
    performer: str | None  # who confirmed it
    withdrawn_by: str | None
    withdrawn_at: datetime | None
    reason: str | None = None  # the confirmation's own reason, as written
    withdrawal_reason: str | None = None  # the reason given when it was withdrawn


@dataclass(frozen=True, slots=True)
class Order:
    """An order coded in a value set (active, or a draft under review): a MedicationRequest,
    DeviceRequest or ServiceRequest. One per value set the order's code is in."""

    ref: str
    display: str
    status: str
    matched_by: MatchedBy
    value_set: str


# What a record's status says of the technology it names: in use; held (paused: the person has
# it, e.g. a DeviceUseStatement "on-hold"); or not in use (planned, intended, ended, cancelled).
TechState = Literal["in-use", "held", "not-in-use"]


@dataclass(frozen=True, slots=True)
class TechnologyUse:
    """One record that a kind of diabetes technology (insulin pump, real-time or intermittently
    scanned CGM, hybrid closed loop, i-Port) is, was or will be used by the patient.

    The record's status gives ``state``; whether it is current on a given day is the policy's
    reading (``policy.technology``): a ``durable`` record (an assigned device, a statement of
    use, an active problem-list entry) lasts until it ends; an issue of supplies or a dated
    event counts only inside a window from ``last``.
    """

    ref: str
    kind: str  # the technology kind's value set id, e.g. "hybrid-closed-loop"
    product: str  # as recorded: "Omnipod 5 Pods", "MiniMed 780G", "Insulin pump"
    state: TechState
    status: str  # the record's own status word ("on-hold", "intended"), "" when it has none
    durable: bool
    since: date | None  # when use started (timing start, onset), else the record's date
    last: date | None  # the latest date the record carries (recorded, issued, performed)
    ends: _Day | None = None  # a stated end of use (timing end)
    source: str = ""  # the resource type: "DeviceUseStatement", "MedicationRequest" ...
    matched_by: MatchedBy = "code"
    matched_on: str = ""  # "SNOMED 69805005" or the term, e.g. "omnipod 5"
    implied_by: str | None = None  # the kind this record names, when this kind is implied
    label: str = ""  # how a card names the kind: "hybrid closed loop"
    implied_label: str = ""  # how it names ``implied_by``


@dataclass(frozen=True, slots=True)
class NotTheirs:
    """A resource read and not used because it is not shown to be about this patient alone."""

    ref: str  # "Observation/abc"; "A Patient resource" for another Patient (its id is not shown)
    resource_type: str
    why: str  # a phrase of facts.attribution (ANOTHER_PERSON ...): what the card counts
    detail: str  # the particular reason, for the assessment app and the extension

    @property
    def warning(self) -> str:
        return f"{self.ref} not used: {self.why} ({self.detail})."


# A person older than this on the day of evaluation is a record error (the oldest verified
# human lived to 122): the birth date is not plausible evidence of age.
MAX_PLAUSIBLE_AGE_YEARS = 120


def age_on(born: date, today: date) -> int:
    """Completed years from ``born`` to ``today`` (negative when born after today)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A birth date, possibly partial ("1990", "1990-05"): the earliest and latest it allows."""

    earliest: date
    latest: date
    recorded: str

    def implausible_on(self, today: date) -> str | None:
        """Why this birth date cannot be true on ``today``, or None when it can."""
        if self.earliest > today:
            return f"date of birth {self.recorded} is after today"
        if age_on(self.latest, today) > MAX_PLAUSIBLE_AGE_YEARS:
            return (
                f"date of birth {self.recorded} gives an age over {MAX_PLAUSIBLE_AGE_YEARS} years"
            )
        return None


@dataclass(frozen=True)
class PatientRecord:
    patient_ref: str | None
    birth_date: BirthDate | None
    deceased: str | None = None  # when the record says so: "on 2025-03-01", "no date recorded"
    deceased_on: date | None = None  # the date of death, when the record gives a readable one
    findings: tuple[Finding, ...] = ()
    hba1c: tuple[HbA1cResult, ...] = ()
    # Dated results that cannot be used (an unrecognised unit, a bound, no value)
    hba1c_unusable: tuple[UnusableHbA1c, ...] = ()
    insulin: tuple[InsulinOrder, ...] = ()
    insulin_stopped: tuple[StoppedInsulin, ...] = ()  # named when no insulin is current
    confirmations: tuple[Confirmation, ...] = ()
    withdrawn: tuple[WithdrawnConfirmation, ...] = ()  # confirmations marked entered-in-error
    orders: tuple[Order, ...] = ()  # active orders, one per value set each is coded in
    technology: tuple[TechnologyUse, ...] = ()  # every record of a technology kind, any state
    warnings: tuple[str, ...] = ()  # each record not used, each search not done as asked
    # Records not used because they are not shown to be about this patient alone (each is
    # also among the warnings): the card counts them by why.
    not_theirs: tuple[NotTheirs, ...] = ()
    # Resource types of which at least one resource could not be read: a diagnosis criterion
    # cannot say "not recorded" when a Condition was there but unreadable.
    unreadable_types: frozenset[str] = frozenset()
    _by_set: dict[str, tuple[Finding, ...]] = field(default_factory=dict, init=False, compare=False)
    # What the policies derive from this record and keep, since several criteria and policies
    # read the same (criterion results by day, technology readings, the HbA1c results in a
    # lookback): kept with the record, not copied by ``dataclasses.replace``.
    memo: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_set: dict[str, list[Finding]] = {}
        for f in self.findings:
            by_set.setdefault(f.value_set, []).append(f)
        self._by_set.update({k: tuple(v) for k, v in by_set.items()})

    def death_implausible_on(self, today: date) -> str | None:
        """Why the recorded death cannot be true as recorded on ``today``, or None.

        A date of death after today, or before the date of birth, is a record error: the
        patient may have died (on another date) or may be alive (the field filled in wrongly).
        """
        died = self.deceased_on
        if died is None:
            return None
        if died > today:
            return f"the date of death, {died.isoformat()}, is after today"
        if self.birth_date is not None and died < self.birth_date.earliest:
            return (
                f"the date of death, {died.isoformat()}, is before the date of birth, "
                f"{self.birth_date.recorded}"
            )
        return None

    def findings_in(self, value_set: str) -> tuple[Finding, ...]:
        return self._by_set.get(value_set, ())

    def technology_of(self, kind: str) -> tuple[TechnologyUse, ...]:
        return tuple(t for t in self.technology if t.kind == kind)

    def orders_in(self, value_set: str) -> tuple[Order, ...]:
        return tuple(o for o in self.orders if o.value_set == value_set)
