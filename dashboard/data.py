"""The commissioners' figures beyond call counts, shaped for the page and ``/analytics.json``:
people (not calls) by policy, pathway and place; the evaluation trend in day, week or month
bins; feedback split by whether the card offered anything to accept; blocking criteria as a
share of the evaluations where they could block. Also the place directory of a deployment
and the self-service CSV export (``GET /analytics/export.csv``).

The SQL is in ``store.people``; here are names, percentages and bins.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask

import places
import spreadsheet
import store
from disclosure import Count, Disclosure, rank
from facts.london import LONDON
from policy import Policy, outcome_words
from policy.outcome_words import capitalised
from service.evaluation import Runtime
from store import people

OUTCOMES = ("meets-criteria", "does-not-meet-criteria", "insufficient-information")
# The words of the uptake report and every other commissioner-facing output.
OUTCOME_NAMES = {code: capitalised(word) for code, word in outcome_words.BY_OUTCOME.items()}
DAILY_UP_TO_DAYS = 60
WEEKLY_UP_TO_DAYS = 183


# -- configuration ------------------------------------------------------------------------------
def load_places(app: Flask, runtime: Runtime) -> places.PlaceDirectory:
    """The deployment's place directory (PLACE_BY_PRACTICE_FILE, PLACE_BY_TENANT), checked
    against the policies' places at start-up; PlaceTableError names the file and line."""
    return places.load_directory(
        app.config.get("PLACE_BY_PRACTICE_FILE"),
        app.config.get("PLACE_BY_TENANT"),
        _local_places(runtime),
    )


def _local_places(runtime: Runtime) -> frozenset[str]:
    return places.local_places(p.info.places for p in runtime.policies.values())


def place_keys(runtime: Runtime, directory: places.PlaceDirectory) -> list[str]:
    """Every place a filter may name: the policies' places (a national policy's nation is not
    a place), the directory's, and unknown."""
    return [*sorted(_local_places(runtime) | set(directory.places)), places.UNKNOWN]


def coverage(runtime: Runtime, directory: places.PlaceDirectory) -> list[tuple[str, str]]:
    """Each policy's name and the places it covers in words (national guidance: every place)."""
    every = place_keys(runtime, directory)[:-1]
    return [
        (policy_name(p), places.coverage_text(p.info.places, every))
        for _, p in sorted(runtime.policies.items())
    ]


# -- names --------------------------------------------------------------------------------------
def policy_by_record_id(runtime: Runtime) -> dict[str, Policy]:
    """Policies by the id the audit trail records (the policy file's metadata id)."""
    return {p.info.id: p for p in runtime.policies.values()}


def policy_name(policy: Policy) -> str:
    return str(policy.info.presentation.get("sourceLabel") or policy.info.title)


def service_names(runtime: Runtime) -> dict[str, str]:
    """A service id → what a commissioner would call it (title and the moment it runs)."""
    return {
        s.id: f"{policy_name(runtime.policies[s.policy])}: {s.hook.replace('-', ' ')}"
        for s in runtime.services.values()
    }


def pathway_name(policy: Policy | None, pathway: str | None) -> str:
    if pathway is None:
        return "No pathway identified"
    for p in policy.pathways if policy else ():
        if p.id == pathway:
            return p.title[:1].upper() + p.title[1:]
    return pathway


# -- figures ------------------------------------------------------------------------------------
# Every count below goes out through the disclosure control ``d``: a row's total is summed
# from the exact counts and then rounded like any other count.
def _outcome_counts(counts: Mapping[str, int], d: Disclosure) -> dict[str, Count]:
    exact = {o: int(counts.get(o, 0)) for o in OUTCOMES}
    return {**{o: d.count(n) for o, n in exact.items()}, "total": d.count(sum(exact.values()))}


def figures(
    s: store.AuditStore, f: store.Filter, runtime: Runtime, d: Disclosure
) -> dict[str, Any]:
    """The figures this module adds to ``/analytics.json``."""
    with s.engine.connect() as conn, conn.begin():
        assessed = people.people_assessed(conn, f)
        latest = people.latest_outcomes(conn, f)
        by_place = people.evaluations_by_place(conn, f)
        per_day = people.evaluations_per_day(conn, f)
        offer = people.feedback_by_offer(conn, f)
        blocking_rows = people.blocking(conn, f)
    policies = policy_by_record_id(runtime)
    return {
        "people": _people(assessed, latest, policies, d),
        "evaluationsByPlace": [
            {"place": p, "name": places.place_name(p), **_outcome_counts(by_place[p], d)}
            for p in sorted(by_place, key=_place_order)
        ],
        "trend": trend(f, per_day, d),
        "feedbackByOffer": {
            "withSuggestions": _feedback_split(offer[True], d),
            "withoutSuggestions": _feedback_split(offer[False], d),
        },
        "blockingByPolicy": _blocking(blocking_rows, policies, d),
        "names": {
            "services": service_names(runtime),
            "policies": {pid: policy_name(p) for pid, p in policies.items()},
            "outcomes": OUTCOME_NAMES,
            # each outcome's word, which names its style in every chart (series.js)
            "outcomeSeries": outcome_words.BY_OUTCOME,
            "places": {p: places.place_name(p) for p in {*by_place, *(r.place for r in latest)}},
        },
    }


