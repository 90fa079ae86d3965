"""Statistical disclosure control of the commissioners' aggregate figures: small numbers.

The method is NHS England's (NHS Digital's) for its secondary-care statistics (Hospital Episode
Statistics, the Emergency Care Data Set, and the datasets that have adopted it since), for
figures below national level, which every figure of one ICB is:

- a count of 0 is shown as 0;
- a count from 1 to 7 is suppressed: shown as ``<8`` ("between 1 and 7");
- every other count is rounded to the nearest 5 — totals too, computed from the unrounded
  counts and then rounded, so a total less its other cells never gives back a suppressed cell
  (the rounding is what makes secondary suppression unnecessary);
- a percentage is computed from the rounded counts, and is suppressed (``*``) when its
  numerator or denominator is;
- a statistic over 1 to 7 values (a percentile, a mean) is suppressed (``*``).

The threshold is a deployment setting (``SMALL_NUMBER_THRESHOLD``, default 8: counts 1-7
suppressed); 0 turns disclosure control off, for a local audit by people entitled to the
record-level data. Pure: no Flask, no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_THRESHOLD = 8
ROUND_TO = 5
SUPPRESSED_STATISTIC = "*"

Count = int | str  # a count as shown: a number, or the suppression marker ('<8')
Share = float | str | None  # a proportion as shown: None when the denominator is 0


class DisclosureSettingError(ValueError):
    """SMALL_NUMBER_THRESHOLD is not a whole number, 0 or more."""


@dataclass(frozen=True)
class Disclosure:
    """``threshold``: counts from 1 to ``threshold - 1`` are suppressed, all others rounded to
    the nearest ``ROUND_TO``; 0 shows every figure exactly."""

    threshold: int = DEFAULT_THRESHOLD

    @classmethod
    def from_setting(cls, value: Any) -> Disclosure:
        """The setting's value (an int, or a string of one from the environment)."""
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DisclosureSettingError(
                f"SMALL_NUMBER_THRESHOLD must be a whole number, 0 or more (got {value!r})"
            )
        return cls(value)

    @property
    def on(self) -> bool:
        return self.threshold > 0

    @property
    def marker(self) -> str:
        """What a suppressed count is shown as: '<8' says it is between 1 and 7."""
        return f"<{self.threshold}"

    def suppressed(self, n: int) -> bool:
        return self.on and 0 < n < self.threshold

    def count(self, n: int) -> Count:
        """A count as it may be shown."""
        return self.marker if self.suppressed(n) else self._rounded(n)

    def _rounded(self, n: int) -> int:
        if not self.on or n == 0:
            return n
        return max(ROUND_TO, ROUND_TO * ((n + ROUND_TO // 2) // ROUND_TO))

    def share(self, part: int, whole: int, digits: int = 4) -> Share:
        """``part / whole`` from the counts as shown; ``*`` when either is suppressed; None
        when ``whole`` is 0."""
        if not whole:
            return None
        if self.suppressed(part) or self.suppressed(whole):
            return SUPPRESSED_STATISTIC
        return round(self._rounded(part) / self._rounded(whole), digits)

    def statistic(self, values: int, value: float | None) -> float | str | None:
        """A statistic (a percentile, a maximum) over ``values`` values: ``*`` over 1 to 7."""
        return SUPPRESSED_STATISTIC if self.suppressed(values) else value

    def note(self) -> str:
        """One sentence for the page: what the markers mean, or that there are none."""
        if not self.on:
            return (
                "Small-number suppression is off (SMALL_NUMBER_THRESHOLD is 0): every figure "
                "is exact. For a local audit only: do not share these figures."
            )
        return (
            f"To protect privacy, a count from 1 to {self.threshold - 1} is shown as "
            f"“{self.marker}”, every other count is rounded to the nearest {ROUND_TO} (so "
            f"totals may not add up), and a percentage resting on a count shown as "
            f"“{self.marker}” is shown as “{SUPPRESSED_STATISTIC}” (NHS England's "
            "disclosure control for statistics below national level)."
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "roundedTo": ROUND_TO if self.on else 1,
            "suppressedCount": self.marker if self.on else None,
            "suppressedStatistic": SUPPRESSED_STATISTIC if self.on else None,
            "note": self.note(),
        }


def rank(shown: Count | Share) -> float:
    """An order for shown figures, largest first when negated: a suppressed count sorts
    between 0 and the smallest count shown; a suppressed or absent share last."""
    if isinstance(shown, int | float):
        return float(shown)
    if isinstance(shown, str) and shown.startswith("<"):
        return 0.5
    return -1.0


OFF = Disclosure(0)

__all__ = [
    "DEFAULT_THRESHOLD",
    "OFF",
    "ROUND_TO",
    "SUPPRESSED_STATISTIC",
    "Count",
    "Disclosure",
    "DisclosureSettingError",
    "Share",
    "rank",
]
