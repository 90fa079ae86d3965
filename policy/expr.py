"""Pathway and derived-criterion expressions: criterion ids combined with all / any / not."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from policy.model import CriterionResult, Tri

Expr = str | Mapping[str, Any]


class PolicyError(Exception):
    """The policy file is malformed: unknown rule, undefined criterion, bad expression."""


def expr_ids(expr: Expr) -> list[str]:
    """The criterion ids ``expr`` reads, in order (repeats kept); PolicyError when it is not
    an expression."""
    if isinstance(expr, str):
        return [expr]
    found = _IDS.get(id(expr))
    if found is None or found[0] is not expr:
        if len(_IDS) >= _KEPT_MAX:
            _IDS.clear()
        found = _IDS[id(expr)] = (expr, tuple(_ids(expr)))
    return list(found[1])


def _ids(expr: Expr) -> list[str]:
    if isinstance(expr, str):
        return [expr]
    if not isinstance(expr, Mapping) or len(expr) != 1:
        raise PolicyError(f"expression must be a criterion id or one of all/any/not: {expr!r}")
    ((op, arg),) = expr.items()
    if op in ("all", "any"):
        if not isinstance(arg, list) or not arg:
            raise PolicyError(f"'{op}' needs a non-empty list")
        return [i for sub in arg for i in _ids(sub)]
    if op == "not":
        return _ids(arg)
    raise PolicyError(f"unknown operator {op!r}")


class TriOf(Protocol):
    """Where an expression reads each criterion's three-valued result."""

    def __getitem__(self, cid: str, /) -> Tri: ...


# An expression read once into a function of the results (``_compiled``), by the id of the
# expression object, which each entry keeps (so the id is not reused while it is here). A
# policy's expressions live as long as the policy; a few hundred at most.
_KEPT_MAX = 4096
_Compiled = Callable[[Any], Tri]
_IDS: dict[int, tuple[Expr, tuple[str, ...]]] = {}
_OF_RESULTS: dict[int, tuple[Expr, _Compiled]] = {}
_OF_VALUES: dict[int, tuple[Expr, _Compiled]] = {}
_NOT = {Tri.MET: Tri.NOT_MET, Tri.NOT_MET: Tri.MET, Tri.UNKNOWN: Tri.UNKNOWN}


def _compiled(expr: Expr, of_results: bool) -> _Compiled:
    """``expr`` as a function of the criteria's results (``of_results``: CriterionResults by
    id, else bare three-valued results), reading each part only as far as Kleene's logic
    needs (an "all" stops at its first not-met part)."""
    kept = _OF_RESULTS if of_results else _OF_VALUES
    found = kept.get(id(expr))
    if found is None or found[0] is not expr:
        if len(kept) >= _KEPT_MAX:
            kept.clear()
        found = kept[id(expr)] = (expr, _compile(expr, of_results))
    return found[1]


def _compile(expr: Expr, of_results: bool) -> _Compiled:
    if isinstance(expr, str):
        cid = expr
        if of_results:
            return lambda results: results[cid].result
        return lambda values: values[cid]
    ((op, arg),) = expr.items()
    if op == "not":
        inner = _compile(arg, of_results)
        return lambda v: _NOT[inner(v)]
    parts = tuple(_compile(e, of_results) for e in arg)
    dominant, identity = (Tri.NOT_MET, Tri.MET) if op == "all" else (Tri.MET, Tri.NOT_MET)
    unknown = Tri.UNKNOWN

    def combine(v: Any) -> Tri:
        found = identity
        for part in parts:
            t = part(v)
            if t is dominant:
                return t
            if t is unknown:
                found = t
        return found

    return combine


def evaluate_expr(expr: Expr, results: Mapping[str, CriterionResult]) -> Tri:
    return _compiled(expr, True)(results)


def evaluate_values(expr: Expr, values: TriOf) -> Tri:
    """``expr`` over bare three-valued results: what-if evaluation (``policy.decisive``)
    swaps one value in a plain dict instead of rebuilding criterion results."""
    return _compiled(expr, False)(values)


def deciding_leaves(
    expr: Expr, value: Tri, results: Mapping[str, CriterionResult]
) -> list[tuple[str, bool]]:
    """The criteria that give ``expr`` its ``value``: (criterion id, negated) pairs.

    For *met*: the branch that met it (the first met alternative of an "any"); for *not met*:
    the parts that failed; for *unknown*: only the unknowns that could still change it, so an
    under-12's card does not ask about the adult route.
    """
    if isinstance(expr, str):
        return [(expr, False)] if results[expr].result is value else []
    ((op, arg),) = expr.items()
    if op == "not":
        inner = deciding_leaves(arg, value.negate(), results)
        return [(i, not negated) for i, negated in inner]
    children = [(e, evaluate_expr(e, results)) for e in arg]
    if value is Tri.MET and op == "any":
        children = [next(c for c in children if c[1] is Tri.MET)]
    elif value is Tri.NOT_MET and op == "all":
        children = [c for c in children if c[1] is Tri.NOT_MET][:1]
    return [leaf for e, v in children if v is value for leaf in deciding_leaves(e, value, results)]
