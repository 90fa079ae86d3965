"""The policy core: named criteria, three-valued logic, declarative policy files.

Pure Python: no Flask, no HTTP, no database, no clock. ``evaluate(policy, record, today)``
is the whole interface.
"""

from policy.engine import evaluate
from policy.expr import PolicyError
from policy.loading import Policy, load_policies, load_policy, parse_policy
from policy.model import CriterionResult, Decision, Evidence, Outcome, PathwayResult, Tri

__all__ = [
    "CriterionResult",
    "Decision",
    "Evidence",
    "Outcome",
    "PathwayResult",
    "Policy",
    "PolicyError",
    "Tri",
    "evaluate",
    "load_policies",
    "load_policy",
    "parse_policy",
]
