"""A deployment's lookups of where a person counts for: practice → primary care network (PCN),
postcode → small area (LSOA) and small area → index of multiple deprivation (IMD) quintile.

Each is a CSV file with a header row that the deployment gives (the columns are fixed below);
every row is checked when the file is loaded and a LookupError names the file and the line of
the first problem, so nothing is found wrong half-way through a run. The deprivation quintile
is that of the person's small area, as the English Indices of Deprivation are published, never
of a postcode district. Pure: no Flask, no database, no clock.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from places import _ODS_CODE

PCN_COLUMNS = ("practice_ods", "pcn_code", "pcn_name")
POSTCODE_COLUMNS = ("postcode", "lsoa_code")
IMD_COLUMNS = ("lsoa_code", "imd_quintile")
QUINTILES = frozenset({"1", "2", "3", "4", "5"})  # 1 = most deprived … 5 = least deprived

# The UK postcode format of BS 7666 as the government data standards catalogue gives it: an
# outward code (area letters, district digits, an optional sub-district character), one space,
# an inward code (a sector digit and two unit letters, never C, I, K, M, O or V); and the
# Girobank's GIR 0AA.
_POSTCODE = re.compile(
    r"GIR 0AA|[A-PR-UWYZ]([0-9]{1,2}|[A-HK-Y][0-9]([0-9ABEHMNPRVWXY])?|[0-9][A-HJKPS-UW])"
    r" [0-9][ABD-HJLNP-UW-Z]{2}"
)
# An ONS GSS geography code (a letter and eight digits): E01… an English LSOA, W01… a Welsh one.
_GSS_CODE = re.compile(r"[A-Z][0-9]{8}")
_NAME_LIMIT = 100


class LookupTableError(ValueError):
    """A lookup file that cannot be used; the message names the file and the line."""


def normalise_postcode(text: object) -> str | None:
    """The canonical form of a UK postcode ("hu12ab", " HU1  2AB " → "HU1 2AB"), or None when
    the text is not a postcode in the UK format (after upper-casing and removing every space)."""
    if not isinstance(text, str):
        return None
    compact = "".join(text.split()).upper()
    if not 5 <= len(compact) <= 7:
        return None
    canonical = f"{compact[:-3]} {compact[-3:]}"
    return canonical if _POSTCODE.fullmatch(canonical) else None


@dataclass(frozen=True)
class Network:
    """A primary care network: its ODS code and name."""

    code: str
    name: str


def _rows(
    path: str | Path, columns: tuple[str, ...], what: str
) -> Iterator[tuple[str, dict[str, str]]]:
    """Each data row with where it is ("FILE line N"); LookupTableError for a wrong header or
    a file that cannot be read."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != columns:
                raise LookupTableError(f"{path}: the header must be exactly '{','.join(columns)}'")
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise LookupTableError(
                        f"{path} line {reader.line_num}: needs exactly {len(columns)} columns"
                    )
                yield f"{path} line {reader.line_num}", {k: v.strip() for k, v in row.items()}
    except (OSError, UnicodeDecodeError) as exc:
        raise LookupTableError(f"{path}: cannot read the {what} ({exc})") from exc


def _load(
    path: str | Path,
    columns: tuple[str, ...],
    what: str,
    read: Callable[[str, dict[str, str]], tuple[str, Any]],
) -> dict[str, Any]:
    """Key → value for every row, ``read`` checking each row; a key given twice is an error."""
    out: dict[str, Any] = {}
    for where, row in _rows(path, columns, what):
        key, value = read(where, row)
        if key in out:
            raise LookupTableError(f"{where}: {columns[0]} {key} is listed twice")
        out[key] = value
    return out


def _ods(where: str, column: str, value: str) -> str:
    code = value.upper()
    if not _ODS_CODE.fullmatch(code):
        raise LookupTableError(f"{where}: {column} '{value[:20]}' is not an ODS code")
    return code


def _gss(where: str, value: str) -> str:
    code = value.upper()
    if not _GSS_CODE.fullmatch(code):
        raise LookupTableError(
            f"{where}: lsoa_code '{value[:20]}' is not a small-area code (e.g. E01012345)"
        )
    return code


