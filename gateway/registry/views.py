"""What the registry's reading calls answer, as frozen values built from one trust snapshot:
an issuer with its keys and profile versions, a destination's policy with its history.

These are what clients get back (never protobuf messages) and what the gRPC edge converts;
credentials never appear in them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from gateway.errors import NotFound, RequestInvalid
from gateway.model import IssuerId, parse_region_code
from gateway.policy import DEFAULT_NATIONAL, NATIONAL
from gateway.registry.model import Operator
from gateway.registry.snapshot import TrustSnapshot


@dataclass(frozen=True, slots=True)
class KeyView:
    kid: str
    algorithm: str
    status: str
    """``active``, ``retired`` or ``revoked``."""
    status_since: datetime | None
    not_before: datetime | None
    not_after: datetime | None
    spki_sha256: str
    usage: tuple[str, ...]
    restricted: bool
    """Whether ``usage`` restricts the key (an empty usage then means: nothing)."""
    certificate_sha256: str
    revoked_ids: int
    revocation_counter: int


@dataclass(frozen=True, slots=True)
class ProfileVersionView:
    version: int
    sha256: str
    profile_toml: str


@dataclass(frozen=True, slots=True)
class IssuerView:
    issuer_id: str
    region: str
    name: str
    profile_id: str
    profile_version: int
    keys: tuple[KeyView, ...]
    profiles: tuple[ProfileVersionView, ...]
    """Every version of the issuer's profile up to its current one, oldest first."""
    online_code_prefix: str
    pseudonymous: bool
    code_name: str
    retired_at: datetime | None = None
    retired_reason: str = ""


@dataclass(frozen=True, slots=True)
class PolicyVersionView:
    version: int
    policy_id: str
    sha256: str
    policy_toml: str


@dataclass(frozen=True, slots=True)
class PolicyView:
    destination: str
    applies_from: str
    """Where the deciding policy is filed: the destination, a region containing it,
    ``national``, or ``built-in``."""
    policy_id: str
    policy_version: int
    flags: tuple[str, ...]
    versions: tuple[PolicyVersionView, ...]


@dataclass(frozen=True, slots=True)
class TrustListView:
    jws: str
    version: int


def issuer_view(snapshot: TrustSnapshot, issuer_id: str) -> IssuerView:
    """An issuer as the registry holds it.

    Raises:
        NotFound: if it is not registered.
    """
    issuer = snapshot.issuers.get(IssuerId(issuer_id))
    if issuer is None:
        raise NotFound(f"issuer {issuer_id[:64]!r} is not registered")
    keys = []
    for (owner, kid), key in sorted(snapshot.keys.items()):
        if owner != issuer.id:
            continue
        listed = snapshot.revocations.get((owner, kid))
        keys.append(
            KeyView(
                kid=key.kid,
                algorithm=key.public_key.algorithm.value,
                status=key.status.value,
                status_since=key.status_since,
                not_before=key.not_before,
                not_after=key.not_after,
                spki_sha256=hashlib.sha256(key.public_key.spki_der).hexdigest(),
                usage=tuple(sorted(key.usage or ())),
                restricted=key.usage is not None,
                certificate_sha256=key.certificate_sha256.hex() if key.certificate_sha256 else "",
                revoked_ids=len(listed.ids) if listed else 0,
                revocation_counter=listed.counter if listed else 0,
            )
        )
    profiles = tuple(
        ProfileVersionView(version, profile.source_sha256, snapshot.profile_sources[(pid, version)])
        for (pid, version), profile in sorted(snapshot.profiles.items())
        if pid == issuer.profile_id and version <= issuer.profile_version
    )
    retired = snapshot.retired.get(issuer.id)
    return IssuerView(
        issuer_id=issuer.id,
        region=issuer.region,
        name=issuer.name,
        profile_id=issuer.profile_id,
        profile_version=issuer.profile_version,
        keys=tuple(keys),
        profiles=profiles,
        online_code_prefix=issuer.online.code_prefix if issuer.online else "",
        pseudonymous=issuer.pseudonym_key is not None,
        code_name=issuer.code_name or "",
        retired_at=retired.at if retired else None,
        retired_reason=retired.reason if retired else "",
    )


def issuer_views(snapshot: TrustSnapshot, region: str = "") -> list[IssuerView]:
    """Every issuer (of ``region``, if given), by id."""
    return [
        issuer_view(snapshot, issuer.id)
        for issuer in sorted(snapshot.issuers.values(), key=lambda i: i.id)
        if not region or issuer.region == region
    ]


def policy_view(snapshot: TrustSnapshot, destination: str) -> PolicyView:
    """The policy that decides at ``destination`` (a region code or ``national``), and every
    version filed where it is.

    Raises:
        RequestInvalid: for a destination that is neither.
    """
    if destination == NATIONAL:
        policy = snapshot.policies.get(NATIONAL) or DEFAULT_NATIONAL
    else:
        try:
            region = parse_region_code(destination)
        except ValueError as e:
            raise RequestInvalid(f"destination: {e}") from e
        policy = snapshot.policy_for(region)
    built_in = policy is DEFAULT_NATIONAL
    history = () if built_in else snapshot.policy_versions.get(policy.key, ())
    return PolicyView(
        destination=destination,
        applies_from="built-in" if built_in else policy.key,
        policy_id=policy.id,
        policy_version=policy.version,
        flags=tuple(policy.flags()),
        versions=tuple(
            PolicyVersionView(v.version, v.policy_id, v.sha256, v.text)
            for v in history
            if v.version <= policy.version
        ),
    )


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """A verifier replica's pin (``huren registry replica list``, ``ListReplicas``)."""

    name: str
    spki_sha256: str
    active: bool


def replica_views(snapshot: TrustSnapshot) -> list[ReplicaView]:
    """Every replica ever pinned, by name (removed ones with ``active`` false)."""
    replicas = (o for o in snapshot.operators.values() if o.replica)
    return [ReplicaView(o.name, o.spki_sha256, o.active) for o in sorted(replicas, key=_name)]


def _name(operator: Operator) -> str:
    return operator.name
