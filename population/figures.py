"""The figures a board reads, per policy (and per group): the cohort, the five outcomes,
uptake and the gap, each rate with a 95 % Wilson score interval.

Uptake is ``already using ÷ (already using + meets)``: of the people the policy is for who
have or should have the technology, the share who have it. The gap is the people who meet the
policy and do not use the technology (``meets``; people already using it are counted only
under ``already using``), and the same per 1,000 of the cohort.

Every count goes through the deployment's disclosure control; rates and their intervals are
computed from the counts as shown (rounded), and are suppressed when a count they rest on is
— so a rate can never give back a suppressed count. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from disclosure import OFF, SUPPRESSED_STATISTIC, Count, Disclosure

# The words of every commissioner-facing output, re-exported for the population package.
from policy.outcome_words import ALREADY_USING as ALREADY_USING
from policy.outcome_words import DATA_MISSING as DATA_MISSING
from policy.outcome_words import MEETS as MEETS
from policy.outcome_words import NOT_MET as NOT_MET
from policy.outcome_words import OUTCOMES as OUTCOMES
from policy.outcome_words import POTENTIALLY as POTENTIALLY

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` of ``n`` (Wilson 1927; Newcombe 1998,
    method 3): it stays inside 0-1 and is not degenerate at 0 or n. ``n`` must be positive."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError("wilson: needs 0 <= successes <= n and n > 0")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


Rate = float | str | None  # a proportion as shown: '*' when suppressed, None when 0 ÷ 0


@dataclass(frozen=True)
class ShownRate:
    """A proportion and its 95 % interval as they may be shown (all '*' or all None)."""

    value: Rate
    low: Rate
    high: Rate

    def as_json(self) -> dict[str, Rate]:
        return {"value": self.value, "low": self.low, "high": self.high}


def shown_rate(d: Disclosure, part: int, whole: int, digits: int = 4) -> ShownRate:
    """``part / whole`` from the counts as shown, with its Wilson interval; suppressed when
    ``part`` or ``whole`` is."""
    if not whole:
        return ShownRate(None, None, None)
    if d.suppressed(part) or d.suppressed(whole):
        return ShownRate(SUPPRESSED_STATISTIC, SUPPRESSED_STATISTIC, SUPPRESSED_STATISTIC)
    shown_part, shown_whole = _shown(d, part), _shown(d, whole)  # rounding keeps part <= whole
    low, high = wilson(shown_part, shown_whole)
    return ShownRate(
        round(shown_part / shown_whole, digits), round(low, digits), round(high, digits)
    )


def shown_uptake(d: Disclosure, using: int, meets: int) -> ShownRate:
    """``using / (using + meets)`` from the two counts as shown, so a reader can check it
    from the figures beside it (45 using and 35 meeting are 56 %, whatever the exact 43 and
    34 give); suppressed when either is ("100 %" beside "<8 more meet it" would say the
    opposite)."""
    if not using + meets:
        return ShownRate(None, None, None)
    if d.suppressed(using) or d.suppressed(meets):
        return ShownRate(SUPPRESSED_STATISTIC, SUPPRESSED_STATISTIC, SUPPRESSED_STATISTIC)
    shown_using, shown_meets = _shown(d, using), _shown(d, meets)
    # the shown counts are final: the rate of those, with no disclosure control again
    return shown_rate(OFF, shown_using, shown_using + shown_meets)


def _shown(d: Disclosure, n: int) -> int:
    shown = d.count(n)
    assert isinstance(shown, int)  # callers check suppression first
    return shown


@dataclass(frozen=True)
class Figures:
    """One policy's (or one group's) counts, exact: ``shown`` gives them as they may be shown."""

    cohort: int
    outcomes: Mapping[str, int]

    @property
    def using(self) -> int:
        return self.outcomes.get(ALREADY_USING, 0)

    @property
    def meets(self) -> int:
        return self.outcomes.get(MEETS, 0)

    def shown(self, d: Disclosure) -> dict[str, Any]:
        """Counts, uptake and gap as the report, CSV and MeasureReport show them."""
        gap_per_1000 = shown_rate(d, self.meets, self.cohort, digits=6)
        return {
            "cohort": d.count(self.cohort),
            "outcomes": {o: d.count(self.outcomes.get(o, 0)) for o in OUTCOMES},
            # the gap is part of the denominator: uptake is not shown when it is suppressed
            # ("100 %" beside "<8 more meet it" would say the opposite)
            "uptake": shown_uptake(d, self.using, self.meets).as_json(),
            "gap": d.count(self.meets),
            "gapPer1000": {k: _per_1000(v) for k, v in gap_per_1000.as_json().items()},
        }


def _per_1000(share: Rate) -> Rate:
    return round(1000 * share, 1) if isinstance(share, float) else share


def count_text(n: Count | None) -> str:
    """'1,235', or a suppressed count as it is ('<8')."""
    return n if isinstance(n, str) else "–" if n is None else f"{n:,}"


def percent_text(rate: Rate, digits: int = 0) -> str:
    return rate if isinstance(rate, str) else "–" if rate is None else f"{100 * rate:.{digits}f} %"
