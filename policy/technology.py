"""Technology in use: what the record says of each kind of diabetes technology on a given day.

One reading for every policy and every output (the cards, the assessment app, population runs):
a record of a kind (``facts.model.TechnologyUse``) is *in use* today, *held* (paused: the person
has it), *not current* (an issue of supplies or a dated event too old to say it is still used),
or *not in use* (planned, intended, ordered, ended, cancelled, or starting after today).
The windows are policy parameters (docs/policy-interpretation.md, "Technology in use").

Pure: no clock; ``today`` is given.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import cast

from facts.model import PatientRecord, TechnologyUse

# Records of supplies issued: current only within the supply window from their date.
SUPPLY_SOURCES = frozenset({"MedicationRequest", "DeviceRequest"})


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_text(d: date) -> str:
    """A date as a card writes it: "3 Mar 2025" (in English whatever the server's locale)."""
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _months_before(day: date, months: int) -> date:
    year, m0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, m0 + 1, min(day.day, calendar.monthrange(year, m0 + 1)[1]))


@dataclass(frozen=True)
class Windows:
    """How long a record that is not durable says the technology is in use: an issue of
    supplies for ``supply_months``; a dated event (a procedure, an observation) for
    ``event_months``, or at any age when None (a pump once started is not forgotten)."""

    supply_months: int
    event_months: int | None = None


@dataclass(frozen=True)
class Reading:
    """One kind's records sorted by what they say on a day; ``why`` gives, for each record
    not in use, the reason in words ("intended", "starts on 2027-01-07, after today")."""

    kind: str
    in_use: tuple[TechnologyUse, ...]
    held: tuple[TechnologyUse, ...]
    not_current: tuple[TechnologyUse, ...]
    not_in_use: tuple[TechnologyUse, ...]
    why: dict[str, str]

    @property
    def state(self) -> str:
        """ "in use", "held", "not current", "not in use" or "none" (no record at all)."""
        if self.in_use:
            return "in use"
        if self.held:
            return "held"
        if self.not_current:
            return "not current"
        return "not in use" if self.not_in_use else "none"

    def since(self) -> date | None:
        """The earliest start among the records in use; when none is, since when the technology
        is paused: the latest date a held record carries (a statement put on hold is recorded
        then; its timing still says when use began)."""
        if self.in_use:
            days = [d for u in self.in_use if (d := u.since or u.last) is not None]
            return min(days) if days else None
        paused = [d for u in self.held if (d := u.last or u.since) is not None]
        return max(paused) if paused else None


def _key(u: TechnologyUse) -> str:
    return f"{u.ref}#{u.kind}"


def read_technology(record: PatientRecord, kind: str, today: date, windows: Windows) -> Reading:
    """Every record of ``kind`` sorted by what it says on ``today``: read once per record,
    kind, day and windows and kept with the record (several criteria and policies read the
    same kind), so the reading is shared and not to be changed."""
    return reading_of(record, kind, today, windows.supply_months, windows.event_months)


def reading_of(
    record: PatientRecord, kind: str, today: date, supply_months: int, event_months: int | None
) -> Reading:
    """``read_technology`` with the windows given as their months."""
    key = (_READING, kind, today, supply_months, event_months)
    found = record.memo.get(key)
    if found is None:
        windows = Windows(supply_months, event_months)
        found = record.memo[key] = _read(record, kind, today, windows)
    return cast(Reading, found)


_READING = "technology"


def _read(record: PatientRecord, kind: str, today: date, windows: Windows) -> Reading:
    in_use: list[TechnologyUse] = []
    held: list[TechnologyUse] = []
    not_current: list[TechnologyUse] = []
    not_in_use: list[TechnologyUse] = []
    why: dict[str, str] = {}
    for u in record.technology_of(kind):
        start = u.since or u.last
        if u.state == "not-in-use":
            not_in_use.append(u)
            why[_key(u)] = u.status or "recorded"
        elif start is not None and start > today:
            not_in_use.append(u)
            why[_key(u)] = f"starts on {start.isoformat()}, after today"
        elif u.last is not None and u.last > today:
            not_in_use.append(u)
            why[_key(u)] = f"dated {u.last.isoformat()}, after today"
        elif u.ends is not None and u.ends < today:
            not_in_use.append(u)
            why[_key(u)] = f"ended on {u.ends.isoformat()}"
        elif u.state == "held":
            held.append(u)
        elif u.durable:
            in_use.append(u)
        else:
            months = windows.supply_months if u.source in SUPPLY_SOURCES else windows.event_months
            if months is None and u.last is not None:
                in_use.append(u)
            elif u.last is not None and months is not None:
                current = u.last >= _months_before(today, months)
                (in_use if current else not_current).append(u)
                if not current:
                    why[_key(u)] = f"more than {months} months ago"
            else:
                not_current.append(u)
                why[_key(u)] = "undated"
    return Reading(kind, tuple(in_use), tuple(held), tuple(not_current), tuple(not_in_use), why)


def what(u: TechnologyUse) -> str:
    """A record's product and kind as a card names it: "Omnipod 5 Pods (hybrid closed loop)";
    a kind implied by another says so: "MiniMed 780G (hybrid closed loop, so insulin pump
    (CSII))"."""
    label = u.label or u.kind
    kind = f"{u.implied_label}, so {label}" if u.implied_by and u.implied_label else label
    product = u.product.strip()
    if not product or product.lower() in label.lower():
        return label[0].upper() + label[1:]
    return f"{product} ({kind})"
