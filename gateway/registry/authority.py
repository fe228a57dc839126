"""Who may change what. Pure: the server identifies the actor, this decides.

- A regional operator acts only on issuers of its own region.
- The hub administrator creates regions and operators, and does nothing to issuers (separation of
  duties: the person who can add operators cannot also rewrite a region's keys).
- A region's precedence policy is set by that region's operators; the national policy by the hub
  administrator.
- Local administration (the registry file on the gateway's own host) may do everything: whoever
  can write that file already holds all of it. It is audited like everything else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.model import RegionCode


class Role(enum.Enum):
    OPERATOR = "operator"
    ADMIN = "admin"
    LOCAL = "local"


class Action(enum.Enum):
    REGISTER_ISSUER = "register-issuer"
    ADD_KEY = "add-key"
    RETIRE_KEY = "retire-key"
    REVOKE_KEY = "revoke-key"
    UPDATE_PROFILE = "update-profile"
    CREATE_REGION = "create-region"
    CREATE_OPERATOR = "create-operator"
    REMOVE_OPERATOR = "remove-operator"
    SET_POLICY = "set-policy"
    SET_REVOCATIONS = "set-revocations"


ISSUER_ACTIONS = frozenset(
    {
        Action.REGISTER_ISSUER,
        Action.ADD_KEY,
        Action.RETIRE_KEY,
        Action.REVOKE_KEY,
        Action.UPDATE_PROFILE,
        Action.SET_REVOCATIONS,
    }
)


@dataclass(frozen=True, slots=True)
class Actor:
    role: Role
    name: str
    region: RegionCode | None = None

    @property
    def label(self) -> str:
        """How the audit log names the actor."""
        if self.role is Role.OPERATOR:
            return f"operator:{self.region}:{self.name}"
        return f"{self.role.value}:{self.name}"


def refusal(actor: Actor, action: Action, region: RegionCode | None) -> str | None:
    """Why ``actor`` may not do ``action`` on something of ``region``, or None if it may."""
    if actor.role is Role.LOCAL:
        return None
    if action is Action.SET_POLICY:
        if region is None:
            if actor.role is not Role.ADMIN:
                return "only the hub administrator sets the national policy"
            return None
        if actor.role is not Role.OPERATOR or region != actor.region:
            return f"only an operator of {region} sets its policy"
        return None
    if action in ISSUER_ACTIONS:
        if actor.role is not Role.OPERATOR:
            return "the hub administrator does not change issuers; their region's operator does"
        if region != actor.region:
            return f"an operator of {actor.region} cannot act on issuers of {region}"
        return None
    if actor.role is not Role.ADMIN:
        return "only the hub administrator creates regions and operators"
    return None
