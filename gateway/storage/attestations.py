"""The hub's transfer attestation keys and its issuance log (docs/transfer.md).

- :class:`AttestationKeys`: the private keys, one PEM file each in ``attestation-keys/`` of the
  state directory (``0700``, files ``0600``), named by the key id's hex. Which one signs is the
  registry's decision: the service uses a key only while the registry lists it as an ACTIVE key
  of the hub's issuer; a retired or revoked key stays on disk and signs nothing.
- :class:`IssuanceLog`: every issued attestation (its code reference, destination, deciding
  policy, the source codes' references, key id, issue and expiry times: no personal data), in
  SQLite, bounded: past ``max_entries`` the oldest are dropped. Read a page at a time
  (:meth:`IssuanceLog.page`) through indexes on destination, policy, issue time and every code
  reference it names.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import StorageUnavailable
from gateway.model import RegionCode
from gateway.storage.secrets import create_exclusive
from gateway.transfer import Issuance, IssuancePage, IssuanceQuery, key_id, policy_label

DEFAULT_MAX_ENTRIES = 100_000
_ALGORITHM = Algorithm.ES256


@dataclass(frozen=True, slots=True)
class AttestationKey:
    kid: str
    key: PrivateKey


class AttestationKeys:
    """The attestation private keys on this host."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def create(self) -> AttestationKey:
        """A new key, written ``0600`` before it is returned (register it next).

        Raises:
            StorageUnavailable: if it cannot be written.
        """
        key = PrivateKey.generate(_ALGORITHM)
        kid = key_id(key.public_key())
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(self.directory, 0o700)
            if not create_exclusive(self._path(kid), key.pem()):
                raise StorageUnavailable(f"an attestation key {kid} is already on disk")
        except OSError as e:
            raise StorageUnavailable(f"cannot write an attestation key: {e.strerror}") from e
        return AttestationKey(kid, key)

    def all(self) -> list[AttestationKey]:
        """Every key on disk, by key id; unreadable files are skipped (they sign nothing)."""
        found = []
        try:
            paths = sorted(self.directory.glob("*.pem"))
        except OSError:
            return []
        for path in paths:
            try:
                key = PrivateKey.from_pem(path.read_bytes(), _ALGORITHM)
            except (OSError, ValueError):
                continue
            kid = key_id(key.public_key())
            if path.name == self._path(kid).name:
                found.append(AttestationKey(kid, key))
        return found

    def _path(self, kid: str) -> Path:
        return self.directory / (base64.b64decode(kid).hex() + ".pem")


