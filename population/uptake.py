"""The uptake gap of a population: who already uses (or holds, paused) each policy's technology,
who meets its criteria, who could once a clinician confirms what only a clinician can, who
lacks data, and who meets them without using the technology; by place, age band, sex and
deprivation quintile.

``person_rows`` turns one patient's resources into one CSV row per policy (run in the worker
processes); ``UptakeTally`` adds the rows up in the main process (bounded memory: counters
keyed by policy and group); ``population.report`` renders the tally as a self-contained HTML.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import places
from facts import PatientRecord
from facts.model import Confirmation, age_on
from places import ethnicity, lookups
from policy import Outcome, Policy, Tri
from policy.criteria import SELF_CONFIRMING_RULES
from policy.engine import Assessment, assess, outcome_if_confirmed
from policy.outcome_words import (
    ALREADY_USING,
    DATA_MISSING,
    MEETS,
    NOT_MET,
    OUTCOMES,
    POTENTIALLY,
)
from policy.technology import Windows, read_technology
from population import cohort
from population.figures import Figures
from population.per_policy import per_policy
from valuesets import ValueSetLibrary, load_technology_kinds, normalise_system

# People who already have the policy's technology are counted apart from those who meet its
# criteria, and only there: in use, or held (paused: a device on hold is the person's, not a
# gap to close; the ``technology_in_use`` column says "held"). The five words are the same in
# the CSV, the report, the MeasureReport and the dashboard (``policy.outcome_words``).
BANDS = OUTCOMES
TECHNOLOGY_TYPES = frozenset({"Procedure", "Device", "DeviceRequest", "DeviceUseStatement"})
AGE_BANDS = ((0, 11, "0-11"), (12, 17, "12-17"), (18, 39, "18-39"), (40, 64, "40-64"))
# The technology columns, one per kind of valuesets/technology-kinds.json (a kind added there
# is a column here), each "in use", "held", "not current" (only an old record), "on order"
# (an active order and nothing more), "no" or "unknown" (the input holds no device or
# procedure records).
TECHNOLOGY_COLUMNS = {k.id: k.column for k in load_technology_kinds().values()}
STATE_WORDS = {"in use": "in use", "held": "held", "not current": "not current"}
ON_ORDER = "on order"
# The technology states counted as "already using": the policy's own reading of "already has
# it" (an i-Port on order counts, as the i-Port policy's card falls silent for one).
HAS_IT = frozenset({"in use", "held", ON_ORDER})
# FHIR R4 AdministrativeGender (http://hl7.org/fhir/administrative-gender), a required binding
# of Patient.gender: the only values a sex group may be named by.
ADMINISTRATIVE_GENDER = frozenset({"male", "female", "other", "unknown"})
NOT_A_GENDER_CODE = "other/unknown"
PERSON_COLUMNS = (
    "patient_ref",
    "policy_id",
    "policy_version",
    "evaluation_date",
    "cohort",
    "age_band",
    "sex",
    "place",
    "practice_code",
    "practice_name",
    "pcn_code",
    "ethnic_group",
    "deprivation_quintile",
    "registration",
    "postcode_status",
    "uncovered_code_systems",
    "latest_hba1c_mmol_mol",
    "latest_hba1c_date",
    *TECHNOLOGY_COLUMNS.values(),
    "outcome",
    "band",
    "technology_in_use",
    "pathway",
)
# The report's tables, in order: practice and network as tables only, the others also charted.
DIMENSIONS = (
    "practice_code",
    "pcn_code",
    "place",
    "age_band",
    "sex",
    "ethnic_group",
    "deprivation_quintile",
)


UNKNOWN_GROUP = "unknown"


# -- bands ---------------------------------------------------------------------------------------
def band_of(assessed: Assessment, record: PatientRecord, today: date) -> str:
    """The assessment's band. 'Potentially eligible': not enough information, and the policy
    would be met if a clinician confirmed every unknown criterion the policy lets a clinician
    confirm (``confirmable`` in the policy file): the outcome with those confirmations added
    to the record, exactly as confirming on the card would give it
    (``policy.engine.outcome_if_confirmed``). A band needs outcomes only, never an
    explanation (``policy.explain``)."""
    if assessed.outcome is Outcome.MEETS:
        return MEETS
    if assessed.outcome is Outcome.DOES_NOT_MEET:
        return NOT_MET
    confirmable = [
        cid for cid, r in assessed.results.items() if r.result is Tri.UNKNOWN and r.confirmable
    ]
    if not confirmable:
        return DATA_MISSING
    # Only a rule that weighs its own confirmation reads the confirmed record again; for the
    # others, the confirmations need not be written into a copy of the record.
    rereads = any(
        c.rule in SELF_CONFIRMING_RULES for c in assessed.policy.criteria if c.id in confirmable
    )
    assumed = (
        replace(
            record,
            confirmations=(
                *record.confirmations,
                *(
                    Confirmation(f"assumed/{cid}", cid, True, today, "uptake report")
                    for cid in confirmable
                ),
            ),
        )
        if rereads
        else record
    )
    again = outcome_if_confirmed(assessed, assumed, confirmable)
    return POTENTIALLY if again is Outcome.MEETS else DATA_MISSING


def _windows(spec_params: Mapping[str, Any]) -> Windows:
    event = spec_params.get("eventMonths")
    return Windows(int(spec_params["supplyMonths"]), None if event is None else int(event))


def technology_windows(policies: Iterable[Policy]) -> dict[str, Windows]:
    """For each technology kind a loaded policy reads, the windows of its "already using"
    criterion (absence not met, events of any age), else of its "uses" criterion: the same
    reading the policies' own prompts take."""
    found: dict[str, tuple[bool, Windows]] = {}
    for p in policies:
        for c in p.criteria:
            if c.rule != "technology-in-use":
                continue
            has = bool(c.params.get("absentNotMet"))
            kind = str(c.params["kind"])
            if kind not in found or (has and not found[kind][0]):
                found[kind] = (has, _windows(c.params))
    return {kind: w for kind, (_, w) in found.items()}


