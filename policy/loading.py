"""Read, check and build a declarative policy file (evaluating it is ``policy.engine``).

A policy file (``policies/*.json``) holds the metadata the card cites, the parameters a
clinician may want to change (thresholds, lookbacks), each criterion bound to a named rule
in ``policy.criteria``, derived criteria as all/any/not expressions, the pathways, the card's
wording (``presentation``), and the CDS services the policy offers (``services``). Every key
is checked when the file is loaded: an unknown key, a parameter a rule does not declare or of
the wrong kind, or a missing field the policy uses is a PolicyError naming the file and field.

Criteria several policies share are written once, in a part (``policies/parts/*.json``: its
parameters, assumptions, criteria, derived criteria and their not-checked clauses), and a
policy names the parts it ``include``s. A name defined both in a part and in the policy is an
error; a policy that quotes an included criterion again in its own words adds the quote under
``quotes``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from policy.criteria import (
    COMPARISONS,
    DATA_DERIVED_RULES,
    HBA1C_RULES,
    RULE_PARAMS,
    RULES,
    CriterionSpec,
)
from policy.expr import Expr, PolicyError, expr_ids
from policy.model import HOOKS, ORDER_HOOKS, SPEAKS, PolicyInfo, ServiceSpec

POLICY_DIR = Path(__file__).resolve().parent / "policies"
PARTS_DIR = POLICY_DIR / "parts"
# A policy file without ``metadata.listOrder`` is listed after those with one.
DEFAULT_LIST_ORDER = 1000


@dataclass(frozen=True)
class DerivedSpec:
    id: str
    title: str
    expression: Expr
    policy_text: tuple[str, ...] = ()  # the policy's words, as quoted (one or more places)
    confirmable: bool = False  # a composite is never confirmed as a whole


@dataclass(frozen=True)
class PathwaySpec:
    id: str
    title: str
    diagnosis: str
    expression: Expr
    # The criteria the expression reads, in order, each once: read from the file once, not
    # again for every patient assessed.
    criteria: tuple[str, ...] = dataclasses.field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "criteria", tuple(dict.fromkeys(expr_ids(self.expression))))


@dataclass(frozen=True)
class Policy:
    info: PolicyInfo
    hba1c_lookback_months: int  # 0 when no rule of the policy reads HbA1c
    confirmation_valid_months: int | None
    hba1c_plausible_mmol_mol: tuple[float, float]
    criteria: tuple[CriterionSpec, ...]
    derived: tuple[DerivedSpec, ...]
    pathways: tuple[PathwaySpec, ...]
    assumptions: tuple[str, ...]
    value_sets: frozenset[str]
    notices: tuple[tuple[str, str], ...] = ()  # (criterion id, sentence shown when it is met)
    services: tuple[ServiceSpec, ...] = ()  # the CDS services this policy offers
    # policies (by id) whose "meets and not already using it" is said first on this policy's
    # cards, in order: the first that applies wins
    companions: tuple[str, ...] = ()

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria) + tuple(d.id for d in self.derived)

    @functools.cached_property
    def _titles(self) -> dict[str, str]:
        return {c.id: c.title for c in self.criteria} | {d.id: d.title for d in self.derived}

    def title_of(self, criterion_id: str) -> str:
        return self._titles[criterion_id]


# The keys a policy file may have, at each level; a key not listed is an error.
_TOP = frozenset(
    {
        "metadata", "parameters", "assumptions", "criteria", "derived", "pathways",
        "presentation", "notices", "services", "companions", "include", "quotes",
    }
)  # fmt: skip
# the presentation words a part may give its own criteria (joined into the policy's)
_PART_WORDS = ("notChecked", "notMetTitles")
_PART_TOP = frozenset({"part", "parameters", "assumptions", "criteria", "derived", *_PART_WORDS})
_PART_META = frozenset({"id", "title", "source", "url"})
_METADATA = frozenset(
    {
        "id", "title", "publisher", "version", "created", "lastModified", "reviewDue", "url",
        "fundingRequestUrl", "placesCovered", "criteriaCodeSystem", "policyText", "listOrder",
    }
)  # fmt: skip
_METADATA_REQUIRED = _METADATA - {"fundingRequestUrl", "placesCovered", "policyText", "listOrder"}
_CRITERION = frozenset({"id", "title", "rule", "params", "confirmable", "policyText"})
_DERIVED = frozenset({"id", "title", "confirmable", "policyText", "expression"})
_PATHWAY = frozenset({"id", "title", "diagnosis", "expression"})
_NOTICE = frozenset({"when", "text"})
# A footnote's "is": the criterion's result that shows it (Tri's values)
FOOTNOTE_RESULTS = ("met", "not-met", "unknown")
# presentation field -> its JSON shape: str, list of str, {str: str}, or an object's keys
_PRESENTATION: dict[str, Any] = {
    "sourceLabel": str,
    "topic": frozenset({"code", "display"}),
    "summaries": frozenset(
        {"meets-criteria", "does-not-meet-criteria", "insufficient-information"}
    ),
    "patientViewSummary": str,
    "policyLinkLabel": str,
    "overrideReasons": [frozenset({"code", "display"})],
    "silenceWhenMet": [str],
    "silenceWhenOrdered": frozenset({"valueSet", "means"}),
    "referral": frozenset({"label", "code", "reasonText"}),
    "companionNote": str,
    "notChecked": {str: str},
    "notMetTitles": {str: str},
    "links": [frozenset({"label", "url"})],
    "footnotes": [frozenset({"when", "is", "pathway", "text"})],
    "patientViewPrecedence": int,
    "shortName": str,
    "judgementAwaySummary": str,
}
_PRESENTATION_REQUIRED = ("sourceLabel", "topic", "summaries", "overrideReasons")


def _unknown(where: str, found: Iterable[str], allowed: frozenset[str]) -> None:
    extra = sorted(set(found) - allowed)
    if extra:
        raise PolicyError(
            f"{where}: unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _objects(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise PolicyError(f"{key}: must be a list of objects")
    return items


def _shape(where: str, value: Any, shape: Any) -> None:
    if shape is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise PolicyError(f"{where}: must be a whole number")
    elif shape is str:
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{where}: must be a non-empty string")
    elif isinstance(shape, frozenset):
        if not isinstance(value, dict):
            raise PolicyError(f"{where}: must be an object with {', '.join(sorted(shape))}")
        _unknown(where, value, shape)
        missing = sorted(shape - set(value))
        if missing:
            raise PolicyError(f"{where}: missing field {missing[0]!r}")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise PolicyError(f"{where}: must be a list")
        for i, item in enumerate(value):
            _shape(f"{where}[{i}]", item, shape[0])
    elif isinstance(shape, dict) and (
        not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
    ):
        raise PolicyError(f"{where}: must be an object of strings")


def check_document(doc: Mapping[str, Any]) -> None:
    """Every key of a policy document is one this service reads, in the shape it reads it.

    Raises PolicyError naming the field (the caller adds the file).
    """
    if not isinstance(doc, Mapping):
        raise PolicyError("a policy file is a JSON object")
    _unknown("policy", doc, _TOP)
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise PolicyError("metadata: missing")
    _unknown("metadata", meta, _METADATA)
    missing = sorted(_METADATA_REQUIRED - set(meta))
    if missing:
        raise PolicyError(f"metadata: missing field {missing[0]!r}")
    order = meta.get("listOrder", DEFAULT_LIST_ORDER)
    if not isinstance(order, int) or isinstance(order, bool):
        raise PolicyError("metadata.listOrder: must be a whole number (lower is listed first)")
    if not isinstance(doc.get("parameters", {}), dict):
        raise PolicyError("parameters: must be an object")
    for key, allowed in (
        ("criteria", _CRITERION),
        ("derived", _DERIVED),
        ("pathways", _PATHWAY),
        ("notices", _NOTICE),
    ):
        for item in _objects(doc, key):
            _unknown(f"{key}[{item.get('id', item.get('when'))!r}]", item, allowed)
    if "pathways" not in doc:
        raise PolicyError("pathways: missing")
    words = doc.get("presentation", {})
    if not isinstance(words, dict):
        raise PolicyError("presentation: must be an object")
    _unknown("presentation", words, frozenset(_PRESENTATION))
    required = list(_PRESENTATION_REQUIRED)
    hooks = {s.get("hook") for s in _objects(doc, "services")}
    if "patient-view" in hooks:
        required.append("patientViewSummary")
    for key in required:
        if key not in words:
            raise PolicyError(f"presentation: missing field {key!r}")
    for key, value in words.items():
        _shape(f"presentation.{key}", value, _PRESENTATION[key])


def _quotes(value: Any, where: str) -> tuple[str, ...]:
    """``policyText``: the policy's words, one quote or a list of them."""
    if value is None:
        return ()
    quotes = [value] if isinstance(value, str) else value
    if not isinstance(quotes, list) or not all(isinstance(q, str) and q for q in quotes):
        raise PolicyError(f"{where}.policyText: must be a quote or a list of quotes")
    return tuple(quotes)


