"""The uptake-gap report: one self-contained HTML file (Chart.js, the dashboard's vendored copy,
inlined; every chart beside a table of its numbers) from a population run's tally. It is an
aggregate for commissioners: every count goes through the deployment's disclosure control
(``disclosure``; SMALL_NUMBER_THRESHOLD), unlike the per-person CSV beside it."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date
from importlib import resources
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape

import places
import spreadsheet
from disclosure import Disclosure, Share
from places import lookups
from population.engine import PopulationSummary
from population.figures import ALREADY_USING, OUTCOMES, Figures, count_text, percent_text
from population.headline import headlines
from population.uptake import BANDS, DIMENSIONS, UptakeTally

DIMENSION_TITLES = {
    "practice_code": "practice",
    "pcn_code": "primary care network",
    "place": "place",
    "age_band": "age band",
    "sex": "sex",
    "ethnic_group": "ethnic group (NHS ethnic category)",
    "deprivation_quintile": "deprivation quintile of the small area (1 = most deprived)",
}
# Dimensions with a group per organisation (a region has hundreds of practices) are tables
# only: a chart of that many bars cannot be read.
TABLE_ONLY = frozenset({"practice_code", "pcn_code"})
# Code systems a diagnosis may be written in that the value sets may not cover, by name.
SYSTEM_NAMES = {
    "http://read.info/readv2": "Read v2",
    "http://read.info/ctv3": "CTV3 (Read v3)",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD-9-CM",
}
UNMAPPED_LISTED = 50  # unmapped practice codes listed, most people first


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("population", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["count"] = count_text
    env.filters["percent"] = _share_text
    env.filters["rate"] = percent_text
    return env


def _share_text(share: Share) -> str:
    return share if isinstance(share, str) else "–" if share is None else f"{100 * share:.1f}%"


def _per_1000(d: Disclosure, part: int, whole: int) -> float | str | None:
    share = d.share(part, whole, digits=6)
    return round(1000 * share, 1) if isinstance(share, float) else share


def _dashboard_js(name: str) -> str:
    """A script the report shares with the dashboard (Chart.js, the series styles), inlined."""
    return (resources.files("dashboard") / "static" / name).read_text("utf-8")


def report_data(tally: UptakeTally, d: Disclosure) -> list[dict[str, Any]]:
    """Per policy: bands and the gap by each dimension, as the page draws them; every count,
    share and rate through the disclosure control ``d``."""
    policies = list(tally.policies)
    out = []
    for pid in policies:
        people = tally.people(pid)
        dims = []
        for dim in DIMENSIONS:
            if (dim == "deprivation_quintile" and not tally.deprivation) or (
                dim == "pcn_code" and not tally.networks
            ):
                continue
            rows = group_rows(tally, pid, dim, d)
            dims.append(
                {
                    "id": dim,
                    "title": DIMENSION_TITLES[dim],
                    "rows": rows,
                    "chart": dim not in TABLE_ONLY,
                    "named": dim in TABLE_ONLY,
                }
            )
        out.append(
            {
                "id": pid,
                "figures": tally.figures(pid).shown(d),
                "cohort": tally.cohorts.get(pid, "people"),
                "outside": [
                    {"why": why, "people": d.count(n)}
                    for (p, why), n in sorted(tally.outside.items())
                    if p == pid
                ],
                "name": tally.names.get(pid, pid),
                "version": tally.policies[pid],
                "notInUse": tally.not_in_use.get(pid, "not using the technology"),
                "coverage": tally.coverage.get(pid, ""),
                "people": d.count(people),
                "bands": [
                    {
                        "band": b,
                        "people": d.count(tally.bands[(pid, b)]),
                        "share": d.share(tally.bands[(pid, b)], people),
                    }
                    for b in BANDS
                ],
                "dimensions": dims,
            }
        )
    return out


def group_rows(tally: UptakeTally, policy: str, dim: str, d: Disclosure) -> list[dict[str, Any]]:
    """The policy's figures for each group of ``dim`` (the cohort, the five outcomes, uptake
    with its interval, the gap per 1,000) as the report, the tables CSV and the MeasureReport
    show them; ``people``, ``meets`` and ``gapPer1000`` are what the group's chart draws."""
    out = []
    for group in tally.groups_of(policy, dim):
        shown = tally.group_figures(policy, dim, group).shown(d)
        out.append(
            {
                "group": places.place_name(group) if dim == "place" else group,
                "name": tally.group_names.get((dim, group), ""),
                "figures": shown,
                "people": shown["cohort"],
                "meets": shown["gap"],
                "gapPer1000": shown["gapPer1000"]["value"] if tally.technology_data else None,
            }
        )
    return out


TABLE_COLUMNS = (
    "policy_id",
    "table",
    "group",
    "name",
    "cohort",
    "already using",
    "meets",
    "potentially eligible",
    "data missing",
    "does not meet",
    "uptake",
    "uptake_low_95",
    "uptake_high_95",
    "gap",
    "gap_per_1000",
)


