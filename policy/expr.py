"""Pathway and derived-criterion expressions: criterion ids combined with all / any / not."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from facts.kept import Kept
from policy.model import CriterionResult, Tri

Expr = str | Mapping[str, Any]


class PolicyError(Exception):
    """The policy file is malformed: unknown rule, undefined criterion, bad expression."""


def expr_ids(expr: Expr) -> list[str]:
    """The criterion ids ``expr`` reads, in order (repeats kept); PolicyError when it is not
    an expression."""
    if isinstance(expr, str):
        return [expr]
    return list(cast(tuple[str, ...], _kept("ids", expr, lambda e: tuple(_ids(e)))))


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


# An expression read once into a function of the results (``_compiled``), by what the
# function does and the id of the expression object, which each entry keeps (so the id is
# not reused while it is here). A policy's expressions live as long as the policy.
_Compiled = Callable[[Any], Tri]
_Leaves = Callable[[Mapping[str, CriterionResult], Tri], list[tuple[str, bool]]]
_KEPT: Kept[tuple[str, int], tuple[Expr, Any]] = Kept(4096)
_NOT = {Tri.MET: Tri.NOT_MET, Tri.NOT_MET: Tri.MET, Tri.UNKNOWN: Tri.UNKNOWN}


def _kept(kind: str, expr: Expr, build: Callable[[Expr], Any]) -> Any:
    found = _KEPT.get((kind, id(expr)))
    if found is None or found[0] is not expr:
        found = _KEPT.keep((kind, id(expr)), (expr, build(expr)))
    return found[1]


def _compiled(expr: Expr, of_results: bool) -> _Compiled:
    """``expr`` as a function of the criteria's results (``of_results``: CriterionResults by
    id, else bare three-valued results), reading each part only as far as Kleene's logic
    needs (an "all" stops at its first not-met part)."""
    if of_results:
        return cast(_Compiled, _kept("results", expr, lambda e: _compile(e, True)))
    return cast(_Compiled, _kept("values", expr, lambda e: _compile(e, False)))


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
    leaves = cast(_Leaves, _kept("leaves", expr, _compile_leaves))
    return leaves(results, value)


def _compile_leaves(expr: Expr) -> _Leaves:
    if isinstance(expr, str):
        cid = expr

        def leaf(results: Mapping[str, CriterionResult], value: Tri) -> list[tuple[str, bool]]:
            return [(cid, False)] if results[cid].result is value else []

        return leaf
    ((op, arg),) = expr.items()
    if op == "not":
        inner = _compile_leaves(arg)

        def negated(results: Mapping[str, CriterionResult], value: Tri) -> list[tuple[str, bool]]:
            return [(i, not neg) for i, neg in inner(results, _NOT[value])]

        return negated
    parts = tuple((_compile(e, True), _compile_leaves(e)) for e in arg)
    # Met "any": the first alternative met; failed "all": the first part failed; otherwise
    # every part with the value.
    first = Tri.MET if op == "any" else Tri.NOT_MET if op == "all" else None

    def node(results: Mapping[str, CriterionResult], value: Tri) -> list[tuple[str, bool]]:
        if value is first:
            for of, leaves in parts:
                if of(results) is value:
                    return leaves(results, value)
            if value is Tri.MET:
                raise StopIteration  # no alternative met: the expression is not met
            return []
        out: list[tuple[str, bool]] = []
        for of, leaves in parts:
            if of(results) is value:
                out += leaves(results, value)
        return out

    return node