_CHOICE = frozenset({"if", "then", "else"})


def _assumption(a: Any, params: Mapping[str, Any]) -> str:
    """One assumption as stated on the card: a sentence that may quote parameters as
    ``{name}``, or ``{"if": <true/false parameter>, "then": …, "else": …}`` choosing the
    sentence by the parameter's value. Raises PolicyError naming the fault."""
    if isinstance(a, dict):
        _unknown("assumptions[…]", a, _CHOICE)
        name = str(a.get("if"))
        if not isinstance(params.get(name), bool):
            raise PolicyError(f"assumptions: 'if' must name a true/false parameter, not {name!r}")
        a = a["then"] if params[name] else a["else"]
    if not isinstance(a, str) or not a:
        raise PolicyError("assumptions: each is a sentence, or an if/then/else of sentences")
    try:
        return a.format(**params)
    except (KeyError, IndexError) as exc:
        raise PolicyError(f"assumptions: {a[:40]!r}… names no parameter {exc}") from exc


def part_names() -> list[str]:
    """The shared parts policies may include (files in ``policies/parts/``), sorted."""
    return sorted(p.stem for p in PARTS_DIR.glob("*.json"))


def is_part_file(path: Path) -> bool:
    """Whether a file is a part (its JSON has ``"part"``) rather than a policy."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False  # reading it as a policy names the fault
    return isinstance(doc, dict) and "part" in doc


def read_part(name_or_path: str | Path, base: Path | None = None) -> dict[str, Any]:
    """A part by name (a shipped part in ``policies/parts/``) or by the path of a ``.json``
    file (relative to ``base``, the including policy's folder), checked on its own.

    Raises PolicyError naming the part and the field at fault.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PARTS_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise PolicyError(
                f"include: no part {str(name_or_path)!r} (parts: {', '.join(part_names())})"
            )
    elif base is not None and not path.is_absolute():
        path = base / path
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"include: {path}: {exc}") from exc
    try:
        check_part(doc)
    except PolicyError as exc:
        raise PolicyError(f"part {path.stem!r}: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"part {path.stem!r}: missing or malformed {exc}") from exc
    return doc


def check_part(doc: Mapping[str, Any]) -> set[str]:
    """Every key of a part is one a policy reads, and its criteria stand on their own: each
    rule's parameters are of the declared kinds and any ``$name`` is one of the part's own
    parameters. Returns the value sets its criteria name; raises PolicyError naming the field."""
    if not isinstance(doc, Mapping) or "part" not in doc:
        raise PolicyError('a part is a JSON object with "part": {id, title, source}')
    _unknown("part file", doc, _PART_TOP)
    meta = doc["part"]
    if not isinstance(meta, dict):
        raise PolicyError("part: must be an object with id, title and source")
    _unknown("part", meta, _PART_META)
    for key in ("id", "title", "source"):
        _shape(f"part.{key}", meta.get(key), str)
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise PolicyError("parameters: must be an object")
    assumptions = doc.get("assumptions", [])
    if not isinstance(assumptions, list):
        raise PolicyError("assumptions: must be a list of sentences")
    for a in assumptions:
        _assumption(a, params)
    value_sets: set[str] = set()
    for c in _objects(doc, "criteria"):
        _unknown(f"criteria[{c.get('id')!r}]", c, _CRITERION)
        value_sets |= _criterion(c, params, _NOT_A_PART_PARAMETER)[1]
    for d in _objects(doc, "derived"):
        _unknown(f"derived[{d.get('id')!r}]", d, _DERIVED)
    own = {c.get("id") for c in [*_objects(doc, "criteria"), *_objects(doc, "derived")]}
    for field in _PART_WORDS:
        _shape(field, doc.get(field, {}), {str: str})
        for cid in doc.get(field, {}):
            if cid not in own:
                raise PolicyError(f"{field} names {cid!r}, which is not a criterion of this part")
    return value_sets


def _claim(origin: dict[str, str], key: Any, what: str, owner: str) -> None:
    """Note that ``owner`` (a part's name; "" for the policy itself) defines ``key``.

    A second definition is a PolicyError naming both places.
    """
    if key in origin:
        if not origin[key] and not owner:
            raise PolicyError(f"{what} is defined twice in this policy: define it once")
        second = f"part {owner!r}" if owner else "this policy"
        raise PolicyError(
            f"{what} is defined in part {origin[key]!r} and in {second}: define it once"
        )
    origin[key] = owner


def expand_includes(doc: Mapping[str, Any], base: Path | None = None) -> dict[str, Any]:
    """The policy document with its included parts written in: each part's parameters,
    assumptions, criteria and derived criteria come before the policy's own, its not-checked
    clauses and not-met titles join ``presentation.notChecked`` and ``notMetTitles``, and
    ``quotes`` add the policy's own words to an included criterion. A document with nothing
    included is returned as it is.

    A part named by a ``.json`` path is read relative to ``base`` (the policy file's folder).
    Raises PolicyError when a part is missing or a name is defined twice.
    """
    names = doc.get("include", [])
    quotes = doc.get("quotes", {})
    if not names and not quotes:
        return dict(doc)
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise PolicyError("include: must be a list of part names")
    if not isinstance(quotes, dict) or not all(isinstance(q, str) and q for q in quotes.values()):
        raise PolicyError("quotes: must be an object of criterion id → quote")
    params: dict[str, Any] = {}
    assumptions: list[Any] = []  # sentences, or if/then/else choices of them
    items: dict[str, dict[str, dict[str, Any]]] = {"criteria": {}, "derived": {}}
    words_of: dict[str, dict[str, str]] = {field: {} for field in _PART_WORDS}
    origin: dict[str, str] = {}  # criterion id or $parameter -> the part that defines it
    for name in names:
        part = read_part(name, base)
        for k, v in part.get("parameters", {}).items():
            _claim(origin, f"${k}", f"parameter {k!r}", name)
            params[k] = v
        assumptions.extend(part.get("assumptions", []))
        for key in ("criteria", "derived"):
            for c in part.get(key, []):
                _claim(origin, c["id"], f"criterion {c['id']!r}", name)
                items[key][c["id"]] = dict(c)
        for field in _PART_WORDS:
            words_of[field] |= part.get(field, {})
    for k, v in doc.get("parameters", {}).items():
        _claim(origin, f"${k}", f"parameter {k!r}", "")
        params[k] = v
    for key in ("criteria", "derived"):
        for c in _objects(doc, key):
            _claim(origin, c.get("id"), f"criterion {c.get('id')!r}", "")
            items[key][c["id"]] = dict(c)
    for cid, quote in quotes.items():
        kind = "criteria" if cid in items["criteria"] else "derived"
        if not origin.get(cid) or cid not in items[kind]:
            raise PolicyError(
                f"quotes: {cid!r} is not an included criterion (a policy's own criterion "
                "has its words in its policyText)"
            )
        item = items[kind][cid]
        item["policyText"] = [*_quotes(item.get("policyText"), kind), quote]
    words = dict(doc.get("presentation", {}))
    for field, given in words_of.items():
        for k, v in words.get(field, {}).items():
            if k in given:
                raise PolicyError(
                    f"presentation.{field}: {k!r} is given in part {origin.get(k)!r} "
                    "and in this policy: define it once"
                )
            given[k] = v
        if given:
            words[field] = given
    expanded = {k: v for k, v in doc.items() if k not in ("include", "quotes")}
    expanded |= {
        "parameters": params,
        "assumptions": [*assumptions, *doc.get("assumptions", [])],
        "criteria": list(items["criteria"].values()),
        "derived": list(items["derived"].values()),
        "presentation": words,
    }
    return expanded


def _check_params(c: Mapping[str, Any], given: Mapping[str, Any]) -> set[str]:
    """The criterion's parameters against its rule's declaration; returns the value sets named.

    A parameter the rule does not declare, a required one missing, or a value of the wrong kind
    is a PolicyError naming the criterion and parameter.
    """
    declared = RULE_PARAMS[c["rule"]]
    where = f"criteria[{c.get('id')!r}].params"
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise PolicyError(
                f"{where}: rule {c['rule']!r} has no parameter {name!r} (its parameters: {known})"
            )
    value_sets: set[str] = set()
    for name, kind in declared.items():
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if name not in given:
            if not optional:
                raise PolicyError(f"{where}: missing parameter {name!r} ({kind})")
            continue
        value = given[name]
        if not _is_kind(value, kind):
            raise PolicyError(f"{where}.{name}: {value!r} is not a {kind}")
        if kind == "value-set":
            value_sets.add(value)
        elif kind == "value-sets":
            value_sets.update(value)
    return value_sets


_UNDEFINED_PARAMETER = "undefined parameter {value}"
_NOT_A_PART_PARAMETER = "{where}.params.{name}: {value} is not a parameter of this part"


def _criterion(
    c: Mapping[str, Any], params: Mapping[str, Any], undefined: str
) -> tuple[CriterionSpec, set[str]]:
    """One criterion of a policy or a part, built and checked: its rule is known, each
    ``"$name"`` in its parameters is a top-level (overridable) parameter of ``params`` (else
    ``undefined``, formatted with where, name and value), the rule's parameters are of their
    declared kinds, and ``confirmable`` and ``policyText`` are well formed.

    Returns the spec and the value sets it names; raises PolicyError naming the field.
    """
    where = f"criteria[{c.get('id')!r}]"
    if c.get("rule") not in RULES:
        raise PolicyError(f"{where}: unknown rule {c.get('rule')!r}")
    given: dict[str, Any] = {}
    for name, value in c.get("params", {}).items():
        if isinstance(value, str) and value.startswith("$"):
            if value[1:] not in params:
                raise PolicyError(undefined.format(where=where, name=name, value=value))
            value = params[value[1:]]
        given[name] = value
    value_sets = _check_params(c, given)
    spec = CriterionSpec(
        id=c["id"],
        title=c["title"],
        rule=c["rule"],
        params=given,
        confirmable=_confirmable(c),
        policy_text=_quotes(c.get("policyText"), where),
    )
    return spec, value_sets


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "comparison":
        return value in COMPARISONS
    if kind in ("value-set", "text"):
        return isinstance(value, str) and bool(value)
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _hba1c_lookback(criteria: Iterable[CriterionSpec], params: Mapping[str, Any]) -> int:
    """hba1cLookbackMonths, required only of a policy with a rule that reads HbA1c."""
    if not any(c.rule in HBA1C_RULES for c in criteria):
        return int(params.get("hba1cLookbackMonths", 0))
    value = params.get("hba1cLookbackMonths")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise PolicyError("parameters: hba1cLookbackMonths must be a whole number of months")
    return value


def _date(doc: Mapping[str, Any], key: str) -> date:
    try:
        return date.fromisoformat(str(doc[key]))
    except (KeyError, ValueError) as exc:
        raise PolicyError(f"policy needs an ISO date in {key!r}") from exc


# What a link on a card may hold: an https address, nothing that ends a markdown link early
# or starts markup (the address is written into the card's markdown as it is).
_UNSAFE_IN_LINK = re.compile(r"[\s()<>\[\]\\`]")


def _link(value: Any, name: str) -> str:
    """A policy document's or IFR route's address: "" when not set, else an https URL.

    Raises PolicyError naming the parameter."""
    if value in (None, ""):
        return ""
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.netloc
        or _UNSAFE_IN_LINK.search(value)
    ):
        raise PolicyError(f"{name}: must be an https address (no spaces or brackets), or unset")
    return str(value)


