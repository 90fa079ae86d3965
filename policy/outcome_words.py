"""The words every commissioner-facing output uses for an outcome: the dashboard, the uptake
report, their CSV files and the MeasureReport say the same thing the same way, and every chart
draws each word with one style (``dashboard/static/series.js``, keyed by these words).

A hook's decision (``policy.Outcome``) is one of three; a population run splits it further:
people already using the technology are counted apart (and only there), and "not enough
information" is
"potentially eligible" when only what a clinician can confirm stands in the way, else "data
missing". The dashboard counts cards, which do not make that split: its "data missing" includes
the people the uptake report calls potentially eligible.
"""

from __future__ import annotations

ALREADY_USING = "already using"  # in use, held (paused) or, for an i-Port, on order
MEETS = "meets"
POTENTIALLY = "potentially eligible"
DATA_MISSING = "data missing"
NOT_MET = "does not meet"
NOT_ASSESSED = "not assessed (order without an i-Port)"
GAP = "gap"  # meets, and not using the technology
# A population's five outcomes, in the order every table shows them.
OUTCOMES = (ALREADY_USING, MEETS, POTENTIALLY, DATA_MISSING, NOT_MET)

# A hook decision's outcome code → its word.
BY_OUTCOME = {
    "meets-criteria": MEETS,
    "does-not-meet-criteria": NOT_MET,
    "insufficient-information": DATA_MISSING,
    "no-decision": NOT_ASSESSED,
}
# Every word a chart may draw, each with its own style in series.js.
SERIES = (*OUTCOMES, NOT_ASSESSED, GAP)


def capitalised(word: str) -> str:
    """A word at the start of a table cell or a legend ("data missing" → "Data missing")."""
    return word[:1].upper() + word[1:]
