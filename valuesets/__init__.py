"""Value sets as data: FHIR R4 ValueSet files loaded once into (system, code) lookups.

Each ``*.json`` file in this folder is one clinical concept the policy needs (type 1
diabetes, HbA1c, insulin, ...), with the source codelist and verification level of every
code. A deployment adds local codes by pointing ``extra_dirs`` at a folder of further
ValueSet files: a file whose ``id`` (or ``extends`` extension) names a built-in value set
adds its codes and terms to it; any other id becomes a new value set.

Where no verified code exists (needle phobia, disabling hypoglycaemia, the i-Port product)
a value set also lists clinical terms; ``TermMatcher`` finds them in free text, ignoring
negated mentions such as "no needle phobia".
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

BUILTIN_DIR = Path(__file__).resolve().parent
SD = "https://iport-cds.example.org/fhir/StructureDefinition/"
EXT_TERM = SD + "text-match-term"
EXT_SOURCE = SD + "source"
EXT_VERIFICATION = SD + "verification"
EXT_INSULIN_ACTION = SD + "insulin-action"
EXT_IMPLIED_UNIT = SD + "implied-unit"
EXT_EXTENDS = SD + "extends"
# A FHIR resource type in which this value set's codes are recorded and must be searched for
# (repeated): Observation puts its codes in the findings search; Device and DeviceUseStatement
# add those searches. Conditions, Procedures and ServiceRequests are read whatever their code.
EXT_RECORDED_IN = SD + "recorded-in"
RECORDED_IN = frozenset({"Observation", "Device", "DeviceUseStatement"})

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

# dm+d codes are SNOMED CT UK Drug Extension concepts: NHS systems send them under either
# URI, so both index as SNOMED. OIDs are what some older interfaces still send.
SYSTEM_ALIASES: Mapping[str, str] = {
    "https://dmd.nhs.uk": SNOMED,
    "http://dmd.nhs.uk": SNOMED,
    "https://fhir.nhs.uk/Id/dmd-code": SNOMED,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
}
_ICD_SYSTEMS = frozenset({ICD10, ICD10CM})


class ValueSetError(Exception):
    """A value set file is missing, unreadable or not a usable ValueSet; names the file."""


def normalise_system(system: str) -> str:
    """The canonical system URI used as a lookup key (dm+d and OIDs fold onto their code system)."""
    return SYSTEM_ALIASES.get(system, system)


def normalise_code(system: str, code: str) -> str:
    """ICD-10 codes are written both as E10.9 and E109; the dotless form is the key."""
    code = code.strip()
    if system in _ICD_SYSTEMS:
        return code.replace(".", "").upper()
    return code


_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise_text(text: str) -> str:
    """Lower case, British 'ae' folded to 'e', punctuation runs to a single space.

    So "Hypoglycaemia", "hypoglycemia" and "i-Port" / "i port" compare equal.
    """
    return _NOT_ALNUM.sub(" ", text.lower().replace("ae", "e")).strip()


@dataclass(frozen=True, slots=True)
class Concept:
    """One code in a value set, with where it came from and how far it is verified."""

    value_set: str
    system: str
    code: str
    display: str
    source: str = ""
    verification: str = ""
    insulin_action: str | None = None
    implied_unit: str | None = None


@dataclass(frozen=True)
class ValueSet:
    id: str
    url: str
    title: str
    version: str
    file: str
    concepts: tuple[Concept, ...]
    terms: tuple[str, ...]
    recorded_in: tuple[str, ...] = ()  # resource types searched for its codes (EXT_RECORDED_IN)


QUALIFIERS_FILE = BUILTIN_DIR / "text-qualifiers.json"
TECHNOLOGY_FILE = BUILTIN_DIR / "technology-kinds.json"
_NOT_VALUE_SETS = frozenset({QUALIFIERS_FILE.name, TECHNOLOGY_FILE.name})


@dataclass(frozen=True)
class TechnologyKind:
    """A kind of diabetes technology a policy asks about: its value set, how a card names it,
    and the kinds a system of this kind also is (a hybrid closed loop is a pump and a CGM)."""

    id: str  # the value set that recognises it
    label: str
    implies: tuple[str, ...] = ()
    source: str = ""
    column: str = ""  # its column in population outputs: "on_insulin_pump"


def parse_technology_kinds(doc: Any, file: str) -> dict[str, TechnologyKind]:
    """The technology kinds file, checked: every kind names a label, and implies only kinds
    listed in the file (never itself). Raises ValueSetError naming the file and the field."""
    kinds = doc.get("kinds") if isinstance(doc, dict) else None
    if not isinstance(kinds, list) or not kinds:
        raise ValueSetError(f"{file}: 'kinds' must be a non-empty list")
    out: dict[str, TechnologyKind] = {}
    for i, k in enumerate(kinds):
        where = f"{file}: kinds[{i}]"
        if not isinstance(k, dict) or set(k) - {"id", "label", "implies", "source", "column"}:
            raise ValueSetError(f"{where} must have only id, label, implies, source, column")
        kid, label, implies = k.get("id"), k.get("label"), k.get("implies", [])
        if not isinstance(kid, str) or not kid or not isinstance(label, str) or not label:
            raise ValueSetError(f"{where} needs a text id and label")
        if not isinstance(implies, list) or not all(isinstance(x, str) for x in implies):
            raise ValueSetError(f"{where}.implies must be a list of kind ids")
        if kid in out:
            raise ValueSetError(f"{where}: duplicate kind {kid!r}")
        column = k.get("column", "on_" + kid.replace("-", "_"))
        if not isinstance(column, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", column):
            raise ValueSetError(f"{where}.column must be a lower-case column name")
        out[kid] = TechnologyKind(kid, label, tuple(implies), str(k.get("source", "")), column)
    for kind in out.values():
        unknown = [x for x in kind.implies if x not in out or x == kind.id]
        if unknown:
            raise ValueSetError(f"{file}: kind {kind.id!r} implies {unknown}, not other kinds")
    return out


def load_technology_kinds(path: Path = TECHNOLOGY_FILE) -> dict[str, TechnologyKind]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueSetError(f"{path}: cannot read JSON: {exc}") from exc
    return parse_technology_kinds(doc, str(path))


@dataclass(frozen=True)
class QualifierGroup:
    """Phrases that, in scope of a term, mean the text does not assert it of this patient now.

    ``before`` phrases count within ``before_words`` words before the term, ``after`` ones
    within ``after_words`` words after it, ``anywhere`` ones anywhere in the text, and
    ``characters`` (e.g. "?") anywhere in the raw text. ``about_another_person``: the
    phrases name someone else (a relative, a partner, a carer) as the one with the finding, so
    the mention is reported as about another person rather than silently left out.
    """

    id: str
    why: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    anywhere: tuple[str, ...] = ()
    characters: tuple[str, ...] = ()
    before_words: int = 4
    after_words: int = 3
    about_another_person: bool = False


def _phrase_list(group: Mapping[str, Any], key: str, file: str) -> tuple[str, ...]:
    value = group.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueSetError(f"{file}: group {group.get('id')!r}: {key!r} must be a list of phrases")
    return tuple(value)


def parse_qualifiers(doc: Any, file: str) -> tuple[QualifierGroup, ...]:
    """The qualifier groups of a text-qualifiers document; ValueSetError naming ``file`` if bad."""
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list) or not doc["groups"]:
        raise ValueSetError(f"{file}: needs a non-empty 'groups' list")
    if not isinstance(doc.get("provenance"), str) or not doc["provenance"].strip():
        raise ValueSetError(f"{file}: needs a 'provenance' statement")
    groups = []
    for g in doc["groups"]:
        if not isinstance(g, dict) or not isinstance(g.get("id"), str):
            raise ValueSetError(f"{file}: every group needs an 'id'")
        if not isinstance(g.get("why"), str) or not g["why"].strip():
            raise ValueSetError(f"{file}: group {g['id']!r} needs a 'why'")
        unknown = set(g) - {
            "id",
            "why",
            "before",
            "after",
            "anywhere",
            "characters",
            "beforeWords",
            "afterWords",
            "aboutAnotherPerson",
        }
        if unknown:
            raise ValueSetError(f"{file}: group {g['id']!r} has unknown keys {sorted(unknown)}")
        words = {k: g.get(k, d) for k, d in (("beforeWords", 4), ("afterWords", 3))}
        if not all(isinstance(v, int) and 0 < v <= 10 for v in words.values()):
            raise ValueSetError(f"{file}: group {g['id']!r}: word windows must be 1 to 10")
        about_another_person = g.get("aboutAnotherPerson", False)
        if not isinstance(about_another_person, bool):
            raise ValueSetError(
                f"{file}: group {g['id']!r}: 'aboutAnotherPerson' must be true or false"
            )
        group = QualifierGroup(
            id=g["id"],
            why=g["why"],
            before=_phrase_list(g, "before", file),
            after=_phrase_list(g, "after", file),
            anywhere=_phrase_list(g, "anywhere", file),
            characters=_phrase_list(g, "characters", file),
            before_words=words["beforeWords"],
            after_words=words["afterWords"],
            about_another_person=about_another_person,
        )
        if not (group.before or group.after or group.anywhere or group.characters):
            raise ValueSetError(f"{file}: group {g['id']!r} lists no phrases")
        groups.append(group)
    return tuple(groups)


def load_qualifiers(path: Path = QUALIFIERS_FILE) -> tuple[QualifierGroup, ...]:
    """The built-in text qualifiers; raises ValueSetError naming the file if it is unusable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueSetError(f"{path}: cannot read JSON: {exc}") from exc
    return parse_qualifiers(doc, str(path))


