"""What the registry holds, as frozen values: regions, operators, names and who owns them,
issuers, keys (with parsed key objects), revocation lists and issuer retirements."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gateway.crypto import PublicKey
from gateway.errors import ConfigurationInvalid
from gateway.model import IssuerId, KeyId, ProfileId, Reason, RegionCode

HUB = "national"
"""The owner of names that belong to the hub rather than to a region (the national policy's)."""

ISSUER_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
KEY_ID = re.compile(r"[\x21-\x7e]{1,128}")
CODE_URL_PREFIX = re.compile(
    r"https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?/(?:[A-Za-z0-9_-]+/){0,4}"
)
SERVICE_URL = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:/[A-Za-z0-9_.-]+){0,8}")
CLIENT_ID = re.compile(r"[\x21-\x7e]{1,64}")
MIN_CLIENT_SECRET_BYTES = 32
"""A 256-bit HMAC key at least."""
MAX_CLIENT_SECRET_BYTES = 256
MAX_URL_CHARS = 512
"""A code prefix or verify URL (what a trust list and the replica secrets carry of each)."""


class KeyStatus(enum.Enum):
    ACTIVE = "active"
    RETIRED = "retired"
    """Codes issued after ``status_since`` are refused; earlier ones stay valid until expiry."""
    REVOKED = "revoked"
    """Every code signed by this key is refused from ``status_since`` on."""


@dataclass(frozen=True, slots=True)
class OnlineEndpoint:
    """How the gateway asks an online issuer (Zhejiang style) about a token.

    Codes are URLs that start with ``code_prefix``; the gateway POSTs to ``verify_url``,
    authenticating itself with HMAC-SHA-256 under ``client_secret`` as ``client_id``. The answer is
    a JWS signed with one of the issuer's registered keys.
    """

    code_prefix: str
    verify_url: str
    client_id: str
    client_secret: bytes = field(repr=False)
    unusable: str = ""
    """Why this gateway must not ask the endpoint, if it must not (a replica whose signed trust
    list names no verify URL, or another one than its replica secrets): its codes are then
    UNVERIFIABLE ``ERR_SECRET_UNAVAILABLE`` with this as the reason given."""


def check_online_endpoint(online: OnlineEndpoint) -> None:
    """The one check of an online endpoint and its credential: by the registry when an issuer
    takes it, and by a replica on what its hub hands it (so that the hub never holds one its
    replicas refuse).

    Raises:
        ConfigurationInvalid: naming the first part that is malformed or out of bounds.
    """
    for name, url, pattern, shape in (
        ("code URL prefix", online.code_prefix, CODE_URL_PREFIX, "an http(s) URL ending in '/'"),
        ("verify URL", online.verify_url, SERVICE_URL, "an http(s) URL"),
    ):
        if len(url) > MAX_URL_CHARS:
            raise ConfigurationInvalid(
                Reason.ERR_TOO_LARGE, f"{name} must be at most {MAX_URL_CHARS} characters"
            )
        if not pattern.fullmatch(url):
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"{name} must be {shape}")
    if not CLIENT_ID.fullmatch(online.client_id):
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "client id must be printable ASCII")
    if len(online.client_secret) < MIN_CLIENT_SECRET_BYTES:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, f"client secret must be at least {MIN_CLIENT_SECRET_BYTES} bytes"
        )
    if len(online.client_secret) > MAX_CLIENT_SECRET_BYTES:
        raise ConfigurationInvalid(
            Reason.ERR_TOO_LARGE, f"client secret must be at most {MAX_CLIENT_SECRET_BYTES} bytes"
        )


@dataclass(frozen=True, slots=True)
class Issuer:
    id: IssuerId
    region: RegionCode
    name: str
    profile_id: ProfileId
    profile_version: int
    online: OnlineEndpoint | None = None
    pseudonym_key: bytes | None = field(default=None, repr=False)
    """The AES-SIV key the issuer seals identity numbers with (``pseudonym`` profiles)."""
    code_name: str | None = None
    """What the issuer's codes call it, where that is not its id (a SMART Health Cards issuer's
    ``iss`` URL); compared exactly."""

    @property
    def name_in_codes(self) -> str:
        return self.code_name or self.id


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """A registered public key. ``kid`` is what codes name; the algorithm is the key's own."""

    issuer: IssuerId
    kid: KeyId
    public_key: PublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None
    status: KeyStatus = KeyStatus.ACTIVE
    status_since: datetime | None = None
    usage: frozenset[str] | None = None
    """The kinds of certificate the key may sign (EU DCC: from its certificate's extended key
    usage); None: any."""
    certificate_sha256: bytes | None = None
    """SHA-256 of the X.509 certificate the key was registered from, if any."""

    def covers(self, issued_at: datetime) -> bool:
        """True if a code issued at ``issued_at`` falls inside this key's validity window."""
        if self.not_before is not None and issued_at < self.not_before:
            return False
        if self.not_after is not None and issued_at > self.not_after:
            return False
        return not (
            self.status is KeyStatus.RETIRED
            and self.status_since is not None
            and issued_at > self.status_since
        )


CODE_NAME = re.compile(r"[\x21-\x7e]{1,256}")


@dataclass(frozen=True, slots=True)
class Revocations:
    """An issuer key's revocation list (SMART Health Cards CRL, method ``rid``): each revoked
    id, with the instant before which its codes are revoked, or None for all of them."""

    counter: int
    """The list's ``ctr``: a newer list has a higher one."""
    ids: Mapping[str, datetime | None]

    def revokes(self, rid: str, issued_at: datetime) -> bool:
        if rid not in self.ids:
            return False
        before = self.ids[rid]
        return before is None or issued_at < before


@dataclass(frozen=True, slots=True)
class Region:
    """A region the hub administrator created (a GB/T 2260 code or an ISO 3166 country)."""

    code: RegionCode
    name: str


@dataclass(frozen=True, slots=True)
class Operator:
    """A pinned client certificate, known by the SHA-256 of its public key: a person who may
    change the registry, a regional operator (``region`` set) or a hub administrator
    (``region`` None); or a verifier **replica** (``replica``; ``region`` None), which changes
    nothing and may only fetch the secrets it verifies with. Names are one namespace."""

    name: str
    region: RegionCode | None
    spki_sha256: str
    active: bool = True
    replica: bool = False


class NameKind(enum.Enum):
    """The namespaces whose names belong to one region (or the hub)."""

    PROFILE = "profile"
    """A profile id: only its owner publishes versions of it (anyone may use a version)."""
    POLICY = "policy"
    """A policy id: only its owner's policies carry it."""
    ISSUER = "issuer"
    """What codes call an issuer: issuer ids and code names share one namespace."""


@dataclass(frozen=True, slots=True)
class NameClaim:
    """Who owns a name: the region that first used it, or the one the hub administrator
    reserved it for (``reserved``); :data:`HUB` for the national policy's names."""

    kind: NameKind
    name: str
    owner: str
    reserved: bool = False


@dataclass(frozen=True, slots=True)
class Retirement:
    """An issuer the hub administrator retired: its keys verify nothing from ``at`` on, and its
    names stay taken."""

    issuer: IssuerId
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One registered version of a destination's policy, with the text it was loaded from."""

    destination: str
    """A region code, or ``national``."""
    version: int
    policy_id: str
    sha256: str
    text: str