def kind_state(record: PatientRecord, kind: str, windows: Windows, today: date) -> str:
    """One kind of technology for one person: "in use", "held", "not current" or "no"."""
    state = read_technology(record, kind, today, windows).state
    return STATE_WORDS.get(state, "no")


@per_policy
def silencing_kinds(policy: Policy) -> tuple[tuple[str, Windows], ...]:
    """The technology kinds of the policy's ``silenceWhenMet`` criteria, with their windows."""
    specs = {c.id: c for c in policy.criteria}
    return tuple(
        (str(s.params["kind"]), _windows(s.params))
        for c in policy.info.presentation.get("silenceWhenMet", ())
        if (s := specs[c]).rule == "technology-in-use"
    )


def technology_state(
    policy: Policy,
    record: PatientRecord,
    today: date,
    state_of: Callable[[str, Windows], str] | None = None,
) -> str:
    """What the policy's own patient-view silence reads as 'already has it': the technology of
    a criterion in ``silenceWhenMet`` in use or held (e.g. a pump), else "on order" for an
    active order in its ``silenceWhenOrdered`` value set (an i-Port); "not current" when only
    an old record says so; otherwise "no". ``state_of``: ``kind_state`` of this record and
    day, already read (one person's rows read each kind once)."""
    words = policy.info.presentation
    states = [
        state_of(kind, windows) if state_of else kind_state(record, kind, windows, today)
        for kind, windows in silencing_kinds(policy)
    ]
    for state in ("in use", "held"):
        if state in states:
            return state
    ordered = words.get("silenceWhenOrdered")
    if ordered and record.orders_in(ordered["valueSet"]):
        return ON_ORDER
    return "not current" if "not current" in states else "no"