def _alternation(phrases: Iterable[str]) -> re.Pattern[str] | None:
    norm = sorted({normalise_text(p) for p in phrases if normalise_text(p)}, key=len, reverse=True)
    return re.compile(rf"\b(?:{'|'.join(re.escape(p) for p in norm)})\b") if norm else None


@dataclass(frozen=True)
class _CompiledGroup:
    id: str
    before: re.Pattern[str] | None
    after: re.Pattern[str] | None
    anywhere: re.Pattern[str] | None
    characters: tuple[str, ...]
    before_words: int
    after_words: int
    about_another_person: bool


@dataclass(frozen=True)
class TermHit:
    value_set: str
    term: str


class TermMatcher:
    """Finds value-set terms in free text asserted of this patient now.

    A term in scope of a qualifier (a negation, a relative, a screen or questionnaire, a
    query, "history of"; see ``text-qualifiers.json``) is no hit: such text never meets a
    criterion.
    """

    def __init__(
        self,
        terms_by_set: Mapping[str, Iterable[str]],
        qualifiers: Iterable[QualifierGroup] = (),
    ) -> None:
        entries: list[tuple[str, str]] = []
        for vs_id, terms in terms_by_set.items():
            entries.extend((normalise_text(t), vs_id) for t in terms if normalise_text(t))
        # Longest first, so "i port advance" wins over "i port" for the reported term.
        entries.sort(key=lambda e: -len(e[0]))
        self._by_term: dict[str, set[str]] = {}
        for term, vs_id in entries:
            self._by_term.setdefault(term, set()).add(vs_id)
        alternatives = "|".join(re.escape(t) for t in self._by_term)
        self._pattern = re.compile(rf"\b(?:{alternatives})\b") if alternatives else None
        self._groups = tuple(
            _CompiledGroup(
                g.id,
                _alternation(g.before),
                _alternation(g.after),
                _alternation(g.anywhere),
                g.characters,
                g.before_words,
                g.after_words,
                g.about_another_person,
            )
            for g in qualifiers
        )

        # Records repeat the same displays ("Atorvastatin 20mg tablets") many times over: the
        # answer for a text is cached, bounded, per library.
        self._read = functools.lru_cache(maxsize=8192)(self._mentions)

    def find(self, text: str) -> tuple[TermHit, ...]:
        """The value-set terms asserted in ``text`` (qualified mentions are left out)."""
        return self._read(text)[0]

    def find_about_others(self, text: str) -> tuple[TermHit, ...]:
        """The value-set terms that ``text`` says another person has ("Needle phobia -
        husband", "Mother has needle phobia"): the mentions a qualifier group marked
        ``about_another_person`` leaves out."""
        return self._read(text)[1]

    def _qualified(self, raw: str, norm: str, start: int, end: int) -> _CompiledGroup | None:
        before = " ".join(norm[:start].split()[-10:])
        after_words = norm[end:].split()[:10]
        for g in self._groups:
            if any(c in raw for c in g.characters):
                return g
            if g.anywhere is not None and g.anywhere.search(norm):
                return g
            if g.before is not None and g.before.search(
                " ".join(before.split()[-g.before_words :])
            ):
                return g
            if g.after is not None and g.after.search(" ".join(after_words[: g.after_words])):
                return g
        return None

    def _mentions(self, text: str) -> tuple[tuple[TermHit, ...], tuple[TermHit, ...]]:
        """The terms in ``text`` asserted of the patient, and those said of another person,
        in one pass."""
        if self._pattern is None or not text:
            return (), ()
        norm = normalise_text(text)
        asserted: list[TermHit] = []
        others: list[TermHit] = []
        for m in self._pattern.finditer(norm):
            group = self._qualified(text, norm, m.start(), m.end())
            if group is None:
                into = asserted
            elif group.about_another_person:
                into = others
            else:
                continue
            into.extend(TermHit(vs, m.group(0)) for vs in sorted(self._by_term[m.group(0)]))
        return tuple(asserted), tuple(others)


