"""The gateway's secret subject key, kept in a file readable only by its owner."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.errors import StorageUnavailable
from gateway.identity import SUBJECT_KEY_BYTES


def load_or_create_secret(path: Path) -> bytes:
    """Read the hex-encoded secret at ``path``, creating a new random one (mode 0600) if absent.

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
            f.write(secrets.token_hex(SUBJECT_KEY_BYTES) + "\n")
    try:
        text = path.read_text().strip()
        secret = bytes.fromhex(text)
    except (OSError, ValueError) as e:
        raise StorageUnavailable(f"cannot read secret file {path.name}") from e
    if len(secret) < SUBJECT_KEY_BYTES:
        raise StorageUnavailable(f"secret file {path.name} holds fewer than 32 bytes")
    return secret
