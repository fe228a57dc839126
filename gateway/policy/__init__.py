"""Precedence policies: how a destination turns several verified codes into one colour."""

from gateway.policy.loader import PolicyError, load_policy
from gateway.policy.model import (
    DEFAULT_NATIONAL,
    NATIONAL,
    RANK,
    Freshness,
    Origins,
    PerOrigin,
    Policy,
    Prefer,
    Requirements,
    Strategy,
    more_severe,
)
from gateway.policy.schema import policy_schema

__all__ = [
    "DEFAULT_NATIONAL",
    "NATIONAL",
    "RANK",
    "Freshness",
    "Origins",
    "PerOrigin",
    "Policy",
    "PolicyError",
    "Prefer",
    "Requirements",
    "Strategy",
    "load_policy",
    "more_severe",
    "policy_schema",
]