class ActionNames:
    """A product's insulin action read from its name in free text ("insulin glargine",
    "Humalog Mix25 KwikPen"), from the value set's own concepts: each concept's display up
    to its strength, the first word that starts with a digit ("Humalog Mix25 100units/ml
    suspension…" is "humalog mix25"), is a name with that concept's action.

    The longest name at a place in the text is read there ("humalog mix25", not "humalog"). A
    name whose concepts disagree, or whose action is not known, gives no action: a shorter
    name inside it never stands in for it.
    """

    def __init__(self, concepts: Iterable[Concept]) -> None:
        actions: dict[str, set[str]] = {}
        for c in concepts:
            words = normalise_text(c.display).split()
            cut = next((i for i, w in enumerate(words) if w[0].isdigit()), None)
            name = " ".join(words[:cut])
            if name:
                actions.setdefault(name, set()).add(c.insulin_action or "unknown")
        self._action = {
            n: next(iter(a)) for n, a in actions.items() if len(a) == 1 and "unknown" not in a
        }
        names = sorted(actions, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names)
        self._pattern = re.compile(rf"\b(?:{alternatives})\b") if names else None

    def action_in(self, text: str) -> str | None:
        """The action the names in ``text`` give, or None when none gives one or two disagree
        ("insulin glargine and insulin lispro" is no one kind)."""
        if self._pattern is None:
            return None
        actions = {self._action.get(n) for n in self._pattern.findall(normalise_text(text))}
        return actions.pop() if len(actions) == 1 else None


