"""The run's figures as a FHIR R4 MeasureReport (summary), so a regional or national team can
aggregate runs with standard tools: one group per policy, the cohort and the five outcomes as
populations, uptake as the measure score, and the same per group of each stratifier
(practice, place, age band, sex, deprivation quintile).

Every count is the reported one (suppressed or rounded by the deployment's disclosure
control); a suppressed count has no value, only a data-absent-reason of ``masked``, and a
score resting on one is left out the same way. Without device or procedure records in the
input, "already using" is ``unknown`` and there is no score. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import places
from disclosure import Disclosure
from population.figures import ALREADY_USING, OUTCOMES, Figures
from population.uptake import STRATIFIERS, UNKNOWN_GROUP, UptakeTally

POLICY_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/uptake-policy"
POPULATION_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/uptake-population"
STRATIFIER_SYSTEM = "https://iport-cds.example.org/fhir/CodeSystem/uptake-stratifier"
MEASURE = "https://iport-cds.example.org/fhir/Measure/technology-uptake"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
POPULATION_CODES = {
    "cohort": "cohort",
    "already using": "already-using",
    "meets": "meets",
    "potentially eligible": "potentially-eligible",
    "data missing": "data-missing",
    "does not meet": "does-not-meet",
}


def _absent(reason: str) -> dict[str, Any]:
    return {"extension": [{"url": DATA_ABSENT, "valueCode": reason}]}


def _population(code: str, shown: int | str | None) -> dict[str, Any]:
    """A population with its reported count: a suppressed one ``masked``; None, one the
    input cannot measure (already using, without device or procedure records), ``unknown``."""
    out: dict[str, Any] = {
        "code": {"coding": [{"system": POPULATION_SYSTEM, "code": POPULATION_CODES[code]}]}
    }
    if isinstance(shown, int):
        out["count"] = shown
    else:
        out["_count"] = _absent("masked" if isinstance(shown, str) else "unknown")
    return out


def _scored(figures: Figures, d: Disclosure, technology_data: bool) -> dict[str, Any]:
    """Populations and the uptake score of one group or stratum."""
    shown = figures.shown(d)
    if not technology_data:  # who already uses it cannot be measured: no score either
        shown["outcomes"][ALREADY_USING] = None
    out: dict[str, Any] = {
        "population": [
            _population("cohort", shown["cohort"]),
            *(_population(o, shown["outcomes"][o]) for o in OUTCOMES),
        ]
    }
    uptake = shown["uptake"]["value"]
    if not technology_data:
        return out
    if isinstance(uptake, float):
        out["measureScore"] = {"value": uptake}
    elif isinstance(uptake, str):
        out["measureScore"] = {"_value": _absent("masked")}
    return out


# Stratifiers whose groups are organisations: each stratum is coded with its ODS code, so runs
# of different areas aggregate by organisation, and named in its text.
ORGANISATION_COLUMNS = frozenset({"practice_code", "pcn_code"})


def _stratum_value(tally: UptakeTally, column: str, value: str) -> dict[str, Any]:
    if column not in ORGANISATION_COLUMNS or value == UNKNOWN_GROUP:
        return {"text": value}
    name = tally.group_names.get((column, value))
    coding = {"system": places.ODS_SYSTEM, "code": value, **({"display": name} if name else {})}
    return {"coding": [coding], "text": f"{value} {name}" if name else value}


def measure_report(
    tally: UptakeTally, d: Disclosure, *, evaluated: str, extract_date: str
) -> dict[str, Any]:
    """The MeasureReport (JSON) of a run's tally; dates as ISO 8601 days."""
    groups = []
    for policy in tally.policies:
        group: dict[str, Any] = {
            "code": {
                "coding": [{"system": POLICY_SYSTEM, "code": policy}],
                "text": tally.names.get(policy, policy),
            },
            **_scored(tally.figures(policy), d, tally.technology_data),
        }
        strata = []
        for s in STRATIFIERS:
            rows = [
                {
                    "value": _stratum_value(tally, s.column, value),
                    **_scored(
                        tally.group_figures(policy, s.column, value), d, tally.technology_data
                    ),
                }
                for value in tally.groups_of(policy, s.column)
            ]
            strata.append(
                {
                    "code": [{"coding": [{"system": STRATIFIER_SYSTEM, "code": s.code}]}],
                    "stratum": rows,
                }
            )
        group["stratifier"] = strata
        groups.append(group)
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "date": evaluated,
        "period": {"start": extract_date, "end": extract_date},
        "improvementNotation": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
                    "code": "increase",
                }
            ]
        },
        "group": groups,
    }
