"""The one trusted-state object: it accepts regions, operators, names, profiles, issuers, keys
and policies only through checks, and vouches for itself with a digest.

Every changing method validates its input against the current state and raises
:class:`~gateway.errors.ConfigurationInvalid` (or :class:`~gateway.errors.NotFound`) on any
violation, leaving the state unchanged; on success it records what it did in :attr:`journal`
(see :mod:`gateway.registry.effects`), which is all storage writes. The verify path only ever sees
snapshots taken from it.

Who may ask for a change is not decided here (that is :mod:`gateway.registry.authority` and the
:mod:`~gateway.registry.registrar`); what the registry may hold is.

:meth:`digest` is the SHA-256 of the state's whole canonical content: every region, operator and
name owner, every profile and policy version (by the SHA-256 of the exact text that was
loaded), every issuer with its credentials (by their hashes), keys with status and validity,
revocation lists, retirements, and the trust version. The audit chain records it after every
change, so whatever a verdict or a decision reads is covered by the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from gateway.crypto import ADMISSIBLE, certificate_kid, check_pseudonym_key
from gateway.crypto.pki import NAME as OPERATOR_NAME
from gateway.errors import ConfigurationInvalid, NotFound
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, KeyId, ProfileId, Reason, RegionCode, parse_region_code
from gateway.policy.model import Policy
from gateway.profiles.model import EnvelopeFormat, KeyIdRule, Profile
from gateway.registry.effects import (
    Effect,
    IssuerAdded,
    IssuerProfileMoved,
    IssuerRetired,
    KeyAdded,
    KeyStatusChanged,
    NameClaimed,
    OperatorAdded,
    OperatorRemoved,
    PolicyAdded,
    ProfileAdded,
    RegionAdded,
    RevocationsSet,
)
from gateway.registry.model import (
    CODE_NAME,
    ISSUER_ID,
    KEY_ID,
    Issuer,
    IssuerKey,
    KeyStatus,
    NameClaim,
    NameKind,
    Operator,
    PolicyVersion,
    Region,
    Retirement,
    Revocations,
    check_online_endpoint,
)
from gateway.registry.snapshot import TrustSnapshot

MAX_REVOKED_IDS = 100_000
MAX_NAME_CHARS = 64
DIGEST_CONTEXT = b"huren-state-v1\n"
_FIXED_SECTIONS = ("names", "operators", "policies", "profiles", "regions", "version")
_COPIED_TABLES = (
    "_issuers",
    "_keys",
    "_profiles",
    "_policies",
    "_revocations",
    "_retired",
    "_regions",
    "_operators",
    "_names",
    "_profile_sources",
    "_policy_versions",
    "_certificates",
    "_digests",
)
"""Every attribute of a state that :meth:`TrustState.candidate` copies as a plain dict (all
but the version, the per-issuer key id sets and the journal)."""


class TrustState:
    """Mutable, validating registry state. Not thread-safe: one writer at a time."""

    def __init__(self, snapshot: TrustSnapshot | None = None) -> None:
        base = snapshot or TrustSnapshot.empty()
        self._version = base.version
        self._issuers = dict(base.issuers)
        self._keys = dict(base.keys)
        self._profiles = dict(base.profiles)
        self._policies = dict(base.policies)
        self._revocations = dict(base.revocations)
        self._retired = dict(base.retired)
        self._regions = dict(base.regions)
        self._operators = dict(base.operators)
        self._names = dict(base.names)
        self._profile_sources = dict(base.profile_sources)
        self._policy_versions = dict(base.policy_versions)
        self._kids: dict[IssuerId, set[KeyId]] = {}
        self._certificates: dict[bytes, IssuerKey] = {}
        for (issuer, kid), key in self._keys.items():
            self._kids.setdefault(issuer, set()).add(kid)
            self._index_certificate(key)
        self._digests: dict[str, str] = {}
        self.journal: list[Effect] = []
        """What this state accepted since it was made (a candidate's change, for storage)."""

    @property
    def version(self) -> int:
        return self._version

    def snapshot(self) -> TrustSnapshot:
        return TrustSnapshot(
            self._version,
            MappingProxyType(dict(self._issuers)),
            MappingProxyType(dict(self._keys)),
            MappingProxyType(dict(self._profiles)),
            MappingProxyType(dict(self._policies)),
            MappingProxyType(dict(self._revocations)),
            retired=MappingProxyType(dict(self._retired)),
            regions=MappingProxyType(dict(self._regions)),
            operators=MappingProxyType(dict(self._operators)),
            names=MappingProxyType(dict(self._names)),
            profile_sources=MappingProxyType(dict(self._profile_sources)),
            policy_versions=MappingProxyType(dict(self._policy_versions)),
        )

    def candidate(self) -> TrustState:
        """A copy to try a change on (with an empty journal); the digest cache carries over.

        The tables are copied as they are (their values are immutable), indexes included: a
        change costs a few dictionary copies, not a rebuild of every index from the snapshot
        (at 100,000 keys that rebuild took 0.3 s per change; docs/performance.md)."""
        copy = TrustState.__new__(TrustState)
        copy._version = self._version
        for table in _COPIED_TABLES:
            setattr(copy, table, dict(getattr(self, table)))
        copy._kids = {issuer: set(kids) for issuer, kids in self._kids.items()}
        copy.journal = []
        return copy

    def _bump(self, *sections: str) -> None:
        self._version += 1
        for section in sections:
            self._digests.pop(section, None)
        self._digests.pop("version", None)

    def raise_version(self, at_least: int) -> None:
        """Move the trust version up to ``at_least`` (after an accepted rollback, so that trust
        lists keep growing past every version already published)."""
        if at_least > self._version:
            self._version = at_least
            self._digests.pop("version", None)

    # ------------------------------------------------------------------ regions and operators

    def add_region(self, region: Region) -> None:
        try:
            parse_region_code(region.code)
        except ValueError as e:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
        _check_display_name(region.name, "region name")
        if region.code in self._regions:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"region {region.code} already exists"
            )
        self._regions[region.code] = region
        self.journal.append(RegionAdded(region))
        self._bump("regions")

    def add_operator(self, operator: Operator) -> None:
        if not OPERATOR_NAME.fullmatch(operator.name):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                "operator names are 1-64 lower-case letters, digits, '.', '_' or '-'",
            )
        if operator.replica and operator.region is not None:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "a replica has no region")
        if operator.region is not None and operator.region not in self._regions:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"region {operator.region} does not exist"
            )
        if operator.name in self._operators or any(
            o.spki_sha256 == operator.spki_sha256 for o in self._operators.values()
        ):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"operator {operator.name} or its key is already registered"
            )
        active = replace(operator, active=True)
        self._operators[operator.name] = active
        self.journal.append(OperatorAdded(active))
        self._bump("operators")

    def remove_operator(self, name: str, *, replica: bool = False) -> None:
        """Unpin an active operator (``replica``: an active replica; each only its kind)."""
        operator = self._operators.get(name)
        kind = "replica" if replica else "operator"
        if operator is None or not operator.active or operator.replica != replica:
            raise NotFound(f"no active {kind} {name[:64]}")
        self._operators[name] = replace(operator, active=False)
        self.journal.append(OperatorRemoved(name))
        self._bump("operators")

    def operator_by_pin(self, spki_sha256: str) -> Operator | None:
        return next((o for o in self._operators.values() if o.spki_sha256 == spki_sha256), None)

    # ------------------------------------------------------------------ names

    def owner(self, kind: NameKind, name: str) -> str | None:
        """The region (or ``national``) a name belongs to, if anyone's."""
        claim = self._names.get((kind, name))
        return claim.owner if claim is not None else None

    def claim(self, claim: NameClaim) -> None:
        """Give a name to its owner: the first use of a profile or policy id, or a reservation
        by the hub administrator (``reserved``). Claiming a name one already owns is a no-op.

        Raises:
            ConfigurationInvalid: if the name belongs to someone else, or is malformed.
        """
        shape = CODE_NAME if claim.kind is NameKind.ISSUER else ISSUER_ID
        if not shape.fullmatch(claim.name):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"{claim.name[:64]!r} is not a valid {claim.kind.value} name"
            )
        current = self._names.get((claim.kind, claim.name))
        if current is not None:
            if current.owner != claim.owner:
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER,
                    f"{claim.kind.value} name {claim.name!r} already belongs to {current.owner}",
                )
            return
        self._names[(claim.kind, claim.name)] = claim
        self.journal.append(NameClaimed(claim))
        self._digests.pop("names", None)

    def issuer_named(self, name: str) -> Issuer | None:
        """The issuer whose codes use ``name`` (its id or its code name), if any."""
        issuer = self._issuers.get(IssuerId(name))
        if issuer is not None:
            return issuer
        return next((i for i in self._issuers.values() if i.code_name == name), None)

    # ------------------------------------------------------------------ profiles

    def add_profile(self, profile: Profile, text: str | None = None) -> None:
        """Accept a profile version (with the text it was loaded from). Re-adding the same
        version with the same content, byte for byte or canonically
        (:attr:`~gateway.profiles.Profile.canonical_sha256`), is a no-op: the first text stays."""
        existing = self._profiles.get((profile.id, profile.version))
        if existing is not None:
            if existing.canonical_sha256 != profile.canonical_sha256:
                raise ConfigurationInvalid(
                    Reason.ERR_VERSION,
                    f"profile {profile.label} already exists with other content",
                )
            return
        if text is not None and hashlib.sha256(text.encode()).hexdigest() != profile.source_sha256:
            raise ConfigurationInvalid(Reason.ERR_PROFILE, "the profile is not this text's")
        # Route consistency is checked when an issuer is bound to the profile, not here: a new
        # version may legitimately change the envelope of a route that only its issuer uses.
        self._profiles[(profile.id, profile.version)] = profile
        self._profile_sources[(profile.id, profile.version)] = text or ""
        self.journal.append(ProfileAdded(profile.id, profile.version, text or ""))
        self._bump("profiles")

    def profile_of(self, issuer: Issuer) -> Profile:
        """The profile version ``issuer`` is bound to (it always exists)."""
        return self._profiles[(issuer.profile_id, issuer.profile_version)]

    def has_region(self, code: RegionCode) -> bool:
        return code in self._regions

    def has_profile(self, profile_id: ProfileId, version: int) -> bool:
        return (profile_id, version) in self._profiles

    # ------------------------------------------------------------------ issuers

    def add_issuer(self, issuer: Issuer) -> None:
        """Register an issuer of an existing region whose profile was already added. What its
        codes call it (its id, and its code name if it has one) may not be what codes call any
        other issuer."""
        if not ISSUER_ID.fullmatch(issuer.id):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                "issuer id must be 1-64 lower-case letters, digits, '.', '_' or '-'",
            )
        try:
            parse_region_code(issuer.region)
        except ValueError as e:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
        if issuer.region not in self._regions:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                f"region {issuer.region} is not registered; the hub administrator creates it",
            )
        _check_display_name(issuer.name, "issuer name")
        if issuer.id in self._issuers:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"issuer {issuer.id} is already registered"
            )
        if issuer.code_name is not None and not CODE_NAME.fullmatch(issuer.code_name):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "the name in codes must be 1-256 printable ASCII characters"
            )
        for name in {issuer.id, issuer.code_name or issuer.id}:
            taken = self.issuer_named(name)
            if taken is not None:
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER, f"codes already call issuer {taken.id} {name!r}"
                )
            owner = self.owner(NameKind.ISSUER, name)
            if owner is not None and owner != issuer.region:
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER, f"the issuer name {name!r} belongs to {owner}"
                )
        profile = self._profiles.get((issuer.profile_id, issuer.profile_version))
        if profile is None:
            raise ConfigurationInvalid(
                Reason.ERR_PROFILE,
                f"profile {issuer.profile_id}@{issuer.profile_version} is not registered",
            )
        _check_credentials(issuer, profile)
        self._check_route(issuer, profile)
        self._issuers[issuer.id] = issuer
        self.journal.append(IssuerAdded(issuer))
        self._bump(_issuer_section(issuer.id))

    def retire_issuer(self, issuer_id: IssuerId, at: datetime, reason: str) -> Retirement:
        """Stop an issuer for good: its codes are refused from now on, its names stay taken."""
        self._live_issuer(issuer_id)
        retirement = Retirement(issuer_id, at, reason)
        self._retired[issuer_id] = retirement
        self.journal.append(IssuerRetired(retirement))
        self._bump(_issuer_section(issuer_id))
        return retirement

    def update_profile(
        self, issuer_id: IssuerId, profile: Profile, text: str | None = None
    ) -> bool:
        """Move an issuer to the next version of its profile (the old version stays).

        Sending the issuer's current version again with the same content (byte for byte, or
        canonically) changes nothing and returns False: a retry after a lost answer, or a
        deployment script that re-applies what is already in place, succeeds.

        Raises:
            ConfigurationInvalid: ``ERR_VERSION`` for any other version than the current one or
                the next, and for the current version with other content.
        """
        issuer = self._live_issuer(issuer_id)
        current = (issuer.profile_id, issuer.profile_version)
        if (profile.id, profile.version) == current:
            if self._profiles[current].canonical_sha256 != profile.canonical_sha256:
                raise ConfigurationInvalid(
                    Reason.ERR_VERSION,
                    f"profile {profile.label} is already {issuer_id}'s, with other content; "
                    f"a change is {profile.id}@{profile.version + 1}",
                )
            return False
        if profile.id != issuer.profile_id or profile.version != issuer.profile_version + 1:
            raise ConfigurationInvalid(
                Reason.ERR_VERSION,
                f"the next profile of {issuer_id} is {issuer.profile_id}@"
                f"{issuer.profile_version + 1}, not {profile.label}",
            )
        existing = self._profiles.get((profile.id, profile.version))
        if existing is not None and existing.canonical_sha256 != profile.canonical_sha256:
            raise ConfigurationInvalid(
                Reason.ERR_VERSION, f"profile {profile.label} already exists with other content"
            )
        moved = replace(issuer, profile_version=profile.version)
        _check_credentials(moved, profile)
        self._check_route(moved, profile)
        self.add_profile(profile, text)  # checked above: cannot fail now
        self._issuers[issuer_id] = moved
        self.journal.append(IssuerProfileMoved(issuer_id, profile.version))
        self._bump(_issuer_section(issuer_id))
        return True

    def issuer(self, issuer_id: IssuerId) -> Issuer | None:
        return self._issuers.get(issuer_id)

    def retirement(self, issuer_id: IssuerId) -> Retirement | None:
        return self._retired.get(issuer_id)

    def issuer_ids(self) -> list[IssuerId]:
        return sorted(self._issuers)

    def _live_issuer(self, issuer_id: IssuerId) -> Issuer:
        issuer = self._issuers.get(issuer_id)
        if issuer is None:
            raise NotFound(f"issuer {issuer_id[:64]} is not registered")
        retired = self._retired.get(issuer_id)
        if retired is not None:
            raise ConfigurationInvalid(
                Reason.ERR_ISSUER_RETIRED,
                f"issuer {issuer_id} was retired at {retired.at.isoformat()}; it changes no more",
            )
        return issuer

    # ------------------------------------------------------------------ keys

    def add_key(self, key: IssuerKey) -> None:
        """Register a key for an existing issuer."""
        issuer = self._live_issuer(key.issuer)
        if not KEY_ID.fullmatch(key.kid):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "key id must be 1-128 printable ASCII characters"
            )
        if key.public_key.algorithm not in ADMISSIBLE:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"{key.public_key.algorithm.value} keys are not admitted"
            )
        existing = self._keys.get((key.issuer, key.kid))
        if existing is not None:
            if existing.status is KeyStatus.REVOKED:
                raise ConfigurationInvalid(
                    Reason.ERR_REVOKED_KID, f"key id {key.kid} was revoked and cannot be reused"
                )
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"issuer {key.issuer} already has a key {key.kid}"
            )
        if key.not_before and key.not_after and key.not_after <= key.not_before:
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "key validity window is empty")
        profile = self._profiles[(issuer.profile_id, issuer.profile_version)]
        if not profile.envelope.admits(key.public_key.algorithm):
            raise ConfigurationInvalid(
                Reason.ERR_ALG_NOT_ALLOWED,
                f"profile {profile.label} allows "
                f"{', '.join(a.value for a in profile.envelope.algorithms)}; "
                f"this key is {key.public_key.algorithm.value}",
            )
        _check_key_id(key, profile)
        holder = self._certificates.get(key.certificate_sha256 or b"")
        if holder is not None and holder.status is not KeyStatus.REVOKED:
            # A signer certificate vouches for one issuer (one country): codes it signed are
            # attributed to that issuer. To correct an import into the wrong one, revoke the key
            # there first (audited), then import it where it belongs.
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                f"the certificate is already issuer {holder.issuer}'s key {holder.kid}; a "
                "certificate belongs to one issuer (revoke it there first to move it)",
            )
        self._keys[(key.issuer, key.kid)] = key
        self._kids.setdefault(key.issuer, set()).add(key.kid)
        self._index_certificate(key)
        self.journal.append(KeyAdded(key))
        self._bump(_issuer_section(key.issuer))

    def certificate_holder(self, certificate_sha256: bytes) -> IssuerKey | None:
        """The key that holds this signer certificate (by its DER's SHA-256), if any: the live
        one, or else the revoked one it was last."""
        return self._certificates.get(certificate_sha256)

    def retire_key(self, issuer: IssuerId, kid: KeyId, at: datetime) -> IssuerKey:
        """Codes issued after ``at`` are refused from now on; earlier ones stay valid. A retired
        key may be retired again only earlier, never later."""
        key = self._key(issuer, kid)
        if key.status is KeyStatus.REVOKED:
            raise ConfigurationInvalid(Reason.ERR_REVOKED_KID, f"key {kid} is already revoked")
        if key.status is KeyStatus.RETIRED and key.status_since and at > key.status_since:
            # Moving a retirement later would bring back codes already refused.
            raise ConfigurationInvalid(
                Reason.ERR_VERSION,
                f"key {kid} is retired since {key.status_since.isoformat()}; "
                "a retirement can only move earlier",
            )
        return self._set_key(replace(key, status=KeyStatus.RETIRED, status_since=at))

    def revoke_key(self, issuer: IssuerId, kid: KeyId, at: datetime) -> IssuerKey:
        """Every code signed by the key is refused from now on."""
        key = self._key(issuer, kid)
        if key.status is KeyStatus.REVOKED:
            raise ConfigurationInvalid(Reason.ERR_REVOKED_KID, f"key {kid} is already revoked")
        return self._set_key(replace(key, status=KeyStatus.REVOKED, status_since=at))

    def _index_certificate(self, key: IssuerKey) -> None:
        if key.certificate_sha256 is not None:
            current = self._certificates.get(key.certificate_sha256)
            if current is None or current.status is KeyStatus.REVOKED:
                self._certificates[key.certificate_sha256] = key

    def _set_key(self, key: IssuerKey) -> IssuerKey:
        self._keys[(key.issuer, key.kid)] = key
        holder = self._certificates.get(key.certificate_sha256 or b"")
        if holder is not None and (holder.issuer, holder.kid) == (key.issuer, key.kid):
            self._certificates[key.certificate_sha256 or b""] = key  # its status changed
        self.journal.append(KeyStatusChanged(key))
        self._bump(_issuer_section(key.issuer))
        return key

    def set_revocations(self, issuer: IssuerId, kid: KeyId, revocations: Revocations) -> None:
        """Replace a key's revocation list with a newer one (a higher counter)."""
        self._key(issuer, kid)
        owner = self._issuers[issuer]
        profile = self._profiles[(owner.profile_id, owner.profile_version)]
        if profile.revocation_id is None:
            raise ConfigurationInvalid(
                Reason.ERR_PROFILE, f"profile {profile.label} reads no revocation id"
            )
        current = self._revocations.get((issuer, kid))
        if current is not None and revocations.counter <= current.counter:
            raise ConfigurationInvalid(
                Reason.ERR_VERSION,
                f"the revocation list of {issuer}/{kid} is at counter {current.counter}; "
                f"a new one must be higher than that, not {revocations.counter}",
            )
        if len(revocations.ids) > MAX_REVOKED_IDS:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"a revocation list holds at most {MAX_REVOKED_IDS} ids"
            )
        self._revocations[(issuer, kid)] = revocations
        self.journal.append(RevocationsSet(issuer, kid, revocations))
        self._bump(_issuer_section(issuer))

    def revocations(self, issuer: IssuerId, kid: KeyId) -> Revocations | None:
        return self._revocations.get((issuer, kid))

    def _key(self, issuer: IssuerId, kid: KeyId) -> IssuerKey:
        self._live_issuer(issuer)
        key = self._keys.get((issuer, kid))
        if key is None:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"issuer {issuer} has no key {kid}")
        return key

    # ------------------------------------------------------------------ policies

    def set_policy(self, policy: Policy, text: str | None = None) -> None:
        """Make ``policy`` its destination's current policy: its version must be the current one
        plus one (1 for a destination's first)."""
        current = self._policies.get(policy.key)
        expected = current.version + 1 if current else 1
        if policy.version != expected:
            raise ConfigurationInvalid(
                Reason.ERR_VERSION,
                f"the next policy of {policy.key} is version {expected}, not {policy.version}",
            )
        if text is not None and hashlib.sha256(text.encode()).hexdigest() != policy.source_sha256:
            raise ConfigurationInvalid(Reason.ERR_POLICY, "the policy is not this text's")
        record = PolicyVersion(
            policy.key, policy.version, policy.id, policy.source_sha256, text or ""
        )
        self._policies[policy.key] = policy
        self._policy_versions[policy.key] = (*self._policy_versions.get(policy.key, ()), record)
        self.journal.append(PolicyAdded(record))
        self._bump("policies")

    def policy(self, key: str) -> Policy | None:
        return self._policies.get(key)

    # ------------------------------------------------------------------ checks

    def _check_route(self, issuer: Issuer, profile: Profile) -> None:
        """Codes that start alike must decode alike: a route's issuers share the envelope (each
        may allow its own algorithms), and either all name themselves in their payloads or none
        does (a named issuer is never checked with the keys of one that is not)."""
        route = issuer.online.code_prefix if issuer.online else profile.envelope.route
        for other in self._issuers.values():
            if other.id == issuer.id:
                continue
            theirs = self._profiles[(other.profile_id, other.profile_version)]
            their_route = other.online.code_prefix if other.online else theirs.envelope.route
            if their_route != route:
                continue
            if issuer.online is not None:
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER, f"code URL prefix {route!r} is already {other.id}'s"
                )
            if not theirs.envelope.decodes_like(profile.envelope) or (theirs.issuer is None) != (
                profile.issuer is None
            ):
                raise ConfigurationInvalid(
                    Reason.ERR_PROFILE,
                    f"profile {profile.label} shares the code start {route!r} "
                    f"with {theirs.label} but decodes differently",
                )

    # ------------------------------------------------------------------ the digest

    def digest(self) -> str:
        """SHA-256 (hex) of the whole canonical content (see the module docstring)."""
        sections = [*_FIXED_SECTIONS, *(_issuer_section(i) for i in self._issuers)]
        total = hashlib.sha256(DIGEST_CONTEXT)
        for name in sorted(sections):
            value = self._digests.get(name)
            if value is None:
                text = json.dumps(
                    self._canonical(name), sort_keys=True, separators=(",", ":"), ensure_ascii=False
                )
                value = hashlib.sha256(text.encode("utf-8")).hexdigest()
                self._digests[name] = value
            total.update(f"{name}\0{value}\n".encode())
        return total.hexdigest()

    def _canonical(self, section: str) -> Any:
        if section == "version":
            return self._version
        if section == "regions":
            return [[r.code, r.name] for r in _sorted(self._regions)]
        if section == "operators":
            # A replica's row has a fifth member; operators' rows are as they always were, so
            # registries written before replicas existed keep their digests.
            return [
                [o.name, o.region, o.spki_sha256, o.active, *(["replica"] if o.replica else [])]
                for o in _sorted(self._operators)
            ]
        if section == "names":
            return [[c.kind.value, c.name, c.owner, c.reserved] for c in _sorted(self._names)]
        if section == "profiles":
            return [[i, v, p.source_sha256] for (i, v), p in sorted(self._profiles.items())]
        if section == "policies":
            return [
                [p.destination, p.version, p.policy_id, p.sha256]
                for versions in _sorted(self._policy_versions)
                for p in versions
            ]
        return self._canonical_issuer(IssuerId(section.removeprefix("issuer:")))

    def _canonical_issuer(self, issuer_id: IssuerId) -> Any:
        issuer = self._issuers[issuer_id]
        online = issuer.online
        retired = self._retired.get(issuer_id)
        keys = []
        for kid in sorted(self._kids.get(issuer_id, ())):
            key = self._keys[(issuer_id, kid)]
            listed = self._revocations.get((issuer_id, kid))
            keys.append(
                [
                    kid,
                    key.public_key.algorithm.value,
                    _hash(key.public_key.spki_der),
                    _time(key.not_before),
                    _time(key.not_after),
                    key.status.value,
                    _time(key.status_since),
                    sorted(key.usage) if key.usage is not None else None,
                    key.certificate_sha256.hex() if key.certificate_sha256 else None,
                    [listed.counter, sorted((r, _time(b)) for r, b in listed.ids.items())]
                    if listed
                    else None,
                ]
            )
        return {
            "id": issuer.id,
            "region": issuer.region,
            "name": issuer.name,
            "profile": [issuer.profile_id, issuer.profile_version],
            "online": [
                online.code_prefix,
                online.verify_url,
                online.client_id,
                _hash(online.client_secret),
            ]
            if online
            else None,
            "pseudonym_key": _hash(issuer.pseudonym_key) if issuer.pseudonym_key else None,
            "code_name": issuer.code_name,
            "retired": [_time(retired.at), retired.reason] if retired else None,
            "keys": keys,
        }

    # ------------------------------------------------------------------ loading

    @classmethod
    def restore(
        cls,
        version: int,
        *,
        regions: Iterable[Region],
        operators: Iterable[Operator],
        names: Iterable[NameClaim],
        profiles: Iterable[tuple[Profile, str]],
        issuers: Iterable[Issuer],
        keys: Iterable[IssuerKey],
        revocations: Iterable[tuple[IssuerId, KeyId, Revocations]],
        policies: Iterable[tuple[Policy, str]],
        retired: Iterable[Retirement],
    ) -> TrustState:
        """A state rebuilt from what storage holds, each element exactly as it was accepted.

        Only references are checked here (the order of acceptance is not replayed: a key stays
        valid when its issuer later moves to a profile version without its algorithm); the
        audit chain's digest is what vouches that nothing changed since.

        Raises:
            ValueError: for a reference to something the state does not hold.
        """
        state = cls()
        state._regions = {r.code: r for r in regions}
        state._operators = {o.name: o for o in operators}
        state._names = {(c.kind, c.name): c for c in names}
        for profile, text in profiles:
            state._profiles[(profile.id, profile.version)] = profile
            state._profile_sources[(profile.id, profile.version)] = text
        for issuer in issuers:
            if (issuer.profile_id, issuer.profile_version) not in state._profiles:
                raise ValueError(f"issuer {issuer.id} has no profile {issuer.profile_id}")
            state._issuers[issuer.id] = issuer
        for key in keys:
            if key.issuer not in state._issuers:
                raise ValueError(f"key {key.kid} belongs to no issuer")
            state._keys[(key.issuer, key.kid)] = key
            state._kids.setdefault(key.issuer, set()).add(key.kid)
            state._index_certificate(key)
        for issuer_id, kid, listed in revocations:
            if (issuer_id, kid) not in state._keys:
                raise ValueError(f"revocation list for an unknown key {kid}")
            state._revocations[(issuer_id, kid)] = listed
        for policy, text in policies:
            record = PolicyVersion(
                policy.key, policy.version, policy.id, policy.source_sha256, text
            )
            state._policy_versions[policy.key] = (
                *state._policy_versions.get(policy.key, ()),
                record,
            )
            state._policies[policy.key] = policy
        for retirement in retired:
            if retirement.issuer not in state._issuers:
                raise ValueError(f"retirement of an unknown issuer {retirement.issuer}")
            state._retired[retirement.issuer] = retirement
        state._version = version
        return state