@dataclass
class ValueSetLibrary:
    """All value sets, indexed for O(1) lookup by (system, code)."""

    sets: dict[str, ValueSet] = field(default_factory=dict)
    _index: dict[tuple[str, str], tuple[Concept, ...]] = field(default_factory=dict)
    qualifiers: tuple[QualifierGroup, ...] = field(default_factory=lambda: load_qualifiers())
    technology: Mapping[str, TechnologyKind] = field(
        default_factory=lambda: load_technology_kinds()
    )
    _matcher: TermMatcher | None = None
    _action_names: dict[str, ActionNames] = field(default_factory=dict)
    _memos: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rebuild()

    def memo(self, name: str, build: Callable[[], T]) -> T:
        """What ``build`` makes, kept with this library under ``name`` until its value sets
        change: a cache of what follows from the value sets alone (how a coded concept
        classifies), shared by every request and worker thread."""
        found: T | None = self._memos.get(name)
        if found is None:  # two threads may both build it: the same value either way
            found = self._memos[name] = build()
        return found

    def _rebuild(self) -> None:
        self._memos = {}
        index: dict[tuple[str, str], list[Concept]] = {}
        for vs in self.sets.values():
            for c in vs.concepts:
                key = (c.system, c.code)
                index.setdefault(key, []).append(c)
        self._index = {k: tuple(v) for k, v in index.items()}
        self._matcher = TermMatcher({vs.id: vs.terms for vs in self.sets.values()}, self.qualifiers)
        self._action_names = {
            vs.id: ActionNames(c for c in vs.concepts if c.insulin_action is not None)
            for vs in self.sets.values()
            if any(c.insulin_action is not None for c in vs.concepts)
        }

    def action_named(self, value_set: str, text: str) -> str | None:
        """The insulin action the product named in ``text`` has in ``value_set`` (see
        ``ActionNames``), or None when its name does not say."""
        names = self._action_names.get(value_set)
        return names.action_in(text) if names is not None else None

    def lookup(self, system: str, code: str) -> tuple[Concept, ...]:
        """Every concept (across value sets) that this coding is; empty if none.

        ICD-10 and ICD-10-CM share their three-character categories: a category in a value
        set (E10) stands for its whole family, so E10.65 in either system is found by it.
        """
        system = normalise_system(system)
        code = normalise_code(system, code)
        hit = self._index.get((system, code), ())
        if hit or system not in _ICD_SYSTEMS or len(code) <= 3:
            return hit
        category = code[:3]
        return tuple(c for s in sorted(_ICD_SYSTEMS) for c in self._index.get((s, category), ()))

    def find_terms(self, text: str) -> tuple[TermHit, ...]:
        assert self._matcher is not None
        return self._matcher.find(text)

    def find_terms_about_others(self, text: str) -> tuple[TermHit, ...]:
        """Terms ``text`` says another person has: not the patient's finding."""
        assert self._matcher is not None
        return self._matcher.find_about_others(text)

    def __contains__(self, vs_id: object) -> bool:
        return vs_id in self.sets

    def require(self, ids: Iterable[str]) -> None:
        """Raise ValueSetError unless every id is loaded (a policy names the sets it needs)."""
        missing = sorted(set(ids) - set(self.sets))
        if missing:
            raise ValueSetError(f"value sets required by the policy are missing: {missing}")

    def check_technology(self) -> None:
        """Raise ValueSetError unless every technology kind is a loaded value set."""
        missing = sorted(set(self.technology) - set(self.sets))
        if missing:
            raise ValueSetError(f"{TECHNOLOGY_FILE}: kinds with no value set: {missing}")