def tables_csv(tally: UptakeTally, d: Disclosure) -> str:
    """Every table of the report as one CSV: a row per policy (table ``policy``) and per group
    of each table (practice, network, place, age band, sex, ethnic group, deprivation
    quintile), with the figures as the report shows them (disclosure-controlled, in the same
    words); spreadsheet-safe cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)

    measured = tally.technology_data  # else who already uses it is not known: cells empty

    def row(policy: str, table: str, group: str, name: str, f: dict[str, Any]) -> list[Any]:
        uptake = f["uptake"] if measured else {}
        per_1000 = f["gapPer1000"]["value"] if measured else None
        return [
            policy,
            table,
            group,
            name,
            f["cohort"],
            *(f["outcomes"][o] if measured or o != ALREADY_USING else "" for o in OUTCOMES),
            *("" if uptake.get(k) is None else uptake[k] for k in ("value", "low", "high")),
            f["gap"] if measured else "",
            "" if per_1000 is None else per_1000,
        ]

    for pid in tally.policies:
        policy = tally.figures(pid).shown(d)
        writer.writerow(spreadsheet.row(row(pid, "policy", "", tally.names.get(pid, pid), policy)))
        for dim in DIMENSIONS:
            for r in group_rows(tally, pid, dim, d):
                writer.writerow(spreadsheet.row(row(pid, dim, r["group"], r["name"], r["figures"])))
    return buffer.getvalue()


def quality_data(summary: PopulationSummary, d: Disclosure) -> dict[str, Any]:
    """The data-quality section: what in the input could not be read or placed, with counts
    (people through the disclosure control; lines and records as they are, being no people)."""
    tally = summary.tally
    q = tally.quality

    def unmapped(kind: str) -> dict[str, Any]:
        codes = sorted(
            ((c, n) for (k, c), n in q.items() if k == kind), key=lambda x: (-x[1], x[0])
        )
        return {
            "practices": len(codes),
            "people": d.count(sum(n for _, n in codes)),
            "listed": [{"code": c, "people": d.count(n)} for c, n in codes[:UNMAPPED_LISTED]],
            "more": max(0, len(codes) - UNMAPPED_LISTED),
        }

    uncovered = [
        {
            "policy": tally.names.get(pid, pid),
            "system": SYSTEM_NAMES.get(system, system),
            "people": d.count(n),
        }
        for (pid, system), n in sorted(tally.uncovered.items())
    ]
    postcode = [
        {"status": status, "people": d.count(q[("postcode", status)])}
        for status in (
            lookups.POSTCODE_NONE,
            lookups.POSTCODE_INVALID,
            lookups.POSTCODE_UNMATCHED,
            lookups.AREA_UNRATED,
        )
    ]
    return {
        "skippedLines": summary.skipped_lines,
        "unassignedResources": summary.unassigned_resources,
        "repeatedRecords": summary.repeated_patient_records,
        # Patient ids and the patients records name stand for people: disclosure-controlled
        "merged": d.count(summary.merged_patients),
        "noPatientIds": d.count(summary.no_patient_ids),
        "noPatientResources": summary.no_patient_resources,
        "noCode": d.count(q[("registration", places.PRACTICE_NO_CODE)]),
        "noPractice": d.count(q[("registration", places.PRACTICE_NONE)]),
        "unmappedPlace": unmapped("unmapped-place") if tally.place_table else None,
        "unmappedNetwork": unmapped("unmapped-network") if tally.networks else None,
        "postcode": postcode if tally.deprivation else None,
        "uncovered": uncovered,
    }


# JSON inside a <script> element is read by the HTML parser first: "</script>" ends it and
# "<!--<script>" makes the parser skip the real end tag. With <, > and & written as JSON
# escapes no label can do either, and JSON.parse gives the same text back.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside an HTML <script> element, whatever its strings."""
    return orjson.dumps(data).decode("utf-8").translate(_SCRIPT_SAFE)


def render_report(
    summary: PopulationSummary,
    *,
    today: date,
    source: str,
    disclosure: Disclosure,
    previous: Mapping[str, Figures] | None = None,
    previous_extract: str = "",
) -> str:
    """The report; with ``previous`` (``headline.previous_figures`` of the previous run's
    summary JSON), the change in uptake and gap since then."""
    tally = summary.tally
    data = report_data(tally, disclosure)
    return (
        _env()
        .get_template("uptake_report.html")
        .render(
            today=today.isoformat(),
            source=source,
            summary=summary,
            people=disclosure.count(summary.patients),
            disclosure_note=disclosure.note(),
            tally=tally,
            headlines=headlines(tally, disclosure, previous, previous_extract),
            policies=data,
            quality=quality_data(summary, disclosure),
            data_json=script_json(data),
            chart_js=_dashboard_js("vendor/chart.umd.min.js"),
            series_js=_dashboard_js("series.js"),
        )
    )