def _issuer_section(issuer_id: str) -> str:
    return f"issuer:{issuer_id}"


def _sorted(mapping: dict[Any, Any]) -> list[Any]:
    return [mapping[k] for k in sorted(mapping, key=lambda k: repr(k))]


def _hash(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if value.tzinfo is UTC else value.astimezone(UTC).isoformat()


def _check_display_name(name: str, what: str) -> None:
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER, f"{what} must be 1-{MAX_NAME_CHARS} printable characters"
        )


def _check_credentials(issuer: Issuer, profile: Profile) -> None:
    """An online profile needs an endpoint and a pseudonym profile a key; nothing else has them."""
    online = issuer.online
    if (profile.envelope.format is EnvelopeFormat.ONLINE) != (online is not None):
        raise ConfigurationInvalid(
            Reason.ERR_PROFILE,
            "an online profile needs an online endpoint, and only an online profile takes one",
        )
    if online is not None:
        check_online_endpoint(online)
    wants_key = profile.identity.scheme is IdentityScheme.PSEUDONYM
    if wants_key != (issuer.pseudonym_key is not None):
        raise ConfigurationInvalid(
            Reason.ERR_PROFILE,
            "a pseudonym profile needs the issuer's pseudonym key, and only it takes one",
        )
    if issuer.pseudonym_key is not None:
        check_pseudonym_key(issuer.pseudonym_key)


def _check_key_id(key: IssuerKey, profile: Profile) -> None:
    """A key's id must follow its issuer's profile rule (EU DCC, SMART Health Cards)."""
    rule = profile.envelope.key_id
    if rule is KeyIdRule.JWK_THUMBPRINT and key.kid != key.public_key.thumbprint():
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER,
            f"profile {profile.label} needs key ids that are the key's JWK thumbprint",
        )
    if rule is KeyIdRule.X509_SHA256_8:
        if key.certificate_sha256 is None:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                f"profile {profile.label} needs keys registered from their X.509 certificate",
            )
        if key.kid != certificate_kid(key.certificate_sha256):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                f"profile {profile.label} needs the key id of the certificate "
                f"({certificate_kid(key.certificate_sha256)})",
            )
