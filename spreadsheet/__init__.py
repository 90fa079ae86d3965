"""What every CSV the product writes passes through: cells safe to open in a spreadsheet.

A cell whose text a spreadsheet would read as a formula (``=HYPERLINK(...)``, ``+cmd|...``)
can send data away or run a command when the file is opened. OWASP's guidance ("CSV
injection") is followed: text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return (or a full-width ``=``, ``+``, ``-``, ``@``, which some spreadsheets read the same way)
is written with a single quote before it, so it shows as text. Numbers stay numbers: a number,
or text that is only a number ("-5", "+44"), is written as it is. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    """``value`` as a spreadsheet may safely read it: text that could be a formula quoted."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def row(values: Iterable[Any]) -> list[Any]:
    """Every cell of one row through ``cell``."""
    return [cell(v) for v in values]
