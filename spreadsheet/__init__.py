"""What every CSV the product writes passes through: cells safe to open in a spreadsheet.

A cell whose text a spreadsheet would read as a formula (``=HYPERLINK(...)``, ``+cmd|...``)
can send data away or run a command when the file is opened. OWASP's guidance ("CSV
injection") is followed: text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return (or a full-width ``=``, ``+``, ``-``, ``@``, which some spreadsheets read the same way)
is written with a single quote before it, so it shows as text. So is such text behind leading
white space or invisible characters (a line feed, a space, a no-break space, a zero-width space
or a byte-order mark, which spreadsheets may skip), and text whose first character is a ``;``
or ``,`` (a list separator in some locales, after which a formula begins). Numbers stay
numbers: a number, or text that is only a number ("-5", "+44"), is written as it is. Pure:
no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# Skipped by some spreadsheets before they look for a formula: white space and invisible marks
_SKIPPED = " \t\r\n\u00a0\u2007\u202f\u200b\u200c\u200d\u2060\ufeff"
_SEPARATORS = (";", ",")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Every first character after which a cell may need a closer look; any other first character
# (a letter, a digit, a quote) leaves the text as it is. A population CSV has hundreds of
# thousands of cells, nearly all of them plain words.
_SUSPECT_FIRST = frozenset((*_FORMULA_START, *_SKIPPED, *_SEPARATORS))


def cell(value: Any) -> Any:
    """``value`` as a spreadsheet may safely read it: text that could be a formula quoted."""
    if not isinstance(value, str) or not value or value[0] not in _SUSPECT_FIRST:
        return value
    if _NUMBER.fullmatch(value):
        return value
    stripped = value.lstrip(_SKIPPED)
    if stripped.startswith(_SEPARATORS):
        stripped = stripped[1:].lstrip(_SKIPPED)
    if value.startswith(_FORMULA_START) or stripped.startswith(_FORMULA_START):
        return "'" + value
    return value


def row(values: Iterable[Any]) -> list[Any]:
    """Every cell of one row through ``cell`` (plain text, the most of any row, is passed
    over here without a call)."""
    return [
        v if v.__class__ is str and (not v or v[0] not in _SUSPECT_FIRST) else cell(v)
        for v in values
    ]