def _place_order(place: str) -> tuple[bool, str]:
    return (place == places.UNKNOWN, place)


def _people(
    assessed: int, rows: Iterable[people.PeopleRow], policies: Mapping[str, Policy], d: Disclosure
) -> dict[str, Any]:
    by_policy: dict[str, dict[str | None, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    by_place: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        by_policy[r.policy_id][r.pathway][r.outcome] += r.people
        by_place[(r.policy_id, r.place)][r.outcome] += r.people
    out_policies = []
    for pid in sorted(by_policy):
        policy = policies.get(pid)
        pathways = [
            {"pathway": pw, "name": pathway_name(policy, pw), **_outcome_counts(counts, d)}
            for pw, counts in sorted(by_policy[pid].items(), key=lambda kv: str(kv[0]))
        ]
        total: dict[str, int] = defaultdict(int)
        for counts in by_policy[pid].values():
            for o in OUTCOMES:
                total[o] += counts.get(o, 0)
        out_policies.append(
            {
                "policy": pid,
                "name": policy_name(policy) if policy else pid,
                **_outcome_counts(total, d),
                "pathways": pathways,
            }
        )
    return {
        "assessed": d.count(assessed),
        "byPolicy": out_policies,
        "byPlace": [
            {
                "policy": pid,
                "policyName": policy_name(policies[pid]) if pid in policies else pid,
                "place": pl,
                "name": places.place_name(pl),
                **_outcome_counts(counts, d),
            }
            for (pid, pl), counts in sorted(
                by_place.items(), key=lambda kv: (kv[0][0], *_place_order(kv[0][1]))
            )
        ],
    }


def _feedback_split(counts: Mapping[str, int], d: Disclosure) -> dict[str, Any]:
    accepted, overridden = counts.get("accepted", 0), counts.get("overridden", 0)
    return {
        "accepted": d.count(accepted),
        "overridden": d.count(overridden),
        "overrideRate": d.share(overridden, accepted + overridden),
    }


def _blocking(
    rows: Iterable[people.BlockingRow], policies: Mapping[str, Policy], d: Disclosure
) -> list[dict[str, Any]]:
    """Per policy, each criterion the deciding pathway read, as a share of those evaluations
    where it was not met or unknown and the outcome was not 'meets'. Diagnosis gates (the
    pathways' diagnosis criteria) are left out: a type 2 patient 'not meeting' type 1 diabetes
    is the pathway choice, not a barrier."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        policy = policies.get(r.policy_id)
        gates = {p.diagnosis for p in policy.pathways} if policy else set()
        if r.criterion_id in gates:
            continue
        blocked = r.not_met + r.unknown
        if not blocked:
            continue
        title = r.criterion_id
        if policy and r.criterion_id in policy.criterion_ids:
            title = policy.title_of(r.criterion_id)
        grouped[r.policy_id].append(
            {
                "id": r.criterion_id,
                "title": title,
                "evaluations": d.count(r.evaluations),
                "notMet": d.count(r.not_met),
                "unknown": d.count(r.unknown),
                "blocked": d.count(blocked),
                "share": d.share(blocked, r.evaluations),
                "notMetShare": d.share(r.not_met, r.evaluations),
                "unknownShare": d.share(r.unknown, r.evaluations),
            }
        )
    return [
        {
            "policy": pid,
            "name": policy_name(policies[pid]) if pid in policies else pid,
            "criteria": sorted(crit, key=lambda c: (-rank(c["share"]), c["id"])),
        }
        for pid, crit in sorted(grouped.items())
    ]


def bin_of(day: date, size: str) -> date:
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    return day


def trend(
    f: store.Filter, per_day: Mapping[date, Mapping[str, int]], d: Disclosure
) -> dict[str, Any]:
    """Evaluations by outcome (and cards) per day up to 60 days, per week (from Monday) up to
    six months, per month beyond; each bin's counts through the disclosure control."""
    span = (f.end - f.start).days + 1
    size = "day" if span <= DAILY_UP_TO_DAYS else "week" if span <= WEEKLY_UP_TO_DAYS else "month"
    bins: dict[date, dict[str, int]] = {}
    for day in f.days():
        bins.setdefault(bin_of(day, size), defaultdict(int))
    for day, counts in per_day.items():
        target = bins[bin_of(day, size)]
        for k, n in counts.items():
            target[k] += n
    rows = []
    for start, counts in sorted(bins.items()):
        row: dict[str, Any] = {"start": start.isoformat(), "label": _bin_label(start, size)}
        row.update({o: d.count(int(counts.get(o, 0))) for o in (*OUTCOMES, "no-decision")})
        row["evaluations"] = d.count(sum(int(counts.get(o, 0)) for o in (*OUTCOMES, "no-decision")))
        row["cards"] = d.count(int(counts.get("cards", 0)))
        rows.append(row)
    return {"bin": size, "rows": rows}


def _bin_label(start: date, size: str) -> str:
    if size == "month":
        return start.strftime("%b %Y")
    if size == "week":
        return f"w/c {start.day} {start.strftime('%b %Y')}"
    return f"{start.day} {start.strftime('%b')}"


# -- export -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CriterionColumn:
    id: str
    header: str


def criterion_columns(runtime: Runtime) -> list[CriterionColumn]:
    """One column per criterion of every enabled policy (a shared criterion, once)."""
    seen: dict[str, CriterionColumn] = {}
    for policy in runtime.policies.values():
        for cid in policy.criterion_ids:
            seen.setdefault(cid, CriterionColumn(cid, f"criterion: {policy.title_of(cid)}"))
    return list(seen.values())


def excel_time(moment: datetime | None) -> str:
    """A timestamp as Europe/London local time, 'YYYY-MM-DD HH:MM:SS': Excel and LibreOffice
    read it as a date-time (ISO text with 'T' and an offset they keep as text)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # stored as UTC; SQLite returns it naive
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S")


EVALUATION_COLUMNS = (
    "recorded (Europe/London)",
    "service",
    "policy",
    "policy version",
    "pathway",
    "outcome",
    "place",
    "practice (ODS)",
    "person (hash)",
    "cards",
)
FEEDBACK_COLUMNS = (
    "feedback at (Europe/London)",
    "received (Europe/London)",
    "service",
    "policy",
    "policy version",
    "pathway",
    "card outcome",
    "place",
    "feedback",
    "accepted suggestions (criteria)",
    "override reason",
    "comment",
    "comment length",
)


@dataclass(frozen=True)
class _Names:
    services: Mapping[str, str]
    policies: Mapping[str, Policy]

    @classmethod
    def of(cls, runtime: Runtime) -> _Names:
        return cls(service_names(runtime), policy_by_record_id(runtime))

    def describe(
        self, r: Mapping[str, Any], outcome: str | None
    ) -> tuple[Policy | None, list[Any]]:
        """The policy of a row and its named columns: service, policy, version, pathway,
        outcome, place."""
        policy = self.policies.get(r["policy_id"] or "")
        return policy, [
            self.services.get(r["service_id"], r["service_id"]),
            policy_name(policy) if policy else (r["policy_id"] or ""),
            r["policy_version"] or "",
            pathway_name(policy, r["pathway"]) if r["pathway"] else "",
            OUTCOME_NAMES.get(outcome or "no-decision", outcome),
            places.place_name(r["place"]),
        ]


def evaluation_rows(
    rows: Iterable[Mapping[str, Any]], runtime: Runtime, columns: list[CriterionColumn]
) -> Iterator[list[Any]]:
    names = _Names.of(runtime)
    for r in rows:
        _, described = names.describe(r, r["outcome"])
        yield [
            excel_time(r["recorded_at"]),
            *described,
            r["practice_code"] or "",
            r["patient_hash"],
            r["card_count"],
            *(r["criteria"].get(c.id, "") for c in columns),
        ]


def _criterion_title(policy: Policy | None, cid: str) -> str:
    if cid == "referral":
        return "Draft referral"
    if policy and cid in policy.criterion_ids:
        return policy.title_of(cid)
    return cid


def feedback_rows(rows: Iterable[Mapping[str, Any]], runtime: Runtime) -> Iterator[list[Any]]:
    names = _Names.of(runtime)
    for r in rows:
        policy, described = names.describe(r, r["card_outcome"])
        yield [
            excel_time(r["outcome_at"]),
            excel_time(r["received_at"]),
            *described,
            r["outcome"],
            "; ".join(_criterion_title(policy, c) for c in r["accepted_criteria"]),
            r["reason_display"] or r["reason_code"] or "",
            r["user_comment"] or "",
            r["user_comment_chars"] or "",
        ]


def csv_stream(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[bytes]:
    """UTF-8 with a byte-order mark (Excel then reads non-ASCII text right), CRLF lines,
    formula-looking text quoted; streamed row by row."""
    yield codecs.BOM_UTF8
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(spreadsheet.row(header))
    for row in rows:
        writer.writerow(spreadsheet.row(row))
        if buf.tell() > 64_000:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")