# -- one person ----------------------------------------------------------------------------------
def age_band(record: PatientRecord, today: date) -> str:
    """The band of the youngest age the recorded birth date allows ('unknown' without one, or
    with one that is not plausible: after today, or over the plausible age)."""
    if record.birth_date is None or record.birth_date.implausible_on(today):
        return "unknown"
    age = age_on(record.birth_date.latest, today)
    for lo, hi, label in AGE_BANDS:
        if lo <= age <= hi:
            return label
    return "65+"


def sex_group(patient: Mapping[str, Any] | None) -> str:
    """The patient's administrative gender code; 'unknown' when none is recorded; and
    NOT_A_GENDER_CODE for any other value (free text, a name, markup), which is never shown
    as a group of its own."""
    gender = patient.get("gender") if isinstance(patient, Mapping) else None
    if gender is None or gender == "":
        return "unknown"
    return gender if gender in ADMINISTRATIVE_GENDER else NOT_A_GENDER_CODE


def covered_systems(vsl: ValueSetLibrary) -> frozenset[str]:
    """Every code system some loaded value set has a code of."""
    return frozenset(c.system for vs in vsl.sets.values() for c in vs.concepts)


def uncovered_diagnoses(
    resources: Sequence[Any], record: PatientRecord, covered: frozenset[str]
) -> list[str]:
    """The code systems of the person's diagnoses (Conditions) that were not read — no
    finding came of them, neither by code nor by their words — and that are coded only in
    systems no value set covers (a type 1 diabetes in Read v2 with no words to match): a
    reason for being outside a cohort, or for 'data missing', that the report names."""
    read = {f.ref for f in record.findings}
    found: set[str] = set()
    for r in resources:
        if not isinstance(r, Mapping) or r.get("resourceType") != "Condition":
            continue
        if f"Condition/{r.get('id')}" in read:
            continue
        code = r.get("code")
        codings = code.get("coding") if isinstance(code, Mapping) else None
        systems = {
            normalise_system(c["system"])
            for c in codings or ()
            if isinstance(c, Mapping) and isinstance(c.get("system"), str) and c.get("code")
        }
        if systems and not systems & covered:
            found |= systems
    return sorted(found)


@dataclass(frozen=True)
class PersonContext:
    """What every row of a run shares."""

    today: date
    directory: places.PlaceDirectory
    deprivation: lookups.Deprivation | None  # both deprivation lookups, when given
    technology_data: bool  # the input holds device or procedure records
    # the windows each technology kind is read with (``technology_windows``)
    windows: Mapping[str, Windows] = field(default_factory=dict)
    extract_date: date | None = None  # who is alive and registered (default: ``today``)
    diagnosis_names: Mapping[str, str] = field(
        default_factory=dict
    )  # value set -> "type 1 diabetes"
    networks: Mapping[str, lookups.Network] = field(default_factory=dict)  # practice → PCN
    ethnic: ethnicity.EthnicCategories = field(default_factory=ethnicity.load_ethnic_categories)
    covered: frozenset[str] = frozenset()  # code systems the value sets cover


@dataclass(frozen=True)
class PersonView:
    """What a stratifier reads of one person (in a worker process)."""

    patient: Mapping[str, Any] | None
    record: PatientRecord
    practice: str | None  # the registered practice's ODS code
    ctx: PersonContext
    quintile: str = ""  # the deprivation quintile of the home postcode's small area


@dataclass(frozen=True)
class Stratifier:
    """A way of dividing a cohort into groups: its code (the MeasureReport's
    ``https://iport-cds.example.org/fhir/CodeSystem/uptake-stratifier``), the CSV column that
    holds each person's group, and the function that gives it ('' is unknown). A stratifier
    added to STRATIFIERS, with its column in PERSON_COLUMNS, is counted by the tally and
    reported in the MeasureReport."""

    code: str
    column: str
    of: Callable[[PersonView], str]


def network(p: PersonView) -> str:
    found = p.ctx.networks.get(p.practice) if p.practice else None
    return found.code if found else ""