class IssuanceLog:
    """The bounded log of issued attestations, in its own SQLite file."""

    def __init__(self, path: Path, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        try:
            fresh = not path.exists()
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if fresh:
                os.chmod(path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS issuances (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " code_ref TEXT NOT NULL, destination TEXT NOT NULL, policy TEXT NOT NULL,"
                " sources TEXT NOT NULL, kid TEXT NOT NULL, issued_at TEXT NOT NULL,"
                " expires_at TEXT NOT NULL)"
            )
            self._index()
        except sqlite3.Error as e:
            raise StorageUnavailable(f"cannot open the issuance log {path.name}: {e}") from e

    def record(self, issuance: Issuance) -> int:
        """Append one issuance and drop what is beyond the bound; its sequence number.

        Raises:
            StorageUnavailable: if it cannot be written (the attestation is then not handed out).
        """
        row = (
            issuance.code_ref,
            issuance.destination,
            issuance.policy,
            json.dumps(list(issuance.sources)),
            issuance.kid,
            issuance.issued_at.astimezone(UTC).isoformat(),
            issuance.expires_at.astimezone(UTC).isoformat(),
        )
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = self._db.execute(
                        "INSERT INTO issuances (code_ref, destination, policy, sources, kid,"
                        " issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    seq = int(cursor.lastrowid or 0)
                    self._db.executemany(
                        "INSERT OR IGNORE INTO issuance_refs (code_ref, seq) VALUES (?, ?)",
                        [(ref, seq) for ref in {issuance.code_ref, *issuance.sources} if ref],
                    )
                    dropped = (seq - self.max_entries,)
                    self._db.execute("DELETE FROM issuances WHERE seq <= ?", dropped)
                    self._db.execute("DELETE FROM issuance_refs WHERE seq <= ?", dropped)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as e:
            raise StorageUnavailable(f"cannot write the issuance log: {e}") from e
        return seq

    def _index(self) -> None:
        """The indexes :meth:`page` reads through; a log written before they existed has its
        references indexed once, here."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for column in ("destination", "policy", "issued_at"):
                    self._db.execute(
                        f"CREATE INDEX IF NOT EXISTS issuances_{column} ON issuances"
                        f" ({column}, seq)"
                    )
                new = not self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'issuance_refs'"
                ).fetchone()
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS issuance_refs (code_ref TEXT NOT NULL,"
                    " seq INTEGER NOT NULL, PRIMARY KEY (code_ref, seq)) WITHOUT ROWID"
                )
                self._db.execute(
                    "CREATE INDEX IF NOT EXISTS issuance_refs_seq ON issuance_refs (seq)"
                )
                if new:
                    self._db.execute(
                        "INSERT OR IGNORE INTO issuance_refs (code_ref, seq)"
                        " SELECT code_ref, seq FROM issuances UNION"
                        " SELECT value, seq FROM issuances, json_each(issuances.sources)"
                        " WHERE value != ''"
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def page(self, query: IssuanceQuery) -> IssuancePage:
        """One page of the entries ``query`` asks for, newest first, through the indexes.

        Raises:
            StorageUnavailable: if the log cannot be read.
        """
        where: list[str] = []
        params: list[str | int] = []
        if query.before:
            where.append("seq < ?")
            params.append(query.before)
        if query.destination is not None:
            where.append("destination = ?")
            params.append(str(query.destination))
        if query.issued_from is not None:
            where.append("issued_at >= ?")
            params.append(query.issued_from.astimezone(UTC).isoformat())
        if query.issued_until is not None:
            where.append("issued_at < ?")
            params.append(query.issued_until.astimezone(UTC).isoformat())
        if query.policy_version:
            where.append("policy = ?")
            params.append(query.policy)
        elif query.policy_id:  # every version: the labels from "id@" up to "id@" + DEL
            where.append("policy >= ? AND policy < ?")
            params.extend((query.policy, query.policy + "\x7f"))
        if query.code_ref:
            where.append("seq IN (SELECT seq FROM issuance_refs WHERE code_ref = ?)")
            params.append(query.code_ref)
        sql = "SELECT seq, code_ref, destination, policy, sources, kid, issued_at, expires_at"
        sql += " FROM issuances" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY seq DESC LIMIT ?"
        try:
            with self._lock:
                rows = self._db.execute(sql, (*params, query.limit + 1)).fetchall()
                kept = int(self._db.execute("SELECT COUNT(*) FROM issuances").fetchone()[0])
        except sqlite3.Error as e:
            raise StorageUnavailable(f"cannot read the issuance log: {e}") from e
        entries = tuple((int(r[0]), _issuance(r[1:])) for r in rows[: query.limit])
        more = len(rows) > query.limit
        return IssuancePage(entries, entries[-1][0] if more else 0, kept, self.max_entries)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM issuances").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _issuance(row: Sequence[str]) -> Issuance:
    try:
        policy_id, policy_version = policy_label(row[2])
    except ValueError as e:  # written by this module only: the file was changed elsewhere
        raise StorageUnavailable(f"the issuance log holds a damaged entry: {e}") from None
    return Issuance(
        code_ref=row[0],
        destination=RegionCode(row[1]),
        policy_id=policy_id,
        policy_version=policy_version,
        sources=tuple(json.loads(row[3])),
        kid=row[4],
        issued_at=datetime.fromisoformat(row[5]),
        expires_at=datetime.fromisoformat(row[6]),
    )


class AttestationDesk:
    """What the verification service needs for transfer, from the hub's state directory."""

    def __init__(self, keys_directory: Path, log_path: Path, max_entries: int) -> None:
        self.keys = AttestationKeys(keys_directory)
        self.log = IssuanceLog(log_path, max_entries)

    def signing_keys(self) -> list[tuple[str, PrivateKey]]:
        return [(k.kid, k.key) for k in self.keys.all()]

    def record(self, issuance: Issuance) -> int:
        return self.log.record(issuance)

    def close(self) -> None:
        self.log.close()