def parse_policy(
    doc: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, base: Path | None = None
) -> Policy:
    """Build a Policy from its JSON document; ``overrides`` replace top-level parameters;
    parts it includes by path are read relative to ``base``.

    Raises PolicyError on anything the engine could not evaluate safely.
    """
    check_document(doc)
    doc = expand_includes(doc, base)
    params = {**doc.get("parameters", {}), **(overrides or {})}
    criteria = []
    value_sets: set[str] = set()
    for c in doc.get("criteria", []):
        spec, named = _criterion(c, params, _UNDEFINED_PARAMETER)
        criteria.append(spec)
        value_sets |= named
    derived = []
    for d in doc.get("derived", []):
        if d.get("confirmable") is not False:
            raise PolicyError(
                f'derived criterion {d.get("id")!r} must declare "confirmable": false '
                "(a composite is never confirmed as a whole; its parts are)"
            )
        derived.append(
            DerivedSpec(
                d["id"],
                d["title"],
                d["expression"],
                _quotes(d.get("policyText"), f"derived[{d['id']!r}]"),
            )
        )
    pathways = tuple(
        PathwaySpec(p["id"], p["title"], p["diagnosis"], p["expression"]) for p in doc["pathways"]
    )
    known = {c.id for c in criteria}
    for d in derived:  # derived criteria may use earlier derived ones, never later (no cycles)
        for ref in expr_ids(d.expression):
            if ref not in known:
                raise PolicyError(f"derived criterion {d.id!r} uses undefined {ref!r}")
        known.add(d.id)
    for p in pathways:
        for ref in [p.diagnosis, *expr_ids(p.expression)]:
            if ref not in known:
                raise PolicyError(f"pathway {p.id!r} uses undefined criterion {ref!r}")
    notices = tuple((n["when"], n["text"]) for n in doc.get("notices", []))
    for when, _ in notices:
        if when not in known:
            raise PolicyError(f"notice names undefined criterion {when!r}")
    m = doc["metadata"]
    # A policy published without a public address (metadata url null) is linked only where
    # the deployment sets ``policyUrl``; never a home page in its place.
    document_url = _link(params.get("policyUrl") or m["url"], "policyUrl")
    funding_url = _link(
        params.get("fundingRequestUrl") or m.get("fundingRequestUrl"), "fundingRequestUrl"
    )
    info = PolicyInfo(
        id=m["id"],
        title=m["title"],
        version=m["version"],
        publisher=m["publisher"],
        url=document_url,
        created=_date(m, "created"),
        last_modified=_date(m, "lastModified"),
        review_due=_date(m, "reviewDue"),
        places=tuple(m.get("placesCovered", [])),
        funding_request_url=funding_url,
        criteria_system=m["criteriaCodeSystem"],
        presentation=doc.get("presentation", {}),
        funding_route="fundingRequestUrl" in params or bool(m.get("fundingRequestUrl")),
    )
    assumptions = tuple(_assumption(a, params) for a in doc.get("assumptions", []))
    services = tuple(_service(info.id, s) for s in doc.get("services", []))
    value_sets.update(s.trigger_value_set for s in services if s.trigger_value_set)
    ordered = info.presentation.get("silenceWhenOrdered")
    if ordered is not None:
        if set(ordered) != {"valueSet", "means"}:
            raise PolicyError("presentation.silenceWhenOrdered needs exactly valueSet and means")
        value_sets.add(str(ordered["valueSet"]))
    for field in ("silenceWhenMet", "notChecked", "notMetTitles"):
        for cid in info.presentation.get(field, ()):
            if cid not in known:
                raise PolicyError(f"presentation.{field} names undefined criterion {cid!r}")
    for note in info.presentation.get("footnotes", ()):
        if note["when"] not in known:
            raise PolicyError(f"presentation.footnotes names undefined criterion {note['when']!r}")
        if note["is"] not in FOOTNOTE_RESULTS:
            raise PolicyError(
                f"presentation.footnotes: 'is' must be one of {', '.join(FOOTNOTE_RESULTS)}"
            )
        if note["pathway"] not in {p.id for p in pathways}:
            raise PolicyError(f"presentation.footnotes names undefined pathway {note['pathway']!r}")
    companions = tuple(str(c) for c in doc.get("companions", ()))
    if info.id in companions:
        raise PolicyError(f"policy {info.id!r} names itself as a companion")
    valid = params.get("confirmationValidMonths", 12)
    plausible = (
        float(params.get("hba1cPlausibleMinMmolMol", 20)),
        float(params.get("hba1cPlausibleMaxMmolMol", 200)),
    )
    if not 0 < plausible[0] < plausible[1]:
        raise PolicyError(f"HbA1c plausible range {plausible} is not a range")
    return Policy(
        info=info,
        hba1c_lookback_months=_hba1c_lookback(criteria, params),
        confirmation_valid_months=int(valid) if valid is not None else None,
        hba1c_plausible_mmol_mol=plausible,
        criteria=tuple(criteria),
        derived=tuple(derived),
        pathways=pathways,
        assumptions=assumptions,
        value_sets=frozenset(value_sets),
        notices=notices,
        services=services,
        companions=companions,
    )


