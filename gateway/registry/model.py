"""Issuers and keys as the registry holds them: frozen, validated, with parsed key objects."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from gateway.crypto import PublicKey
from gateway.model import IssuerId, KeyId, ProfileId, RegionCode

ISSUER_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
KEY_ID = re.compile(r"[\x21-\x7e]{1,128}")
CODE_URL_PREFIX = re.compile(
    r"https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?/(?:[A-Za-z0-9_-]+/){0,4}"
)
SERVICE_URL = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:/[A-Za-z0-9_.-]+){0,8}")
CLIENT_ID = re.compile(r"[\x21-\x7e]{1,64}")
MIN_CLIENT_SECRET_BYTES = 32


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
