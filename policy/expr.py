"""Pathway and derived-criterion expressions: criterion ids combined with all / any / not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from policy.model import CriterionResult, Tri

Expr = str | Mapping[str, Any]


class PolicyError(Exception):
    """The policy file is malformed: unknown rule, undefined criterion, bad expression."""


def expr_ids(expr: Expr) -> list[str]:
    if isinstance(expr, str):
        return [expr]
    if not isinstance(expr, Mapping) or len(expr) != 1:
        raise PolicyError(f"expression must be a criterion id or one of all/any/not: {expr!r}")
    ((op, arg),) = expr.items()
    if op in ("all", "any"):
        if not isinstance(arg, list) or not arg:
            raise PolicyError(f"'{op}' needs a non-empty list")
        return [i for sub in arg for i in expr_ids(sub)]
    if op == "not":
        return expr_ids(arg)
    raise PolicyError(f"unknown operator {op!r}")


class TriOf(Protocol):
    """Where an expression reads each criterion's three-valued result."""

    def __getitem__(self, cid: str, /) -> Tri: ...


class _ResultOf:
    __slots__ = ("results",)

    def __init__(self, results: Mapping[str, CriterionResult]) -> None:
        self.results = results

    def __getitem__(self, cid: str, /) -> Tri:
        return self.results[cid].result


def evaluate_expr(expr: Expr, results: Mapping[str, CriterionResult]) -> Tri:
    return evaluate_values(expr, _ResultOf(results))


def evaluate_values(expr: Expr, values: TriOf) -> Tri:
    """``expr`` over bare three-valued results: what-if evaluation (``policy.decisive``)
    swaps one value in a plain dict instead of rebuilding criterion results."""
    if isinstance(expr, str):
        return values[expr]
    ((op, arg),) = expr.items()
    if op == "not":
        return evaluate_values(arg, values).negate()
    # Tri.all_of / Tri.any_of, unrolled: this is the innermost loop of every what-if.
    dominant, found = (Tri.NOT_MET, Tri.MET) if op == "all" else (Tri.MET, Tri.NOT_MET)
    for e in arg:
        v = evaluate_values(e, values)
        if v is dominant:
            return v
        if v is Tri.UNKNOWN:
            found = v
    return found


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
