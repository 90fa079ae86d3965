"""England's clock: the one definition of Europe/London, and the calendar day of a moment.

A decision's "today", the dashboard's days and the dates in FHIR records without a time zone
are all days in Europe/London. Pure: the caller supplies the moment.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def london_day(moment: datetime) -> date:
    """The calendar day in England at ``moment`` (an aware datetime)."""
    return moment.astimezone(LONDON).date()
