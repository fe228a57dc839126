"""Who may change what. Pure: the edges identify the actor, this decides.

- A regional operator acts only on issuers of its own region, and sets its own region's policy.
- The hub administrator creates regions and operators, reserves names for regions, sets the
  national policy, and may **retire** an issuer (the one way to stop a bad registration); it
  never adds or changes an issuer's keys or profile (separation of duties: the person who can
  add operators cannot also rewrite a region's keys).
- A verifier **replica** changes nothing at all: its certificate only lets it fetch the secrets
  it verifies with (:func:`may_fetch_secrets`). The hub administrator pins and unpins replicas.
- Local administration (the registry file on the gateway's own host) may do everything: whoever
  can write that file already holds all of it. It is audited like everything else, and the
  registry's own rules (names, versions, key admission) bind it too.

Whose a *name* is (a profile id, a policy id, what codes call an issuer) is part of the trust
state; the :mod:`~gateway.registry.registrar` denies using another region's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.model import RegionCode


class Role(enum.Enum):
    OPERATOR = "operator"
    ADMIN = "admin"
    LOCAL = "local"
    REPLICA = "replica"


class Action(enum.Enum):
    REGISTER_ISSUER = "register-issuer"
    ADD_KEY = "add-key"
    RETIRE_KEY = "retire-key"
    REVOKE_KEY = "revoke-key"
    UPDATE_PROFILE = "update-profile"
    SET_REVOCATIONS = "set-revocations"
    IMPORT_CERTIFICATE = "import-certificate"
    RETIRE_ISSUER = "retire-issuer"
    CREATE_REGION = "create-region"
    CREATE_OPERATOR = "create-operator"
    REMOVE_OPERATOR = "remove-operator"
    ADD_REPLICA = "add-replica"
    REMOVE_REPLICA = "remove-replica"
    RESERVE_NAME = "reserve-name"
    SET_POLICY = "set-policy"
    INITIALISE = "initialise"
    ACCEPT_ROLLBACK = "accept-rollback"
    RATE_LIMITED = "rate-limited"
    """Not a request: the record of denied or refused calls that were not audited one by one."""
    MIGRATE_SCHEMA = "migrate-schema"
    """Not a request: ``huren registry migrate`` upgraded the file to the current schema."""


ISSUER_ACTIONS = frozenset(
    {
        Action.REGISTER_ISSUER,
        Action.ADD_KEY,
        Action.RETIRE_KEY,
        Action.REVOKE_KEY,
        Action.UPDATE_PROFILE,
        Action.SET_REVOCATIONS,
        Action.IMPORT_CERTIFICATE,
    }
)
ADMIN_ACTIONS = frozenset(
    {
        Action.CREATE_REGION,
        Action.CREATE_OPERATOR,
        Action.REMOVE_OPERATOR,
        Action.ADD_REPLICA,
        Action.REMOVE_REPLICA,
        Action.RESERVE_NAME,
        Action.RETIRE_ISSUER,
    }
)
LOCAL_ACTIONS = frozenset(
    {
        Action.INITIALISE,
        Action.ACCEPT_ROLLBACK,
        Action.IMPORT_CERTIFICATE,
        Action.MIGRATE_SCHEMA,
    }
)
"""Only on the gateway's host: creating the registry, accepting an older copy of it, importing
signer certificates (which come without proof of possession) and upgrading its schema."""


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
    if actor.role is Role.REPLICA:
        return "a replica changes nothing: its certificate only fetches the replica secrets"
    if action in LOCAL_ACTIONS:
        return f"{action.value} is done on the gateway's host (huren registry ...)"
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
        if action is Action.RETIRE_ISSUER:
            return "only the hub administrator retires issuers"
        return "only the hub administrator creates regions and operators and reserves names"
    return None


def may_read_audit(actor: Actor) -> str | None:
    """Why ``actor`` may not read the audit log, or None: operators and administrators may
    (each region sees who changed what the others are trusted for); a replica has no need."""
    if actor.role is Role.REPLICA:
        return "a replica's certificate only fetches the replica secrets"
    return None


def may_fetch_secrets(actor: Actor) -> str | None:
    """Why ``actor`` may not fetch the secrets a replica verifies with, or None if it may: only
    a pinned replica may (an operator or administrator has no use for them, and none of the
    people who change trust should also hold every region's secrets)."""
    if actor.role is not Role.REPLICA:
        return "only a pinned replica's certificate fetches the replica secrets"
    return None


def may_read_as_admin(actor: Actor, what: str) -> str | None:
    """Why ``actor`` may not read ``what``, which only the hub administrator reads (the issuance
    log of transfer attestations, the replicas pinned), or None if it may. A regional operator
    has no need of other regions' traffic nor of the hub's replicas; a replica reads nothing."""
    if actor.role in (Role.ADMIN, Role.LOCAL):
        return None
    if actor.role is Role.REPLICA:
        return "a replica's certificate only fetches the replica secrets"
    return f"only the hub administrator reads {what}"
