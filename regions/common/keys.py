"""A region's keys and secrets, generated on first start and kept in its state directory."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.crypto import PSEUDONYM_KEY_BYTES, Algorithm, PrivateKey
from gateway.identity import SECRET_BYTES, IdentityScheme
from gateway.storage.secrets import load_or_create_secret
from regions.common.spec import RegionSpec, Secrets


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    key: PrivateKey

    def jwk(self) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``, for ``GET /api/keys``."""
        public = self.key.public_key()
        return {**public.jwk(), "kid": self.kid, "alg": public.algorithm.value, "use": "sig"}


def key_id(region: str, key: PrivateKey, *, binary: bool = False) -> str:
    """``<region>-<first 12 characters of the key's RFC 7638 thumbprint>``, or for COSE regions
    the standard base64 of the first 8 bytes of SHA-256 over the public key (EU DCC style)."""
    if binary:
        digest = hashlib.sha256(key.public_key().spki_der).digest()[:8]
        return base64.b64encode(digest).decode("ascii")
    return f"{region}-{key.public_key().thumbprint()[:12]}"


def load_or_create(
    state_dir: Path, region: str, algorithm: Algorithm, *, binary_kid: bool = False
) -> SigningKey:
    """The region's current signing key, created (mode 0600) on first use."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / "signing-key.pem"
    if not path.exists():
        fresh = PrivateKey.generate(algorithm)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(fresh.pem())
    key = PrivateKey.from_pem(path.read_bytes(), algorithm)
    return SigningKey(key_id(region, key, binary=binary_kid), key)


def pseudonym_key_path(state_dir: Path) -> Path:
    return state_dir / "pseudonym.key"


def load_secrets(spec: RegionSpec, state_dir: Path, link_key: bytes | None) -> Secrets:
    """Everything the region signs and seals with.

    Raises:
        ValueError: for a masked-link region without the hub's linking key.
    """
    signing = load_or_create(state_dir, spec.name, spec.algorithm, binary_kid=spec.binary_kid)
    pseudonym = None
    if spec.identity is IdentityScheme.MASKED_LINK:
        if link_key is None:
            raise ValueError(f"{spec.name} needs the hub's linking key (--link-key-file)")
        if len(link_key) < SECRET_BYTES:
            raise ValueError("the linking key holds too few bytes")
    else:
        link_key = None
    if spec.identity is IdentityScheme.PSEUDONYM:
        pseudonym = load_or_create_secret(pseudonym_key_path(state_dir), PSEUDONYM_KEY_BYTES)
    return Secrets(signing.key, signing.kid, link_key, pseudonym)
