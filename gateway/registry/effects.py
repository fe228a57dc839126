"""What an accepted change did to the registry, element by element: the journal a candidate
:class:`~gateway.registry.trust.TrustState` keeps, and the only thing storage writes.

Storage never decides: it maps each effect to its rows, in order, inside the change's
transaction. Because the state records an effect in the same method that makes the change,
what is stored cannot drift from what was validated. Storage stamps the rows with the time of
the change's audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.model import IssuerId, KeyId, ProfileId
from gateway.registry.model import (
    Issuer,
    IssuerKey,
    NameClaim,
    Operator,
    PolicyVersion,
    Region,
    Retirement,
    Revocations,
)


@dataclass(frozen=True, slots=True)
class RegionAdded:
    region: Region


@dataclass(frozen=True, slots=True)
class OperatorAdded:
    operator: Operator


@dataclass(frozen=True, slots=True)
class OperatorRemoved:
    name: str


@dataclass(frozen=True, slots=True)
class NameClaimed:
    claim: NameClaim


@dataclass(frozen=True, slots=True)
class ProfileAdded:
    profile_id: ProfileId
    version: int
    text: str


@dataclass(frozen=True, slots=True)
class IssuerAdded:
    issuer: Issuer


@dataclass(frozen=True, slots=True)
class IssuerProfileMoved:
    issuer: IssuerId
    version: int


@dataclass(frozen=True, slots=True)
class IssuerRetired:
    retirement: Retirement


@dataclass(frozen=True, slots=True)
class KeyAdded:
    key: IssuerKey


@dataclass(frozen=True, slots=True)
class KeyStatusChanged:
    key: IssuerKey


@dataclass(frozen=True, slots=True)
class RevocationsSet:
    issuer: IssuerId
    kid: KeyId
    revocations: Revocations


@dataclass(frozen=True, slots=True)
class PolicyAdded:
    policy: PolicyVersion


Effect = (
    RegionAdded
    | OperatorAdded
    | OperatorRemoved
    | NameClaimed
    | ProfileAdded
    | IssuerAdded
    | IssuerProfileMoved
    | IssuerRetired
    | KeyAdded
    | KeyStatusChanged
    | RevocationsSet
    | PolicyAdded
)