def _ext_values(element: Mapping[str, Any], url: str) -> list[Any]:
    out: list[Any] = []
    for ext in element.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            out.extend(v for k, v in ext.items() if k.startswith("value"))
    return out


def _first(element: Mapping[str, Any], url: str) -> Any:
    values = _ext_values(element, url)
    return values[0] if values else None


def parse_value_set(doc: Any, file: str) -> ValueSet:
    """Parse one ValueSet JSON document; raise ValueSetError naming ``file`` if unusable."""

    def fail(msg: str) -> ValueSetError:
        return ValueSetError(f"{file}: {msg}")

    if not isinstance(doc, dict) or doc.get("resourceType") != "ValueSet":
        raise fail("not a FHIR ValueSet (resourceType must be 'ValueSet')")
    vs_id = doc.get("id")
    if not isinstance(vs_id, str) or not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", vs_id):
        raise fail("missing or invalid 'id'")
    target = _first(doc, EXT_EXTENDS) or vs_id
    concepts: list[Concept] = []
    include = (doc.get("compose") or {}).get("include", [])
    contains = (doc.get("expansion") or {}).get("contains", [])
    if not isinstance(include, list) or not isinstance(contains, list):
        raise fail("compose.include and expansion.contains must be lists")
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for i, inc in enumerate(include):
        if not isinstance(inc, dict) or not isinstance(inc.get("system"), str):
            raise fail(f"compose.include[{i}] has no system")
        if "filter" in inc or "valueSet" in inc:
            raise fail(f"compose.include[{i}]: only explicit concepts are supported")
        for j, c in enumerate(inc.get("concept") or []):
            if not isinstance(c, dict):
                raise fail(f"compose.include[{i}].concept[{j}] is not an object")
            rows.append((inc["system"], c))
    for i, c in enumerate(contains):
        if not isinstance(c, dict) or not isinstance(c.get("system"), str):
            raise fail(f"expansion.contains[{i}] has no system")
        rows.append((c["system"], c))
    for system, c in rows:
        code = c.get("code")
        if not isinstance(code, str) or not code.strip():
            raise fail(f"a concept in {system} has no code")
        canon = normalise_system(system)
        concepts.append(
            Concept(
                value_set=target,
                system=canon,
                code=normalise_code(canon, code),
                display=str(c.get("display") or code),
                source=str(_first(c, EXT_SOURCE) or ""),
                verification=str(_first(c, EXT_VERIFICATION) or ""),
                insulin_action=_first(c, EXT_INSULIN_ACTION),
                implied_unit=_first(c, EXT_IMPLIED_UNIT),
            )
        )
    terms = tuple(str(t) for t in _ext_values(doc, EXT_TERM))
    if not concepts and not terms:
        raise fail("has neither concepts nor text-match terms")
    recorded_in = tuple(str(t) for t in _ext_values(doc, EXT_RECORDED_IN))
    if set(recorded_in) - RECORDED_IN:
        raise fail(f"recorded-in must be among {sorted(RECORDED_IN)}, not {list(recorded_in)}")
    return ValueSet(
        id=target,
        url=str(doc.get("url") or ""),
        title=str(doc.get("title") or doc.get("name") or vs_id),
        version=str(doc.get("version") or ""),
        file=file,
        concepts=tuple(concepts),
        terms=terms,
        recorded_in=recorded_in,
    )