_SERVICE_KEYS = frozenset({"id", "hook", "title", "description", "trigger", "speaks"})
_TRIGGER_KEYS = frozenset({"draftOrderValueSet", "selectedOnly"})


def _service(policy_id: str, s: Mapping[str, Any]) -> ServiceSpec:
    """One entry of the file's ``services``; raises PolicyError naming the field at fault."""
    sid = s.get("id")
    where = f"services[{sid!r}]"
    unknown = set(s) - _SERVICE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    for key in ("id", "hook", "title", "description"):
        if not isinstance(s.get(key), str) or not s[key]:
            raise PolicyError(f"{where}: {key!r} must be a non-empty string")
    sid, hook = str(s["id"]), str(s["hook"])
    if hook not in HOOKS:
        raise PolicyError(f"{where}: hook {hook!r} is not one of {list(HOOKS)}")
    speaks = s.get("speaks", "always")
    if speaks not in SPEAKS:
        raise PolicyError(f"{where}: speaks {speaks!r} is not one of {list(SPEAKS)}")
    trigger = s.get("trigger")
    if hook not in ORDER_HOOKS:
        if trigger is not None:
            raise PolicyError(f"{where}: a {hook} service has no trigger")
        return ServiceSpec(sid, hook, s["title"], s["description"], policy_id, speaks)
    if not isinstance(trigger, Mapping):
        raise PolicyError(f"{where}: an order hook needs a trigger with draftOrderValueSet")
    unknown = set(trigger) - _TRIGGER_KEYS
    if unknown:
        raise PolicyError(f"{where}.trigger: unknown field(s) {sorted(unknown)}")
    value_set = trigger.get("draftOrderValueSet")
    selected_only = trigger.get("selectedOnly", False)
    if not isinstance(value_set, str) or not value_set:
        raise PolicyError(f"{where}.trigger: draftOrderValueSet must name a value set")
    if not isinstance(selected_only, bool):
        raise PolicyError(f"{where}.trigger: selectedOnly must be true or false")
    return ServiceSpec(
        sid, hook, s["title"], s["description"], policy_id, speaks, value_set, selected_only
    )


