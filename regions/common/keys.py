"""A region's signing keys, generated on first start and kept in its state directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.crypto import Algorithm, PrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    key: PrivateKey

    def jwk(self) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``, for ``GET /api/keys``."""
        public = self.key.public_key()
        return {**public.jwk(), "kid": self.kid, "alg": public.algorithm.value, "use": "sig"}


def key_id(region: str, key: PrivateKey) -> str:
    """``<region>-<first 12 characters of the key's RFC 7638 thumbprint>``."""
    return f"{region}-{key.public_key().thumbprint()[:12]}"


def load_or_create(state_dir: Path, region: str, algorithm: Algorithm) -> SigningKey:
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
    return SigningKey(key_id(region, key), key)