STRATIFIERS = (
    Stratifier("practice", "practice_code", lambda p: p.practice or ""),
    Stratifier("pcn", "pcn_code", network),
    Stratifier("place", "place", lambda p: p.ctx.directory.place_of(p.practice)),
    Stratifier("age-band", "age_band", lambda p: age_band(p.record, p.ctx.today)),
    Stratifier("sex", "sex", lambda p: sex_group(p.patient)),
    Stratifier("ethnicity", "ethnic_group", lambda p: p.ctx.ethnic.group(p.patient)),
    Stratifier("imd-quintile", "deprivation_quintile", lambda p: p.quintile),
)


def person_rows(
    pid: str,
    resources: Sequence[Any],
    record: PatientRecord,
    policies: Sequence[Policy],
    criteria: Sequence[str],
    ctx: PersonContext,
) -> list[list[str]]:
    """One row per policy for this person: PERSON_COLUMNS, then ``criteria``."""
    patient = places.patient_resource(resources)
    registered = places.registration(patient)
    quintile, postcode_status = (
        ctx.deprivation.quintile_of(lookups.home_postcode(patient, ctx.today))
        if ctx.deprivation
        else ("", "")
    )
    view = PersonView(patient, record, registered.code, ctx, quintile)
    latest = max(record.hba1c, key=lambda h: (h.date, h.at or h.date), default=None)

    def known(state: str) -> str:
        return state if ctx.technology_data else "unknown"

    read: dict[tuple[str, int, int | None], str] = {}

    def state_of(kind: str, windows: Windows) -> str:
        key = (kind, windows.supply_months, windows.event_months)
        found = read.get(key)
        if found is None:
            found = read[key] = kind_state(record, kind, windows, ctx.today)
        return found

    cells: dict[str, str] = {s.column: s.of(view) for s in STRATIFIERS}
    for kind, column in TECHNOLOGY_COLUMNS.items():
        windows = ctx.windows.get(kind)
        state = state_of(kind, windows) if windows else "unknown"
        if state == "no" and record.orders_in(kind):
            state = ON_ORDER
        cells[column] = known(state)
    # A result beyond the analyser's range keeps its bound (">130"): it is not 130.
    cells["latest_hba1c_mmol_mol"] = latest.mmol_text.removesuffix(" mmol/mol") if latest else ""
    cells["latest_hba1c_date"] = latest.date.isoformat() if latest else ""
    cells["patient_ref"] = pid
    cells["evaluation_date"] = ctx.today.isoformat()
    cells["practice_name"] = registered.name
    cells["registration"] = registered.status
    cells["postcode_status"] = postcode_status
    cells["uncovered_code_systems"] = "|".join(uncovered_diagnoses(resources, record, ctx.covered))
    rows = []
    outside = cohort.outside_reason(patient or {}, ctx.extract_date or ctx.today)
    for policy in policies:
        # The row shows each criterion, the pathway and the outcome: the assessment, with no
        # reason, deciding criteria or decisive unknowns to explain.
        a = assess(policy, record, ctx.today)
        state = known(technology_state(policy, record, ctx.today, state_of))
        cells["policy_id"], cells["policy_version"] = policy.info.id, policy.info.version
        cells["cohort"] = outside or cohort.diagnosis_reason(policy, record, ctx.diagnosis_names)
        cells["outcome"] = a.outcome.value
        cells["band"] = ALREADY_USING if state in HAS_IT else band_of(a, record, ctx.today)
        cells["technology_in_use"] = state
        cells["pathway"] = a.chosen.id if a.chosen else ""
        results = a.results
        row = [cells[c] for c in PERSON_COLUMNS]
        row += [results[c].result._value_ if c in results else "" for c in criteria]
        rows.append(row)
    return rows


# -- the tally -----------------------------------------------------------------------------------
_COL = {name: i for i, name in enumerate(PERSON_COLUMNS)}
_STRATIFIER_COLS = tuple((s.column, _COL[s.column]) for s in STRATIFIERS)


_ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)


def _lower_first(title: str) -> str:
    """A title inside a sentence ("Already using an i-Port" → "already using an i-Port")."""
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


