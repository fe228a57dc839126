"""The hub's state directory: what is in it, who may read it, and the small files beside the
registry (the clock's high-water mark).

The directory holds the registry (issuer credentials among it), the identity secrets and the
trust-list key, so it is created ``0700`` and every file in it ``0600`` (SQLite gives its
``-wal`` and ``-shm`` files the database file's mode). A hub refuses to start from a directory or
file that group or others can read, and says how to fix it; only the trust-list key's public
half is meant to be read by others.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.errors import StorageUnavailable
from gateway.identity import IdentityKeys
from gateway.storage.secrets import load_or_create_secret, read_secret, replace_atomically

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600


@dataclass(frozen=True, slots=True)
class StateFiles:
    """Where a hub keeps its state."""

    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / "registry.db"

    @property
    def state_record(self) -> Path:
        """The signed record of the registry's last commit (see gateway.storage.record)."""
        return self.directory / "registry.state"

    @property
    def subject_key(self) -> Path:
        return self.directory / "subject.key"

    @property
    def link_key(self) -> Path:
        """The national linking key, shared with regions that carry masked-link identities."""
        return self.directory / "link.key"

    @property
    def trust_list_key(self) -> Path:
        return self.directory / "trustlist-key.pem"

    @property
    def trust_list_public(self) -> Path:
        """The trust-list key's public JWK, to hand to whoever verifies trust lists offline."""
        return self.directory / "trustlist-key.jwk"

    @property
    def clock_mark(self) -> Path:
        """The latest instant the hub's verification has seen (threats.md F6)."""
        return self.directory / "clock.mark"

    @property
    def attestation_keys(self) -> Path:
        """The hub's transfer attestation keys, one PEM file each (docs/transfer.md)."""
        return self.directory / "attestation-keys"

    @property
    def issuance_log(self) -> Path:
        """The bounded log of issued attestations (no personal data)."""
        return self.directory / "attestations.db"

    def private_files(self) -> list[Path]:
        database = self.database
        return [
            database,
            database.with_name(database.name + "-wal"),
            database.with_name(database.name + "-shm"),
            self.state_record,
            self.subject_key,
            self.link_key,
            self.trust_list_key,
            self.clock_mark,
            self.attestation_keys,
            *sorted(self.attestation_keys.glob("*.pem")),
            self.issuance_log,
            self.issuance_log.with_name(self.issuance_log.name + "-wal"),
            self.issuance_log.with_name(self.issuance_log.name + "-shm"),
        ]

    def make_directory(self) -> None:
        """Create the directory ``0700`` (and tighten it to that if it exists).

        Raises:
            StorageUnavailable: if it cannot be created.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIRECTORY)
            os.chmod(self.directory, PRIVATE_DIRECTORY)
        except OSError as e:
            raise StorageUnavailable(f"cannot create {self.directory}: {e.strerror}") from e

    def check_private(self) -> None:
        """Refuse a state directory that group or others may read.

        Raises:
            StorageUnavailable: naming the first loose directory or file and the command that
                fixes it.
        """
        if not self.directory.is_dir():
            raise StorageUnavailable(
                f"no state directory {self.directory}: create it with `huren registry init`"
            )
        for path, fix in [
            (self.directory, "chmod 700"),
            *((p, "chmod 700" if p.is_dir() else "chmod 600") for p in self.private_files()),
        ]:
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                continue
            if mode & 0o077:
                raise StorageUnavailable(
                    f"refusing to use {path}: group or others may access it (mode {mode:04o}); "
                    f"it holds secrets: run `{fix} {path}`"
                )

    def identities(self) -> IdentityKeys:
        """The hub's identity secrets (created with the registry).

        Raises:
            StorageUnavailable: if they are missing or unreadable.
        """
        return IdentityKeys(*self.identity_secrets())

    def identity_secrets(self) -> tuple[bytes, bytes]:
        """The subject key and the link key as stored (what a replica is handed).

        Raises:
            StorageUnavailable: if they are missing or unreadable.
        """
        return read_secret(self.subject_key), read_secret(self.link_key)

    def create_identities(self) -> IdentityKeys:
        return IdentityKeys(
            load_or_create_secret(self.subject_key), load_or_create_secret(self.link_key)
        )

    def read_clock_mark(self) -> datetime | None:
        """The persisted clock high-water mark, if there is a readable one."""
        try:
            value = datetime.fromisoformat(self.clock_mark.read_text("ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return value if value.tzinfo is not None else None

    def write_clock_mark(self, instant: datetime) -> None:
        replace_atomically(self.clock_mark, (instant.isoformat() + "\n").encode(), PRIVATE_FILE)
