"""The immutable trust snapshot that verification reads: no database access on the hot path.

A snapshot holds only data the :class:`~gateway.registry.trust.TrustState` accepted, plus
indexes derived once when it is built: the route table (which code start selects which envelope
and which issuers) and the issuer-key table. Replacing the current snapshot is one reference
assignment, so a verification sees one consistent version from start to end.

Besides what verification reads, it carries the rest of the registry (regions, operators, name
owners, the text of every profile and policy version), so that reading calls, the trust list
and the next candidate state all come from one version too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.model import IssuerId, KeyId, ProfileId, RegionCode, region_contains, region_prefix
from gateway.policy.model import DEFAULT_NATIONAL, NATIONAL, Policy
from gateway.profiles.model import JWS_SHAPE, EnvelopeSpec, FieldPath, Profile
from gateway.registry.model import (
    Issuer,
    IssuerKey,
    NameClaim,
    NameKind,
    Operator,
    PolicyVersion,
    Region,
    Retirement,
    Revocations,
)


@dataclass(frozen=True, slots=True)
class Route:
    """Everything shared by the codes that start with one prefix: the envelope, and the issuers
    with the path where each one's payloads name it (all None for key-id-only formats)."""

    envelope: EnvelopeSpec
    issuers: tuple[tuple[Issuer, FieldPath | None], ...]
    holders: Mapping[KeyId, tuple[Issuer, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """For a route whose payloads name no issuer (EU DCC style): the issuers holding a key with
    each key id, so that a code's candidates are found by its key id, not by trying every issuer
    of the route (the cost of a verification does not grow with the number of issuers)."""

    @property
    def names_issuers(self) -> bool:
        return self.issuers[0][1] is not None


@dataclass(frozen=True, slots=True)
class TrustSnapshot:
    version: int
    issuers: Mapping[IssuerId, Issuer]
    keys: Mapping[tuple[IssuerId, KeyId], IssuerKey]
    profiles: Mapping[tuple[ProfileId, int], Profile]
    policies: Mapping[str, Policy] = field(default_factory=lambda: MappingProxyType({}))
    """The current precedence policy of each destination (region code, or ``national``)."""
    revocations: Mapping[tuple[IssuerId, KeyId], Revocations] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Issuer keys' revocation lists (codes revoked by id)."""
    retired: Mapping[IssuerId, Retirement] = field(default_factory=lambda: MappingProxyType({}))
    """Issuers the hub administrator retired: their codes are refused (ERR_ISSUER_RETIRED)."""
    regions: Mapping[RegionCode, Region] = field(default_factory=lambda: MappingProxyType({}))
    operators: Mapping[str, Operator] = field(default_factory=lambda: MappingProxyType({}))
    """Every operator ever pinned, by name (removed ones inactive)."""
    names: Mapping[tuple[NameKind, str], NameClaim] = field(
        default_factory=lambda: MappingProxyType({})
    )
    profile_sources: Mapping[tuple[ProfileId, int], str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """The exact text of every profile version (what the trust list publishes)."""
    policy_versions: Mapping[str, tuple[PolicyVersion, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Every version of each destination's policy, oldest first, with its text."""
    routes: Mapping[str, Route] = field(init=False)
    _prefixes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        routes: dict[str, tuple[EnvelopeSpec, list[tuple[Issuer, FieldPath | None]]]] = {}
        for issuer in sorted(self.issuers.values(), key=lambda i: i.id):
            profile = self.profile_of(issuer)
            route = issuer.online.code_prefix if issuer.online else profile.envelope.route
            routes.setdefault(route, (profile.envelope, []))[1].append((issuer, profile.issuer))
        # The issuers of key-id-only routes (their payloads name no issuer), by id.
        by_key_id = {
            i.id: name
            for name, (_, members) in routes.items()
            if members[0][1] is None
            for i, _ in members
        }
        holders: dict[str, dict[KeyId, list[Issuer]]] = {name: {} for name in routes}
        issuers = self.issuers
        for issuer_id, kid in self.keys:
            name = by_key_id.get(issuer_id)
            if name is not None:
                found = holders[name].get(kid)
                if found is None:
                    holders[name][kid] = [issuers[issuer_id]]
                else:
                    found.append(issuers[issuer_id])
        frozen = {
            name: Route(
                envelope,
                tuple(members),
                MappingProxyType(
                    {
                        kid: tuple(found) if len(found) == 1 else tuple(sorted(found, key=_id))
                        for kid, found in holders[name].items()
                    }
                ),
            )
            for name, (envelope, members) in routes.items()
        }
        object.__setattr__(self, "routes", MappingProxyType(frozen))
        # Longest prefix first, so that no prefix can shadow a longer one.
        object.__setattr__(self, "_prefixes", tuple(sorted(frozen, key=len, reverse=True)))

    @classmethod
    def empty(cls) -> TrustSnapshot:
        return cls(0, MappingProxyType({}), MappingProxyType({}), MappingProxyType({}))

    def profile_of(self, issuer: Issuer) -> Profile:
        return self.profiles[(issuer.profile_id, issuer.profile_version)]

    def policy_for(self, destination: RegionCode) -> Policy:
        """The policy that decides at ``destination``: its own, else that of the most specific
        region containing it (a province's for its cities), else the national one, else the
        built-in default."""
        best: Policy | None = None
        for key, policy in self.policies.items():
            if key == NATIONAL or policy.destination is None:
                continue
            if region_contains(policy.destination, destination) and (
                best is None
                or best.destination is None
                or len(region_prefix(policy.destination)) > len(region_prefix(best.destination))
            ):
                best = policy
        return best or self.policies.get(NATIONAL) or DEFAULT_NATIONAL

    def route_for(self, code: str) -> Route | None:
        """The route whose prefix starts ``code`` (compact JWS is recognised by its shape)."""
        for prefix in self._prefixes:
            if code.startswith(prefix):
                if prefix == JWS_SHAPE and "." not in code:
                    return None
                return self.routes[prefix]
        return None


def _id(issuer: Issuer) -> str:
    return issuer.id
