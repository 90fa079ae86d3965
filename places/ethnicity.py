"""Who a person is for a population's tables: their NHS ethnic category, read from the UK Core
ethnic category extension of the Patient (or any Patient extension coded in its code system)
and counted by the broad group of ``ethnic-category.json``. Pure: no Flask, no database, no
clock. The file is checked when it is loaded; a malformed one fails loudly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ETHNIC_CATEGORY_FILE = Path(__file__).resolve().parent / "ethnic-category.json"
NOT_RECORDED = "not recorded"  # no ethnic category on the record
NOT_A_CATEGORY = "not a valid category"  # a code the NHS ethnic category does not define


class EthnicCategoryError(ValueError):
    """The ethnic category file is malformed; names the file and the field."""


@dataclass(frozen=True)
class EthnicCategories:
    extension: str
    systems: frozenset[str]
    group_of: Mapping[str, str]  # code → broad group
    groups: tuple[str, ...]  # the broad groups in the file's order

    def group(self, patient: Mapping[str, Any] | None) -> str:
        """The broad group of the patient's recorded ethnic category: from the UK Core
        extension first, else from any extension coded in one of ``systems``; NOT_RECORDED
        when there is none, NOT_A_CATEGORY for a code of those systems the file does not list."""
        extensions = patient.get("extension") if isinstance(patient, Mapping) else None
        if not isinstance(extensions, list):
            return NOT_RECORDED
        ordered = sorted(
            (e for e in extensions if isinstance(e, Mapping)),
            key=lambda e: e.get("url") != self.extension,
        )
        for ext in ordered:
            concept = ext.get("valueCodeableConcept")
            codings = concept.get("coding") if isinstance(concept, Mapping) else None
            for coding in codings if isinstance(codings, list) else ():
                if not isinstance(coding, Mapping) or coding.get("system") not in self.systems:
                    continue
                code = coding.get("code")
                return (
                    self.group_of.get(code, NOT_A_CATEGORY)
                    if isinstance(code, str)
                    else NOT_A_CATEGORY
                )
        return NOT_RECORDED


def parse_ethnic_categories(doc: Any, file: str) -> EthnicCategories:
    """EthnicCategoryError naming ``file`` and the field when ``doc`` is not usable."""
    if not isinstance(doc, dict):
        raise EthnicCategoryError(f"{file}: must be a JSON object")
    for key in ("provenance", "extension"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise EthnicCategoryError(f"{file}: needs '{key}'")
    systems = doc.get("systems")
    if not isinstance(systems, list) or not systems or not all(isinstance(s, str) for s in systems):
        raise EthnicCategoryError(f"{file}: 'systems' must be a non-empty list of URLs")
    categories = doc.get("categories")
    if not isinstance(categories, list) or not categories:
        raise EthnicCategoryError(f"{file}: 'categories' must be a non-empty list")
    group_of: dict[str, str] = {}
    for i, c in enumerate(categories):
        fields = isinstance(c, dict) and all(
            isinstance(c.get(k), str) and c[k].strip() for k in ("code", "display", "group")
        )
        if not fields:
            raise EthnicCategoryError(f"{file}: categories[{i}] needs code, display and group")
        if c["code"] in group_of:
            raise EthnicCategoryError(f"{file}: categories[{i}]: code {c['code']} is listed twice")
        group_of[c["code"]] = c["group"]
    return EthnicCategories(
        doc["extension"], frozenset(systems), group_of, tuple(dict.fromkeys(group_of.values()))
    )


@cache
def load_ethnic_categories(path: Path = ETHNIC_CATEGORY_FILE) -> EthnicCategories:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EthnicCategoryError(f"{path}: cannot read JSON: {exc}") from exc
    return parse_ethnic_categories(doc, str(path))


__all__ = [
    "ETHNIC_CATEGORY_FILE",
    "NOT_A_CATEGORY",
    "NOT_RECORDED",
    "EthnicCategories",
    "EthnicCategoryError",
    "load_ethnic_categories",
    "parse_ethnic_categories",
]
