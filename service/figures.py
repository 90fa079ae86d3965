"""The dashboard's summary and access figures as JSON: ``store.repository.Summary`` (counts
grouped and percentiles computed in SQL) and the access counts, shaped into the camelCase
object ``/analytics.json`` serves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

from store.repository import NO_DECISION, OUTCOMES, Filter, Percentiles, Summary

NO_REASON = "(no reason given)"


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percentiles_json(p: Percentiles) -> dict[str, Any]:
    out: dict[str, Any] = {"count": p.count}
    out.update({f"p{k}": None if v is None else round(v, 2) for k, v in p.at.items()})
    out["max"] = None if p.max is None else round(p.max, 2)
    return out


def access_json(rows: Iterable[tuple[int, str, int]]) -> dict[str, Any]:
    """Calls to the hooks, answered and refused: by status, and refusals by why."""
    by_status: dict[str, int] = defaultdict(int)
    refusals: dict[str, int] = defaultdict(int)
    for status, outcome, n in rows:
        by_status[str(status)] += n
        if status >= 400:
            refusals[outcome] += n
    return {
        "calls": sum(by_status.values()),
        "byStatus": dict(sorted(by_status.items())),
        "refusals": dict(sorted(refusals.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def summary_json(s: Summary, f: Filter) -> dict[str, Any]:
    """Every summary figure the dashboard shows, for the days and service in ``f``."""
    per_day: dict[date, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"cards": defaultdict(int), "evaluations": defaultdict(int)}
    )
    evaluations: dict[str, int] = defaultdict(int)
    cards: dict[str, int] = defaultdict(int)
    for day, outcome, n, n_cards in s.days:
        key = outcome or NO_DECISION
        per_day[day]["evaluations"][key] += n
        per_day[day]["cards"][key] += n_cards
        evaluations[key] += n
        cards[key] += n_cards

    accepted = sum(n for o, _, _, n in s.feedback if o == "accepted")
    overridden = sum(n for o, _, _, n in s.feedback if o == "overridden")
    reasons: dict[str, dict[str, Any]] = {}
    for outcome, code, display, n in s.feedback:
        if outcome != "overridden":
            continue
        key = code or NO_REASON
        entry = reasons.setdefault(key, {"code": code, "display": display or key, "count": 0})
        entry["count"] += n

    by_card_outcome: dict[str, dict[str, int]] = {}
    for card_outcome, fb_outcome, n in s.feedback_by_card:
        counts = by_card_outcome.setdefault(
            card_outcome or NO_DECISION, {"accepted": 0, "overridden": 0}
        )
        counts[fb_outcome] = counts.get(fb_outcome, 0) + n

    blocking: dict[str, dict[str, int]] = {}
    for cid, result, n in s.blocking:
        by_result = blocking.setdefault(cid, {"not-met": 0, "unknown": 0})
        by_result[result] = by_result.get(result, 0) + n
    blocked = sum(evaluations.get(o, 0) for o in OUTCOMES[1:])

    n_cards = sum(cards.values())
    n_feedback = accepted + overridden
    pre = s.prefetch
    return {
        "range": {"from": f.start.isoformat(), "to": f.end.isoformat()},
        "service": f.service_id,
        "totals": {
            "evaluations": sum(evaluations.values()),
            "cards": n_cards,
            "feedback": n_feedback,
            "accepted": accepted,
            "overridden": overridden,
            "overrideRate": rate(overridden, n_feedback),
            "feedbackRate": rate(n_feedback, n_cards),
        },
        "evaluationsByOutcome": {o: evaluations.get(o, 0) for o in (*OUTCOMES, NO_DECISION)},
        "cardsByOutcome": {o: cards.get(o, 0) for o in OUTCOMES},
        "cardsPerDay": [
            {
                "day": d.isoformat(),
                **{o: per_day[d]["cards"].get(o, 0) for o in OUTCOMES},
                "evaluations": sum(per_day[d]["evaluations"].values()),
            }
            for d in f.days()
        ],
        "overrideReasons": sorted(reasons.values(), key=lambda r: (-r["count"], str(r["code"]))),
        "feedbackByCardOutcome": {
            k: {**v, "overrideRate": rate(v.get("overridden", 0), sum(v.values()))}
            for k, v in sorted(by_card_outcome.items())
        },
        "blockingCriteria": sorted(
            (
                {
                    "id": cid,
                    "notMet": v.get("not-met", 0),
                    "unknown": v.get("unknown", 0),
                    "total": v.get("not-met", 0) + v.get("unknown", 0),
                    "share": rate(v.get("not-met", 0) + v.get("unknown", 0), blocked),
                }
                for cid, v in blocking.items()
            ),
            key=lambda b: (-int(b["total"]), str(b["id"])),
        ),
        "notEligibleEvaluations": blocked,
        "prefetch": {
            "evaluations": pre.decided,
            "keysPrefetched": pre.keys_prefetched,
            "keysFetched": pre.keys_fetched,
            "hitRate": rate(pre.keys_prefetched, pre.keys_prefetched + pre.keys_fetched),
            "fullyPrefetched": pre.fully_prefetched,
            "fullyPrefetchedRate": rate(pre.fully_prefetched, pre.decided),
        },
        "latencyMs": percentiles_json(s.latency_ms),
        "fhirFetchMs": percentiles_json(s.fhir_fetch_ms),
    }
