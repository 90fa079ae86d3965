"""The policy core: named criteria, three-valued logic, declarative policy files.

Pure Python: no Flask, no HTTP, no database, no clock. ``evaluate(policy, record, today)``
is the whole interface; it is ``explain(assess(policy, record, today))``, and a caller that
needs only the criteria, pathways and outcome (a population row, whether a companion speaks)
calls ``assess`` alone.
"""

from policy.engine import Assessment, assess, evaluate, explain
from policy.expr import PolicyError
from policy.loading import Policy, load_policies, load_policy, parse_policy
from policy.model import CriterionResult, Decision, Evidence, Outcome, PathwayResult, Tri

__all__ = [
    "Assessment",
    "CriterionResult",
    "Decision",
    "Evidence",
    "Outcome",
    "PathwayResult",
    "Policy",
    "PolicyError",
    "Tri",
    "assess",
    "evaluate",
    "explain",
    "load_policies",
    "load_policy",
    "parse_policy",
]
