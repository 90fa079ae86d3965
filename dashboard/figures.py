"""The dashboard's summary and access figures as JSON: ``store.repository.Summary`` (counts
grouped and percentiles computed in SQL) and the access counts, shaped into the camelCase
object ``/analytics.json`` serves. Every count, share and statistic goes out through the
deployment's disclosure control (``disclosure.Disclosure``): small numbers suppressed, other
counts rounded, shares from the rounded counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

from disclosure import Disclosure, rank
from store.repository import NO_DECISION, OUTCOMES, Filter, Percentiles, Summary

NO_REASON = "(no reason given)"


def percentiles_json(p: Percentiles, d: Disclosure) -> dict[str, Any]:
    """Percentiles over ``p.count`` values: none shown over 1 to 7 values."""
    out: dict[str, Any] = {"count": d.count(p.count)}
    out.update(
        {f"p{k}": d.statistic(p.count, None if v is None else round(v, 2)) for k, v in p.at.items()}
    )
    out["max"] = d.statistic(p.count, None if p.max is None else round(p.max, 2))
    return out


def access_json(rows: Iterable[tuple[int, str, int]], d: Disclosure) -> dict[str, Any]:
    """Calls to the hooks, answered and refused: by status, and refusals by why."""
    by_status: dict[str, int] = defaultdict(int)
    refusals: dict[str, int] = defaultdict(int)
    for status, outcome, n in rows:
        by_status[str(status)] += n
        if status >= 400:
            refusals[outcome] += n
    return {
        "calls": d.count(sum(by_status.values())),
        "byStatus": {k: d.count(n) for k, n in sorted(by_status.items())},
        "refusals": dict(
            sorted(
                ((k, d.count(n)) for k, n in refusals.items()), key=lambda kv: (-rank(kv[1]), kv[0])
            )
        ),
    }


def summary_json(s: Summary, f: Filter, d: Disclosure) -> dict[str, Any]:
    """Every summary figure the dashboard shows, for the days and service in ``f``, through
    the disclosure control ``d``."""
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
    c = d.count
    for r in reasons.values():
        r["count"] = c(r["count"])
    return {
        "range": {"from": f.start.isoformat(), "to": f.end.isoformat()},
        "service": f.service_id,
        "totals": {
            "evaluations": c(sum(evaluations.values())),
            "cards": c(n_cards),
            "feedback": c(n_feedback),
            "accepted": c(accepted),
            "overridden": c(overridden),
            "overrideRate": d.share(overridden, n_feedback),
            "feedbackRate": d.share(n_feedback, n_cards),
        },
        "evaluationsByOutcome": {o: c(evaluations.get(o, 0)) for o in (*OUTCOMES, NO_DECISION)},
        "cardsByOutcome": {o: c(cards.get(o, 0)) for o in OUTCOMES},
        "cardsPerDay": [
            {
                "day": day.isoformat(),
                **{o: c(per_day[day]["cards"].get(o, 0)) for o in OUTCOMES},
                "evaluations": c(sum(per_day[day]["evaluations"].values())),
            }
            for day in f.days()
        ],
        "overrideReasons": sorted(
            reasons.values(), key=lambda r: (-rank(r["count"]), str(r["code"]))
        ),
        "feedbackByCardOutcome": {
            k: {
                **{o: c(n) for o, n in v.items()},
                "overrideRate": d.share(v.get("overridden", 0), sum(v.values())),
            }
            for k, v in sorted(by_card_outcome.items())
        },
        "blockingCriteria": sorted(
            (
                {
                    "id": cid,
                    "notMet": c(v.get("not-met", 0)),
                    "unknown": c(v.get("unknown", 0)),
                    "total": c(v.get("not-met", 0) + v.get("unknown", 0)),
                    "share": d.share(v.get("not-met", 0) + v.get("unknown", 0), blocked),
                }
                for cid, v in blocking.items()
            ),
            key=lambda b: (-rank(b["total"]), str(b["id"])),
        ),
        "notEligibleEvaluations": c(blocked),
        "prefetch": {
            "evaluations": c(pre.decided),
            "keysPrefetched": c(pre.keys_prefetched),
            "keysFetched": c(pre.keys_fetched),
            "hitRate": d.share(pre.keys_prefetched, pre.keys_prefetched + pre.keys_fetched),
            "fullyPrefetched": c(pre.fully_prefetched),
            "fullyPrefetchedRate": d.share(pre.fully_prefetched, pre.decided),
        },
        "latencyMs": percentiles_json(s.latency_ms, d),
        "fhirFetchMs": percentiles_json(s.fhir_fetch_ms, d),
    }