def _confirmable(c: Mapping[str, Any]) -> bool:
    """Whether a clinician may confirm this criterion: declared in the file, never defaulted.

    Raises PolicyError when it is missing, or declared for a rule read from data alone
    (diagnoses, age, HbA1c thresholds, insulin frequency).
    """
    value = c.get("confirmable")
    if not isinstance(value, bool):
        raise PolicyError(f'criterion {c.get("id")!r} must declare "confirmable": true or false')
    if value and c["rule"] in DATA_DERIVED_RULES:
        raise PolicyError(
            f"criterion {c.get('id')!r}: rule {c['rule']!r} is read from the record and "
            "cannot be confirmable"
        )
    return value


def _list_order(path: Path) -> tuple[int, str]:
    """Where a policy file stands in the default list: its ``metadata.listOrder`` (files
    without one come last), then its name. A file that cannot be read sorts last; loading it
    names the fault."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        order = doc["metadata"].get("listOrder", DEFAULT_LIST_ORDER)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        order = DEFAULT_LIST_ORDER
    if not isinstance(order, int) or isinstance(order, bool):
        order = DEFAULT_LIST_ORDER
    return order, path.stem


def policy_names(folder: str | Path | None = None) -> list[str]:
    """The policies in ``folder`` (default: the shipped ``policies/``), by name, in the order
    the files declare (``metadata.listOrder``, then the name): the default list of policies a
    deployment serves and reports."""
    files = [p for p in _policy_dir(folder).glob("*.json") if p.is_file()]
    return [p.stem for p in sorted(files, key=_list_order)]


def _policy_dir(folder: str | Path | None) -> Path:
    return Path(folder) if folder else POLICY_DIR


def _read_policy_file(
    name_or_path: str | Path, folder: str | Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """A policy file by name (in ``folder``, default the shipped ``policies/``) or by path,
    parsed as JSON."""
    path = Path(name_or_path)
    if not path.suffix:
        path = _policy_dir(folder) / f"{name_or_path}.json"
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc


def policy_document(name_or_path: str | Path) -> dict[str, Any]:
    """A policy file as the service reads it: its JSON with the included parts written in."""
    path, doc = _read_policy_file(name_or_path)
    try:
        return expand_includes(doc, path.parent)
    except PolicyError as exc:
        raise PolicyError(f"{path.name}: {exc}") from exc


def load_policy(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Policy:
    """Load a policy by name (a file in ``policies/``) or by path."""
    path, doc = _read_policy_file(name_or_path)
    try:
        return parse_policy(doc, overrides, path.parent)
    except PolicyError as exc:
        raise PolicyError(f"{path.name}: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"{path.name}: missing or malformed {exc}") from exc


def load_policies(
    names: Iterable[str], overrides: Mapping[str, Any], folder: str | Path | None = None
) -> dict[str, Policy]:
    """Several policies by name (in ``folder``, default the shipped ``policies/``) or path,
    keyed by policy id, in the order given.

    Each override applies to every policy that declares that parameter; one that no policy
    declares is a PolicyError (a misspelt setting must not be silently ignored).
    """
    names = list(names)
    available = policy_names(folder)
    for name in names:
        if not Path(name).suffix and name not in available:
            raise PolicyError(
                f"POLICIES names {name!r}, which is not a policy of this service; choose from: "
                f"{', '.join(available)} (or give the path of a policy file)"
            )
    files = []
    for name in names:
        path, doc = _read_policy_file(name, folder)
        try:
            files.append((path, expand_includes(doc, path.parent)))
        except PolicyError as exc:
            raise PolicyError(f"{path.name}: {exc}") from exc
    docs = [doc for _, doc in files]
    unknown = set(overrides) - {k for d in docs for k in d.get("parameters", {})}
    if unknown:
        raise PolicyError(f"POLICY_PARAMETERS names parameters no policy has: {sorted(unknown)}")
    policies: dict[str, Policy] = {}
    for path, doc in files:
        mine = {k: v for k, v in overrides.items() if k in doc.get("parameters", {})}
        try:
            policy = parse_policy(doc, mine)
        except PolicyError as exc:
            raise PolicyError(f"{path.name}: {exc}") from exc
        except (KeyError, TypeError) as exc:
            raise PolicyError(f"{path.name}: malformed {exc}") from exc
        policies[policy.info.id] = policy
    return policies
