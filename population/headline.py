"""The report's headline: per policy one sentence with three numbers (the cohort, people
already using the technology, people who meet the policy and do not), uptake with its 95 %
interval, and the change since the previous run. National guidance comes first, then local
policies, each in the deployment's order (``metadata.listOrder``). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from disclosure import Disclosure
from population.figures import OUTCOMES, Figures, Rate, count_text, percent_text
from population.uptake import UptakeTally


@dataclass(frozen=True)
class Headline:
    policy: str
    sentence: str
    change: str | None  # since the previous run, when one is given


def policy_order(tally: UptakeTally) -> list[str]:
    """National guidance first, then local policies; each in the run's (listOrder) order."""
    ids = list(tally.policies)
    return sorted(ids, key=lambda p: (not tally.national.get(p, False), ids.index(p)))


def sentence(tally: UptakeTally, policy: str, d: Disclosure) -> str:
    shown = tally.figures(policy).shown(d)
    name = tally.names.get(policy, policy)
    cohort = f"Of {count_text(shown['cohort'])} {tally.cohorts.get(policy, 'people')}"
    if not tally.technology_data:
        return (
            f"{cohort}, {count_text(shown['outcomes']['meets'])} meet {name}; who already uses "
            "the technology cannot be measured from this input (no device or procedure records)."
        )
    uptake = shown["uptake"]
    return (
        f"{cohort}, {count_text(shown['outcomes']['already using'])} already have the technology "
        f"({tally.in_use.get(policy, 'in use')}); {count_text(shown['gap'])} more meet {name} "
        f"and do not ({_uptake_text(uptake, d)})."
    )


def _uptake_text(uptake: Mapping[str, Rate], d: Disclosure) -> str:
    value, low, high = uptake["value"], uptake["low"], uptake["high"]
    if value is None:
        return "uptake: no one uses or meets it"
    if isinstance(value, str):
        return f"uptake not shown: it rests on a count below {d.threshold}"
    assert isinstance(low, float)  # shown with the value
    assert isinstance(high, float)
    return f"uptake {percent_text(value)}, 95 % CI {100 * low:.0f}–{percent_text(high)}"


def previous_figures(summary_json: Mapping[str, Any]) -> dict[str, Figures]:
    """A previous run's figures from its summary JSON (``PopulationSummary.as_json``);
    ValueError when it holds none."""
    found = summary_json.get("figures")
    if not isinstance(found, Mapping) or not found:
        raise ValueError("it holds no per-policy figures (a summary JSON of this version)")
    out = {}
    for policy, f in found.items():
        try:
            outcomes = {o: int(f["outcomes"].get(o, 0)) for o in OUTCOMES}
            out[str(policy)] = Figures(int(f["cohort"]), outcomes)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"the figures of {policy!r} cannot be read") from exc
    return out


def change(now: Figures, before: Figures | None, d: Disclosure, since: str) -> str | None:
    """Uptake (percentage points) and the gap (people) since the previous run, from the
    figures as shown both times; None when the policy was not in it."""
    if before is None:
        return None
    a, b = before.shown(d), now.shown(d)
    ua, ub = a["uptake"]["value"], b["uptake"]["value"]
    if isinstance(ua, float) and isinstance(ub, float):
        points = round(100 * (ub - ua))
        uptake = f"uptake {points:+d} percentage points ({percent_text(ua)} → {percent_text(ub)})"
    else:
        uptake = f"uptake {percent_text(ua)} → {percent_text(ub)}"
    ga, gb = a["gap"], b["gap"]
    if isinstance(ga, int) and isinstance(gb, int):
        gap = f"gap {gb - ga:+,d} people ({ga:,} → {gb:,})"
    else:
        gap = f"gap {count_text(ga)} → {count_text(gb)} people"
    return f"Since the previous run{since}: {uptake}; {gap}."


def headlines(
    tally: UptakeTally,
    d: Disclosure,
    previous: Mapping[str, Figures] | None = None,
    previous_extract: str = "",
) -> Sequence[Headline]:
    since = f" (extract date {previous_extract})" if previous_extract else ""
    return [
        Headline(
            p,
            sentence(tally, p, d),
            None if previous is None else change(tally.figures(p), previous.get(p), d, since),
        )
        for p in policy_order(tally)
    ]
