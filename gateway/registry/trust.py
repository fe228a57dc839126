"""The one trusted-state object: it accepts issuers, profiles and keys only through checks.

Every method validates its input against the current state and raises
:class:`~gateway.errors.ConfigurationInvalid` on any violation, leaving the state unchanged.
Storage persists a change only after this object accepted it, and the verify path only ever sees
snapshots taken from it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

from gateway.crypto import ADMISSIBLE, certificate_kid, check_pseudonym_key
from gateway.errors import ConfigurationInvalid
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, KeyId, ProfileId, Reason, parse_region_code
from gateway.policy.model import Policy
from gateway.profiles.model import EnvelopeFormat, KeyIdRule, Profile
from gateway.registry.model import (
    CLIENT_ID,
    CODE_NAME,
    CODE_URL_PREFIX,
    ISSUER_ID,
    KEY_ID,
    MIN_CLIENT_SECRET_BYTES,
    SERVICE_URL,
    Issuer,
    IssuerKey,
    KeyStatus,
    Revocations,
)
from gateway.registry.snapshot import TrustSnapshot

MAX_REVOKED_IDS = 100_000


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
        )

    def touch(self) -> None:
        """Count a registry change outside the trust data itself (regions, operators)."""
        self._version += 1

    def restore_version(self, version: int) -> None:
        """Set the version counter to the persisted one after replaying stored rows (storage)."""
        self._version = version

    # ------------------------------------------------------------------ changes

    def add_profile(self, profile: Profile) -> None:
        """Accept a profile version. Re-adding the identical version is a no-op."""
        existing = self._profiles.get((profile.id, profile.version))
        if existing is not None:
            if existing.source_sha256 != profile.source_sha256:
                raise ConfigurationInvalid(
                    Reason.ERR_VERSION,
                    f"profile {profile.label} already exists with different content",
                )
            return
        # Route consistency is checked when an issuer is bound to the profile, not here: a new
        # version may legitimately change the envelope of a route that only its issuer uses.
        self._profiles[(profile.id, profile.version)] = profile
        self._version += 1

    def add_issuer(self, issuer: Issuer) -> None:
        """Register an issuer whose profile was already added."""
        if not ISSUER_ID.fullmatch(issuer.id):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                "issuer id must be 1-64 lower-case letters, digits, '.', '_' or '-'",
            )
        try:
            parse_region_code(issuer.region)
        except ValueError as e:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
        if not issuer.name or len(issuer.name) > 64 or not issuer.name.isprintable():
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "issuer name must be 1-64 printable characters"
            )
        if issuer.id in self._issuers:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"issuer {issuer.id} is already registered"
            )
        if issuer.code_name is not None and not CODE_NAME.fullmatch(issuer.code_name):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "the name in codes must be 1-256 printable ASCII characters"
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
        self._version += 1

    def add_key(self, key: IssuerKey) -> None:
        """Register a key for an existing issuer."""
        if key.issuer not in self._issuers:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"issuer {key.issuer} is not registered"
            )
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
        issuer = self._issuers[key.issuer]
        profile = self._profiles[(issuer.profile_id, issuer.profile_version)]
        if not profile.envelope.admits(key.public_key.algorithm):
            raise ConfigurationInvalid(
                Reason.ERR_ALG_NOT_ALLOWED,
                f"profile {profile.label} allows "
                f"{', '.join(a.value for a in profile.envelope.algorithms)}; "
                f"this key is {key.public_key.algorithm.value}",
            )
        _check_key_id(key, profile)
        self._keys[(key.issuer, key.kid)] = key
        self._version += 1

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
        retired = replace(key, status=KeyStatus.RETIRED, status_since=at)
        self._keys[(issuer, kid)] = retired
        self._version += 1
        return retired

    def revoke_key(self, issuer: IssuerId, kid: KeyId, at: datetime) -> IssuerKey:
        """Every code signed by the key is refused from now on."""
        key = self._key(issuer, kid)
        if key.status is KeyStatus.REVOKED:
            raise ConfigurationInvalid(Reason.ERR_REVOKED_KID, f"key {kid} is already revoked")
        revoked = replace(key, status=KeyStatus.REVOKED, status_since=at)
        self._keys[(issuer, kid)] = revoked
        self._version += 1
        return revoked

    def update_profile(self, issuer_id: IssuerId, profile: Profile) -> Issuer:
        """Move an issuer to the next version of its profile (the old version stays)."""
        issuer = self._issuers.get(issuer_id)
        if issuer is None:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, f"issuer {issuer_id} is not registered"
            )
        if profile.id != issuer.profile_id or profile.version != issuer.profile_version + 1:
            raise ConfigurationInvalid(
                Reason.ERR_VERSION,
                f"the next profile of {issuer_id} is {issuer.profile_id}@"
                f"{issuer.profile_version + 1}, not {profile.label}",
            )
        existing = self._profiles.get((profile.id, profile.version))
        if existing is not None and existing.source_sha256 != profile.source_sha256:
            raise ConfigurationInvalid(
                Reason.ERR_VERSION, f"profile {profile.label} already exists with other content"
            )
        moved = replace(issuer, profile_version=profile.version)
        _check_credentials(moved, profile)
        self._check_route(moved, profile)
        self.add_profile(profile)  # checked above: cannot fail now
        self._issuers[issuer_id] = moved
        self._version += 1
        return moved

    def set_policy(self, policy: Policy) -> None:
        """Make ``policy`` its destination's current policy: its version must be the current one
        plus one (1 for a destination's first)."""
        current = self._policies.get(policy.key)
        expected = current.version + 1 if current else 1
        if policy.version != expected:
            raise ConfigurationInvalid(
                Reason.ERR_VERSION,
                f"the next policy of {policy.key} is version {expected}, not {policy.version}",
            )
        self._policies[policy.key] = policy
        self._version += 1

    def set_revocations(self, issuer: IssuerId, kid: KeyId, revocations: Revocations) -> None:
        """Replace a key's revocation list with a newer one (a higher counter)."""
        self._key(issuer, kid)
        profile = self._profiles[
            (self._issuers[issuer].profile_id, self._issuers[issuer].profile_version)
        ]
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
        self._version += 1

    def revocations(self, issuer: IssuerId, kid: KeyId) -> Revocations | None:
        return self._revocations.get((issuer, kid))

    def policy(self, key: str) -> Policy | None:
        return self._policies.get(key)

    def _key(self, issuer: IssuerId, kid: KeyId) -> IssuerKey:
        key = self._keys.get((issuer, kid))
        if key is None:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"issuer {issuer} has no key {kid}")
        return key

    def issuer(self, issuer_id: IssuerId) -> Issuer | None:
        return self._issuers.get(issuer_id)

    # ------------------------------------------------------------------ checks

    def _check_route(self, issuer: Issuer, profile: Profile) -> None:
        """Codes that start alike must decode alike: a route's issuers share the envelope, and
        either all name themselves in their payloads or none does (a named issuer is never
        checked with the keys of one that is not)."""
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
            if theirs.envelope != profile.envelope or (theirs.issuer is None) != (
                profile.issuer is None
            ):
                raise ConfigurationInvalid(
                    Reason.ERR_PROFILE,
                    f"profile {profile.label} shares the code start {route!r} "
                    f"with {theirs.label} but decodes differently",
                )

    def issuer_ids(self) -> list[IssuerId]:
        return sorted(self._issuers)

    def has_key(self, issuer: IssuerId, kid: KeyId) -> bool:
        return (issuer, kid) in self._keys

    def has_profile(self, profile_id: ProfileId, version: int) -> bool:
        return (profile_id, version) in self._profiles


def _check_credentials(issuer: Issuer, profile: Profile) -> None:
    """An online profile needs an endpoint and a pseudonym profile a key; nothing else has them."""
    online = issuer.online
    if (profile.envelope.format is EnvelopeFormat.ONLINE) != (online is not None):
        raise ConfigurationInvalid(
            Reason.ERR_PROFILE,
            "an online profile needs an online endpoint, and only an online profile takes one",
        )
    if online is not None:
        if not CODE_URL_PREFIX.fullmatch(online.code_prefix):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "code URL prefix must be an http(s) URL ending in '/'"
            )
        if not SERVICE_URL.fullmatch(online.verify_url):
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "verify URL must be an http(s) URL")
        if not CLIENT_ID.fullmatch(online.client_id):
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "client id must be printable ASCII")
        if len(online.client_secret) < MIN_CLIENT_SECRET_BYTES:
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK,
                f"client secret must be at least {MIN_CLIENT_SECRET_BYTES} bytes",
            )
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