@dataclass
class UptakeTally:
    """Counts for the report and the MeasureReport, of each policy's cohort only: people per
    policy and outcome, and per policy × stratifier × group and outcome; and the people
    outside each cohort, by why."""

    technology_data: bool = True
    deprivation: bool = False
    networks: bool = False  # a practice → network table was given
    place_table: bool = False  # a practice → place table was given
    bands: Counter[tuple[str, str]] = field(default_factory=Counter)  # (policy, outcome)
    # (policy, stratifier column, group, outcome or "people")
    groups: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    outside: Counter[tuple[str, str]] = field(default_factory=Counter)  # (policy, why)
    cohorts: dict[str, str] = field(default_factory=dict)  # id -> "people with type 1 diabetes"
    in_use: dict[str, str] = field(default_factory=dict)  # id -> "already on an insulin pump"
    national: dict[str, bool] = field(default_factory=dict)  # id -> national guidance
    policies: dict[str, str] = field(default_factory=dict)  # id -> version
    names: dict[str, str] = field(default_factory=dict)  # id -> what commissioners call it
    # id -> who the gap is, in words: "not already on an insulin pump"
    not_in_use: dict[str, str] = field(default_factory=dict)
    coverage: dict[str, str] = field(default_factory=dict)  # id -> the places it covers
    area: str = ""  # every place the report covers, in words
    # (dimension, group) -> its name where the group is a code: a practice's, a network's
    group_names: dict[tuple[str, str], str] = field(default_factory=dict)
    # data quality, counted once per person: ("registration" | "postcode", status) and
    # ("unmapped-place" | "unmapped-network", practice code)
    quality: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (policy, code system): people with 'data missing' whose diagnoses are coded only in it
    uncovered: Counter[tuple[str, str]] = field(default_factory=Counter)

    def describe(
        self, policies: Iterable[Policy], directory: places.PlaceDirectory | None = None
    ) -> None:
        """Names, places covered and 'in use' wording from the policy files (and the place
        table: national guidance covers every place)."""
        policies = list(policies)
        every = places.local_places(p.info.places for p in policies) | set(
            directory.places if directory else ()
        )
        self.area = ", ".join(places.place_name(p) for p in sorted(every))
        for p in policies:
            self.coverage[p.info.id] = places.coverage_text(p.info.places, every)
            self.national[p.info.id] = not p.info.places or any(
                c in places.NATIONAL_SCOPES for c in p.info.places
            )
            words = p.info.presentation
            self.names[p.info.id] = str(words.get("sourceLabel") or p.info.title)
            # A criterion met when the technology is in use is titled as the state ("Already on
            # an insulin pump"); an order value set's ``means`` names the thing ("an i-Port on
            # order or in use").
            gap = [f"not {_lower_first(p.title_of(c))}" for c in words.get("silenceWhenMet", ())]
            if words.get("silenceWhenOrdered"):
                means = str(words["silenceWhenOrdered"]["means"])
                gap.append(f"no {_ARTICLE.sub('', means)}")
            self.not_in_use[p.info.id] = " and ".join(gap) or "not using the technology"
            using = [_lower_first(p.title_of(c)) for c in words.get("silenceWhenMet", ())]
            if words.get("silenceWhenOrdered"):
                using.append(f"have {words['silenceWhenOrdered']['means']}")
            self.in_use[p.info.id] = " or ".join(using) or "already use the technology"

    def describe_cohorts(self, policies: Iterable[Policy], names: Mapping[str, str]) -> None:
        """Each cohort in words, from the policy's diagnoses (``names``: value set → name)."""
        for p in policies:
            sets = cohort.diagnosis_sets(p)
            diagnoses = " or ".join(names.get(s, s) for s in sets) or "any diagnosis"
            self.cohorts[p.info.id] = f"people with {diagnoses}"

    def name_networks(self, networks: Mapping[str, lookups.Network]) -> None:
        for n in networks.values():
            self.group_names[("pcn_code", n.code)] = n.name

    def _count_quality(self, row: Sequence[str]) -> None:
        """One person's data-quality counts (from their first policy's row)."""
        practice = row[_COL["practice_code"]]
        self.quality[("registration", row[_COL["registration"]])] += 1
        if row[_COL["postcode_status"]]:
            self.quality[("postcode", row[_COL["postcode_status"]])] += 1
        if practice:
            name = row[_COL["practice_name"]]
            if name:
                self.group_names.setdefault(("practice_code", practice), name)
            if self.place_table and row[_COL["place"]] == places.UNKNOWN:
                self.quality[("unmapped-place", practice)] += 1
            if self.networks and not row[_COL["pcn_code"]]:
                self.quality[("unmapped-network", practice)] += 1

    def add(self, rows: Iterable[Sequence[str]]) -> None:
        for row in rows:
            policy, band = row[_COL["policy_id"]], row[_COL["band"]]
            self.policies.setdefault(policy, row[_COL["policy_version"]])
            if policy == next(iter(self.policies)):
                self._count_quality(row)
            why = row[_COL["cohort"]]
            systems = list(filter(None, row[_COL["uncovered_code_systems"]].split("|")))
            # A diagnosis written only in a code system no value set covers is not read: the
            # person falls outside the cohort for "no diagnosis", or into "data missing".
            if why not in (cohort.DECEASED, cohort.NOT_REGISTERED) and (
                why != cohort.IN_COHORT or band == DATA_MISSING
            ):
                for system in systems:
                    self.uncovered[(policy, system)] += 1
            if why != cohort.IN_COHORT:
                self.outside[(policy, why)] += 1
                continue
            self.bands[(policy, band)] += 1
            groups = self.groups
            for column, at in _STRATIFIER_COLS:
                value = row[at] or UNKNOWN_GROUP
                groups[(policy, column, value, "people")] += 1
                groups[(policy, column, value, band)] += 1

    def merge(self, other: UptakeTally) -> None:
        """Add the rows ``other`` added (a worker's, for the rows that follow these): the
        counts and names are then as if ``add`` had seen every row here, in order."""
        for name in ("bands", "groups", "outside", "quality", "uncovered"):
            getattr(self, name).update(getattr(other, name))
        for policy, version in other.policies.items():
            self.policies.setdefault(policy, version)
        for group, name in other.group_names.items():
            self.group_names.setdefault(group, name)

    def people(self, policy: str) -> int:
        """The policy's cohort."""
        return sum(n for (p, _), n in self.bands.items() if p == policy)

    def figures(self, policy: str) -> Figures:
        return Figures(self.people(policy), {b: self.bands[(policy, b)] for b in OUTCOMES})

    def figures_json(self) -> dict[str, Any]:
        """Every policy's exact figures, for the summary JSON (a later run's ``--previous``)."""
        return {
            p: {"cohort": f.cohort, "outcomes": dict(f.outcomes)}
            for p in self.policies
            for f in (self.figures(p),)
        }

    def groups_of(self, policy: str, column: str) -> list[str]:
        return sorted(
            {v for (p, d, v, _) in self.groups if p == policy and d == column},
            key=lambda v: (v == UNKNOWN_GROUP, v),
        )

    def group_figures(self, policy: str, column: str, group: str) -> Figures:
        return Figures(
            self.groups[(policy, column, group, "people")],
            {b: self.groups[(policy, column, group, b)] for b in OUTCOMES},
        )

    def breakdown(self, policy: str, dim: str) -> list[dict[str, Any]]:
        out = []
        for v in self.groups_of(policy, dim):
            f = self.group_figures(policy, dim, v)
            out.append(
                {
                    "group": v,
                    "name": self.group_names.get((dim, v), ""),
                    "people": f.cohort,
                    "meets": f.meets,
                    "potentially": f.outcomes[POTENTIALLY],
                    "gap": f.meets if self.technology_data else None,
                    "gapPer1000": round(1000 * f.meets / f.cohort, 1)
                    if f.cohort and self.technology_data
                    else None,
                }
            )
        return out