def load_practice_networks(path: str | Path) -> dict[str, Network]:
    """Practice ODS code → its primary care network, from ``practice_ods,pcn_code,pcn_name``.
    A network code always carries the same name; a practice is in one network."""
    names: dict[str, str] = {}

    def read(where: str, row: dict[str, str]) -> tuple[str, Network]:
        practice = _ods(where, "practice_ods", row["practice_ods"])
        code = _ods(where, "pcn_code", row["pcn_code"])
        name = " ".join(row["pcn_name"].split())
        if not name or len(name) > _NAME_LIMIT or not name.isprintable():
            raise LookupTableError(
                f"{where}: pcn_name must be a name of 1-{_NAME_LIMIT} characters"
            )
        if names.setdefault(code, name) != name:
            raise LookupTableError(f"{where}: network {code} is named '{names[code]}' above")
        return practice, Network(code, name)

    return _load(path, PCN_COLUMNS, "practice → network table", read)


def load_postcode_areas(path: str | Path) -> dict[str, str]:
    """Canonical postcode → small-area (LSOA) code, from ``postcode,lsoa_code``; postcodes in
    any spacing or case."""

    def read(where: str, row: dict[str, str]) -> tuple[str, str]:
        postcode = normalise_postcode(row["postcode"])
        if postcode is None:
            raise LookupTableError(f"{where}: postcode is not a UK postcode")
        return postcode, _gss(where, row["lsoa_code"])

    return _load(path, POSTCODE_COLUMNS, "postcode → small area lookup", read)


def load_area_quintiles(path: str | Path) -> dict[str, str]:
    """Small-area (LSOA) code → IMD quintile "1" (most deprived) … "5", from
    ``lsoa_code,imd_quintile``."""

    def read(where: str, row: dict[str, str]) -> tuple[str, str]:
        quintile = row["imd_quintile"]
        if quintile not in QUINTILES:
            raise LookupTableError(f"{where}: imd_quintile must be 1 (most deprived) to 5")
        return _gss(where, row["lsoa_code"]), quintile

    return _load(path, IMD_COLUMNS, "small area → deprivation quintile lookup", read)


# What a person's postcode gave: the quintile, or why there is none (data-quality counts).
POSTCODE_MATCHED = "matched"
POSTCODE_NONE = "no postcode"
POSTCODE_INVALID = "not a postcode"
POSTCODE_UNMATCHED = "postcode not in the lookup"
AREA_UNRATED = "small area without a quintile"


@dataclass(frozen=True)
class Deprivation:
    """The two lookups together: ``quintile_of`` a person's postcode."""

    areas: Mapping[str, str]
    quintiles: Mapping[str, str]

    def quintile_of(self, postcode: str | None) -> tuple[str, str]:
        """(quintile or "", status): the quintile of the postcode's small area, with
        POSTCODE_MATCHED, or "" and why there is none."""
        if postcode is None or not postcode.strip():
            return "", POSTCODE_NONE
        canonical = normalise_postcode(postcode)
        if canonical is None:
            return "", POSTCODE_INVALID
        area = self.areas.get(canonical)
        if area is None:
            return "", POSTCODE_UNMATCHED
        quintile = self.quintiles.get(area)
        return (quintile, POSTCODE_MATCHED) if quintile else ("", AREA_UNRATED)


def load_deprivation(postcode_file: str | Path, area_file: str | Path) -> Deprivation:
    """Both deprivation lookups; LookupTableError naming the file and line of a bad row."""
    return Deprivation(load_postcode_areas(postcode_file), load_area_quintiles(area_file))


def home_postcode(patient: Mapping[str, Any] | None, today: date) -> str | None:
    """The postcode of the patient's current home address: one whose ``use`` is home, else
    unstated, else temporary; an old address, a work or billing one, or one whose period ended
    before ``today`` is never it. None when no current address has a postcode."""
    if not isinstance(patient, Mapping) or not isinstance(patient.get("address"), list):
        return None
    current: dict[str | None, str] = {}
    for a in patient["address"]:
        if not isinstance(a, Mapping) or not isinstance(a.get("postalCode"), str):
            continue
        period = a.get("period")
        end = period.get("end") if isinstance(period, Mapping) else None
        if isinstance(end, str) and end[:10] < today.isoformat():
            continue
        use = a.get("use")
        if use in _HOME_USES and a["postalCode"].strip():
            current.setdefault(use, a["postalCode"])
    return next((current[u] for u in _HOME_USES if u in current), None)


# Address.use values that can be where a person lives, most telling first.
_HOME_USES: tuple[str | None, ...] = ("home", None, "temp")


__all__ = [
    "AREA_UNRATED",
    "POSTCODE_INVALID",
    "POSTCODE_MATCHED",
    "POSTCODE_NONE",
    "POSTCODE_UNMATCHED",
    "Deprivation",
    "LookupTableError",
    "Network",
    "home_postcode",
    "load_area_quintiles",
    "load_deprivation",
    "load_postcode_areas",
    "load_practice_networks",
    "normalise_postcode",
]