def _merge(base: ValueSet, extra: ValueSet) -> ValueSet:
    return ValueSet(
        id=base.id,
        url=base.url,
        title=base.title,
        version=f"{base.version}+{Path(extra.file).name}",
        file=base.file,
        concepts=base.concepts + extra.concepts,
        terms=base.terms + extra.terms,
        recorded_in=tuple(dict.fromkeys(base.recorded_in + extra.recorded_in)),
    )


def _read_dir(directory: Path) -> list[ValueSet]:
    if not directory.is_dir():
        raise ValueSetError(f"{directory}: value set folder does not exist")
    out = []
    for path in sorted(directory.glob("*.json")):
        if path.name in _NOT_VALUE_SETS:
            continue  # the text qualifiers and technology kinds, loaded on their own
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueSetError(f"{path}: cannot read JSON: {exc}") from exc
        out.append(parse_value_set(doc, str(path)))
    return out


def load_value_sets(extra_dirs: Iterable[str | Path] = ()) -> ValueSetLibrary:
    """Load the built-in value sets, then local additions from ``extra_dirs``.

    Raises ValueSetError naming the file when any file is malformed, so a bad deployment
    fails at start-up rather than quietly mis-classifying patients.
    """
    sets: dict[str, ValueSet] = {}
    for vs in _read_dir(BUILTIN_DIR):
        if vs.id in sets:
            raise ValueSetError(f"{vs.file}: duplicate value set id {vs.id!r}")
        sets[vs.id] = vs
    for d in extra_dirs:
        for vs in _read_dir(Path(d)):
            sets[vs.id] = _merge(sets[vs.id], vs) if vs.id in sets else vs
    library = ValueSetLibrary(sets=sets)
    library.check_technology()
    return library
