"""The gateway's secrets (subject key, linking key), each in a file only its owner can read."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import StorageUnavailable
from gateway.identity import SECRET_BYTES


def load_or_create_secret(path: Path, size: int = SECRET_BYTES) -> bytes:
    """Read the hex-encoded secret at ``path``, creating ``size`` random bytes (mode 0600) if it
    is absent.

    Raises:
        StorageUnavailable: if the file cannot be read or created, or holds a malformed key.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as e:
        raise StorageUnavailable(f"cannot create secret file {path.name}: {e.strerror}") from e
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(size) + "\n")
    try:
        text = path.read_text().strip()
        secret = bytes.fromhex(text)
    except (OSError, ValueError) as e:
        raise StorageUnavailable(f"cannot read secret file {path.name}") from e
    if len(secret) < size:
        raise StorageUnavailable(f"secret file {path.name} holds fewer than {size} bytes")
    return secret


def load_or_create_private_key(path: Path, algorithm: Algorithm) -> PrivateKey:
    """The private key in PEM at ``path``, created (mode 0600) on first use.

    Raises:
        StorageUnavailable: if the file cannot be read or created.
    """
    try:
        if not path.exists():
            fresh = PrivateKey.generate(algorithm)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(fresh.pem())
        return PrivateKey.from_pem(path.read_bytes(), algorithm)
    except (OSError, ValueError) as e:
        raise StorageUnavailable(f"cannot use key file {path.name}: {e}") from e
