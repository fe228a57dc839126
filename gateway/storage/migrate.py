"""Upgrading a registry written by an older schema: ``huren registry migrate``.

A gateway refuses a registry of another schema and names this command; it never upgrades one
by itself. The command, run by the hub's administrator with the gateway stopped:

1. reads the file's schema version; only a version with a migration below is upgraded (the
   current one needs nothing; a newer one, from a later huren, is refused);
2. checks the file as its own version would have: SQLite's ``quick_check``, and the audit chain
   whole and ending at the head recorded with its last change. An edited registry is not
   upgraded (that would launder the edit into a chain that verifies);
3. copies the file, through SQLite's backup API, to ``registry.db.schema-N.<UTC time>.bak``
   beside it (mode 0600), and fsyncs the copy: the way back;
4. in one write transaction, rebuilds every table in the current schema from the old rows
   (columns the current schema no longer keeps are dropped; what it adds is derived, see
   :func:`_names_from_6`), sets the schema version, and appends the audit entry
   ``migrate-schema`` that the Registrar's :func:`~gateway.registry.registrar.schema_upgrade`
   decides (only the hub's host may), in the name of the administrator, chained to the old
   entries, whose detail names the versions, the backup file and its SHA-256, and whose state
   digest is the current schema's digest of the state as read back;
5. writes the signed state record beside it (the current schema keeps one).

The old entries stay in the chain as they were (the entry format did not change), so `huren audit
verify` checks the whole history afterwards.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from gateway.errors import RegistryDamaged, StorageUnavailable
from gateway.registry.audit import GENESIS, AuditEntry, verify_chain
from gateway.registry.authority import Action, Actor
from gateway.registry.model import NameKind
from gateway.registry.registrar import AuditRecord, RequestRecord, schema_upgrade
from gateway.storage.database import open_database, write_transaction
from gateway.storage.record import StateRecord
from gateway.storage.sqlite import (
    _TABLES,
    AUDIT_HEAD,
    SCHEMA_VERSION,
    _audit_entry,
    _mark,
    _restore,
    append_entry,
    next_requests_digest,
)


@dataclass(frozen=True, slots=True)
class Migrated:
    """What ``migrate`` did: from and to which schema, the backup, the new audit entry."""

    from_version: int
    to_version: int
    backup: Path | None
    entry: int | None


def schema_version(path: Path) -> int | None:
    """The schema version a registry file says it has (None: it says none).

    Raises:
        StorageUnavailable: if there is no file; RegistryDamaged: if SQLite cannot read it.
    """
    if not path.is_file():
        raise StorageUnavailable(f"no registry at {path}")
    db = None
    try:  # read-only: nothing is created or changed, whatever the file holds
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error as e:
        raise RegistryDamaged(f"{path.name} cannot be read as a registry ({e})") from e
    finally:
        if db is not None:
            db.close()
    if row is None or not str(row[0]).isdigit():
        return None
    return int(row[0])


def migrate(path: Path, record: StateRecord, actor: Actor, now: datetime) -> Migrated:
    """Upgrade the registry at ``path`` to :data:`SCHEMA_VERSION` (see the module docstring).

    Raises:
        StorageUnavailable: for a missing file, or one that cannot be copied or written.
        RegistryDamaged: for a version with no way forward, or a file that does not verify as
            its own version.
    """
    found = schema_version(path)
    if found == SCHEMA_VERSION:
        return Migrated(found, found, None, None)
    if found is None or found not in MIGRATIONS:
        known = ", ".join(str(v) for v in sorted(MIGRATIONS))
        raise RegistryDamaged(
            f"{path.name} has registry schema {found if found is not None else 'none'}: this "
            f"huren reads schema {SCHEMA_VERSION} and upgrades schema {known} only"
        )
    db = open_database(path)
    try:
        _check_old(db, found)
        backup = _backup(db, path, found, now)
        digest = hashlib.sha256(backup.read_bytes()).hexdigest()
        # Tables are rebuilt one by one: references are checked once all are (in the same
        # transaction), not while a referenced table is replaced.
        db.execute("PRAGMA foreign_keys=OFF")
        with write_transaction(db):
            MIGRATIONS[found](db)
            if db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise RegistryDamaged("a row refers to one that does not exist: not upgraded")
            record_of = schema_upgrade(actor, now, found, SCHEMA_VERSION, backup.name, digest)
            entry = _append_migration(db, record_of)
        db.execute("PRAGMA foreign_keys=ON")
    finally:
        db.close()
    record.write(_mark(entry))
    return Migrated(found, SCHEMA_VERSION, backup, entry.seq)


def _check_old(db: sqlite_utils.Database, version: int) -> None:
    rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
    if rows != ["ok"]:
        raise RegistryDamaged(f"the registry file is damaged ({'; '.join(rows[:3])}): not upgraded")
    cursor = db.execute("SELECT * FROM audit ORDER BY seq")
    columns = [d[0] for d in cursor.description]
    entries = [_audit_entry(dict(zip(columns, row, strict=True))) for row in cursor.fetchall()]
    report = verify_chain(entries)
    if not report.intact:
        raise RegistryDamaged(
            f"the schema-{version} audit chain is broken at entry {report.broken_at}: "
            f"{report.problem}; not upgraded (restore a backup that `huren audit verify` accepts)"
        )
    head = db.execute("SELECT value FROM meta WHERE key = ?", [AUDIT_HEAD]).fetchone()
    last = entries[-1] if entries else None
    expected = f"{last.seq}:{last.entry_hash}" if last else f"0:{GENESIS}"
    if head is None or head[0] != expected:
        raise RegistryDamaged(
            f"the schema-{version} audit chain does not end at the head recorded with its last "
            "change (entries were removed or added outside it): not upgraded"
        )


def _backup(db: sqlite_utils.Database, path: Path, version: int, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.schema-{version}.{stamp}.bak")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        copy = sqlite3.connect(target)
        try:
            db.conn.backup(copy)
        finally:
            copy.close()
        with target.open("rb") as f:
            os.fsync(f.fileno())
    except FileExistsError as e:
        raise StorageUnavailable(f"{target} exists already: nothing was changed") from e
    except (OSError, sqlite3.Error) as e:
        raise StorageUnavailable(f"cannot back up the registry to {target}: {e}") from e
    return target


def _rebuild(db: sqlite_utils.Database) -> None:
    """Every table in the current schema, filled from the old table's common columns."""
    for table, columns in _TABLES.items():
        present = {r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
        db.execute(f"CREATE TABLE new_{table} ({columns})")
        if present:
            wanted = [r[1] for r in db.execute(f"PRAGMA table_info(new_{table})").fetchall()]
            shared = ", ".join(c for c in wanted if c in present)
            db.execute(f"INSERT INTO new_{table} ({shared}) SELECT {shared} FROM {table}")
            db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE new_{table} RENAME TO {table}")


def _names_from_6(db: sqlite_utils.Database) -> list[tuple[str, str, str]]:
    """Schema 7 records who owns each name; schema 6 did not. Derived as the current Registrar
    would have decided in the same order: a profile id belongs to the region of the first issuer
    registered with it, a policy id to the destination that set it first."""
    claims: dict[tuple[str, str], str] = {}
    for profile_id, region in db.execute(
        "SELECT profile_id, region FROM issuers ORDER BY added_at, id"
    ).fetchall():
        claims.setdefault((NameKind.PROFILE.value, str(profile_id)), str(region))
    for policy_id, destination in db.execute(
        "SELECT policy_id, destination FROM policies ORDER BY added_at, destination, version"
    ).fetchall():
        claims.setdefault((NameKind.POLICY.value, str(policy_id)), str(destination))
    return [(kind, name, owner) for (kind, name), owner in sorted(claims.items())]


def _from_6(db: sqlite_utils.Database) -> None:
    claims = _names_from_6(db)  # read before the columns it needs are dropped
    _rebuild(db)
    for kind, name, owner in claims:
        db.execute(
            "INSERT INTO names (kind, name, owner, reserved) VALUES (?, ?, ?, 0)",
            [kind, name, owner],
        )


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {6: _from_6}
"""The upgrade from each older schema version to the current one."""


def _append_migration(db: sqlite_utils.Database, record: AuditRecord) -> AuditEntry:
    """Set the schema version and append the ``migrate-schema`` entry the Registrar's
    :func:`~gateway.registry.registrar.schema_upgrade` made, numbered, chained and hashed
    (step 4)."""
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
    stored = db.execute("SELECT value FROM meta WHERE key = 'trust_version'").fetchone()
    state = _restore(db, int(stored[0]))
    requests = GENESIS
    for request_actor, request_id, action, request_digest, seq in db.execute(
        "SELECT actor, request_id, action, digest, audit_seq FROM requests ORDER BY audit_seq"
    ).fetchall():
        row = RequestRecord(request_actor, request_id, Action(action), request_digest)
        requests = next_requests_digest(requests, row, int(seq))
    cursor = db.execute("SELECT * FROM audit ORDER BY seq DESC LIMIT 1")
    columns = [d[0] for d in cursor.description]
    fetched = cursor.fetchone()
    last = _audit_entry(dict(zip(columns, fetched, strict=True))) if fetched else None
    return append_entry(db, record, state, requests, last)
