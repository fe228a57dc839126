"""The gateway's secrets (subject key, linking key, trust-list key), each in a file only its
owner can read, created atomically: a crash or power cut while creating one leaves either no file
or the whole file, never an empty one that would stop every later start."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import StorageUnavailable
from gateway.identity import SECRET_BYTES


def create_exclusive(path: Path, content: bytes) -> bool:
    """Write ``content`` to ``path`` (mode 0600) unless it exists; True if this call created it.

    The content goes to a temporary file in the same folder, is flushed to disk, and is then
    hard-linked into place (which fails if another process got there first); the folder entry
    is flushed too.

    Raises:
        OSError: if the folder cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        _sync_folder(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def replace_atomically(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Write ``content`` to ``path`` so that readers see the old file or the new one, whole.

    Raises:
        OSError: if the folder cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        _sync_folder(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_secret(path: Path, size: int = SECRET_BYTES) -> bytes:
    """Read the hex-encoded secret at ``path``, creating ``size`` random bytes (mode 0600) if it
    is absent.

    Raises:
        StorageUnavailable: if the file cannot be read or created, or holds a malformed key.
    """
    try:
        if not path.exists():
            create_exclusive(path, (secrets.token_hex(size) + "\n").encode("ascii"))
    except OSError as e:
        raise StorageUnavailable(f"cannot create secret file {path.name}: {e.strerror}") from e
    return read_secret(path, size)


def read_secret(path: Path, size: int = SECRET_BYTES) -> bytes:
    """The hex-encoded secret at ``path``.

    Raises:
        StorageUnavailable: if the file is missing or unreadable, or holds a malformed key.
    """
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except OSError as e:
        raise StorageUnavailable(f"cannot use secret file {path}: {e.strerror}") from e
    except ValueError as e:
        raise StorageUnavailable(f"secret file {path.name} does not hold hex") from e
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
            create_exclusive(path, PrivateKey.generate(algorithm).pem())
        return PrivateKey.from_pem(path.read_bytes(), algorithm)
    except (OSError, ValueError) as e:
        raise StorageUnavailable(f"cannot use key file {path.name}: {e}") from e
