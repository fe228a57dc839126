"""The registry's SQLite file, through sqlite-utils: it stores, and shows that what it stores is
what the audit chain vouches for. It decides nothing (that is the
:class:`~gateway.registry.registrar.Registrar`).

What it does:

- the **schema**: every column is either part of the trust state, a request record, or the audit
  log (and the meta values the state digest covers); nothing is stored that loading does not read;
- **row mapping**: rows to a :class:`~gateway.registry.trust.TrustState` (profile and policy texts
  re-parsed) and a change's effects (:mod:`gateway.registry.effects`) to rows;
- **one write transaction per change** (``BEGIN IMMEDIATE``), with the idempotence records and
  the audit entries, hash-chained, each carrying the digest of the state after it;
- **verification**: the state loaded from the file must be the one the last audit entry's digest
  names, the chain must be whole and end at the head recorded with the last change, and the file
  must not be older than the signed state record kept beside it. A registry that does not verify
  is served and written by nobody: :attr:`SqliteRegistry.problem` says why.

Other processes may write the same file (the host's ``huren registry`` commands); SQLite's
``data_version`` tells this connection when they did, and the state is then read again, and
verified, before anything else is written or served.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import sqlite_utils

from gateway import crypto
from gateway.errors import ConfigurationInvalid, RegistryDamaged, StorageUnavailable
from gateway.model import IssuerId, KeyId, ProfileId, RegionCode
from gateway.policy import Policy, load_policy
from gateway.profiles import Profile, load_profile
from gateway.registry import Issuer, IssuerKey, KeyStatus, OnlineEndpoint, Revocations, TrustState
from gateway.registry.audit import GENESIS, AuditEntry, ChainReport, seal, verify_chain
from gateway.registry.authority import Action
from gateway.registry.effects import (
    Effect,
    IssuerAdded,
    IssuerProfileMoved,
    IssuerRetired,
    KeyAdded,
    KeyStatusChanged,
    NameClaimed,
    OperatorAdded,
    OperatorRemoved,
    PolicyAdded,
    ProfileAdded,
    RegionAdded,
    RevocationsSet,
)
from gateway.registry.model import NameClaim, NameKind, Operator, Region, Retirement
from gateway.registry.registrar import AuditRecord, RequestRecord
from gateway.storage.database import (
    BUSY_TIMEOUT_S,
    damaged,
    one_line,
    open_database,
    write_transaction,
)
from gateway.storage.record import StateMark, StateRecord

SCHEMA_VERSION = 7
REPLICA = "replica"
"""The ``operators.region`` of a replica's pin (no region code is a word)."""
AUDIT_HEAD = "audit_head"
STATE_CONTEXT = b"huren-registry-state-v1\n"

_TABLES: dict[str, str] = {
    "meta": "key TEXT PRIMARY KEY, value TEXT NOT NULL",
    "regions": "code TEXT PRIMARY KEY, name TEXT NOT NULL",
    # region: a regional operator's code, NULL for an administrator, REPLICA for a replica
    "operators": "name TEXT PRIMARY KEY, region TEXT, spki_sha256 TEXT NOT NULL UNIQUE,"
    " active INTEGER NOT NULL",
    "names": "kind TEXT NOT NULL, name TEXT NOT NULL, owner TEXT NOT NULL,"
    " reserved INTEGER NOT NULL, PRIMARY KEY (kind, name)",
    "profiles": "profile_id TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL,"
    " PRIMARY KEY (profile_id, version)",
    "issuers": "id TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL,"
    " profile_id TEXT NOT NULL, profile_version INTEGER NOT NULL, online_code_prefix TEXT,"
    " online_verify_url TEXT, online_client_id TEXT, online_client_secret BLOB,"
    " pseudonym_key BLOB, code_name TEXT",
    "retirements": "issuer_id TEXT PRIMARY KEY REFERENCES issuers(id), at TEXT NOT NULL,"
    " reason TEXT NOT NULL",
    "keys": "issuer_id TEXT NOT NULL REFERENCES issuers(id), kid TEXT NOT NULL,"
    " algorithm TEXT NOT NULL, spki_der BLOB NOT NULL, not_before TEXT, not_after TEXT,"
    " status TEXT NOT NULL, status_since TEXT, usage TEXT, certificate_sha256 TEXT,"
    " PRIMARY KEY (issuer_id, kid)",
    "revocations": "issuer_id TEXT NOT NULL, kid TEXT NOT NULL, counter INTEGER NOT NULL,"
    " ids TEXT NOT NULL, PRIMARY KEY (issuer_id, kid),"
    " FOREIGN KEY (issuer_id, kid) REFERENCES keys(issuer_id, kid)",
    "policies": "destination TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL,"
    " PRIMARY KEY (destination, version)",
    "requests": "actor TEXT NOT NULL, request_id TEXT NOT NULL, action TEXT NOT NULL,"
    " digest TEXT NOT NULL, audit_seq INTEGER NOT NULL UNIQUE, PRIMARY KEY (actor, request_id)",
    "audit": "seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL,"
    " action TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL,"
    " state_digest TEXT NOT NULL, trust_version INTEGER NOT NULL,"
    " previous_hash TEXT NOT NULL, entry_hash TEXT NOT NULL",
}


def state_digest(trust_digest: str, requests_digest: str) -> str:
    """What an audit entry records as the registry's state: the trust state's digest and the
    chained digest of the request records."""
    text = f"{trust_digest}\n{requests_digest}\n".encode()
    return hashlib.sha256(STATE_CONTEXT + text).hexdigest()


def next_requests_digest(previous: str, row: RequestRecord, seq: int) -> str:
    """The request records' digest after one more (they are chained in audit order)."""
    content = json.dumps(
        [row.actor, row.request_id, row.action.value, row.digest, seq],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{previous}\n{content}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a registry does not verify: what kind of problem (``file``: the file or a row cannot
    be read; ``schema``: another schema version wrote it; ``chain``: the audit chain or the state
    it vouches for is broken; ``rollback``: the file is older than its state record), the first
    audit entry concerned (0: none in particular), and what was found."""

    kind: str
    at: int
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", one_line(self.text))

    def __str__(self) -> str:
        if self.kind == "chain":
            return f"the audit chain is broken at entry {self.at}: {self.text}"
        return self.text


@dataclass(frozen=True, slots=True)
class _Loaded:
    state: TrustState
    requests_digest: str
    last: AuditEntry | None
    problem: Problem | None
    rollback: StateMark | None = None
    """Set when the only problem is that the file is older than the state record."""
    empty: bool = False
    """The file holds no registry at all (every table empty, its meta values too)."""


class SqliteRegistry:
    """One registry database file (see the module docstring).

    Not thread-safe: use it from one thread at a time (the gateway's ``StoreWorker``); several
    processes may share the file.
    """

    def __init__(
        self,
        path: Path,
        *,
        record: StateRecord | None = None,
        busy_timeout: float = BUSY_TIMEOUT_S,
        accept_rollback: bool = False,
        fresh: bool = False,
    ) -> None:
        """Open an existing registry and verify it (:attr:`problem` says if it does not).

        ``accept_rollback``: a file older than the state record is accepted (the caller then
        audits that, see :attr:`rolled_back`). ``fresh``: a registry just made by
        :meth:`create`, whose first audit entry is about to be written.

        Raises:
            StorageUnavailable: if there is no registry file at ``path`` or it cannot be opened.
        """
        if not path.is_file():
            raise StorageUnavailable(
                f"no registry at {path}: create one with `huren registry init` "
                "(or `huren serve --init`)"
            )
        self.path = path
        self._record = record
        self._accept_rollback = accept_rollback
        self.rolled_back: StateMark | None = None
        """The state record a rollback was accepted from."""
        self._rewind = False
        # The file is never opened here but by SQLite: closing any descriptor of it would drop
        # the POSIX locks SQLite holds for every connection of this process, and another
        # process could then delete the WAL under them. What SQLite cannot read, it says.
        if _emptied(path) and accept_rollback:
            _create_schema(path)  # an emptied file: start again from an empty registry
        elif _emptied(path):
            raise RegistryDamaged(
                f"{path.name} is damaged: the file is empty (0 bytes); restore it from a backup, "
                "or accept starting again from an empty registry with "
                "`huren registry accept-rollback`"
            )
        self.db = open_database(path, busy_timeout=busy_timeout)
        _check_readable(self.db, path)
        self._state: TrustState = TrustState()
        self._key_records = KeyRecords()
        self._requests: str = GENESIS
        self._last: AuditEntry | None = None
        self._problem: Problem | None = None
        self._empty = False
        self._seen = self._data_version()
        self._print = self._fingerprint()
        loaded = self._load(full=True)
        if fresh and loaded.last is None and loaded.state.version == 0:
            loaded = _Loaded(loaded.state, loaded.requests_digest, None, None)
        self._apply(loaded)
        self._accept_rollback = False  # only what was found at opening, never a later reload

    @classmethod
    def create(cls, path: Path, *, record: StateRecord | None = None) -> SqliteRegistry:
        """A new, empty registry file (mode 0600, and so its ``-wal`` and ``-shm``), opened;
        the Registrar writes its first audit entry.

        Raises:
            StorageUnavailable: if the file exists already or cannot be created.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as e:
            raise StorageUnavailable(f"a registry exists at {path} already") from e
        except OSError as e:
            raise StorageUnavailable(f"cannot create {path}: {e.strerror}") from e
        os.close(fd)
        _create_schema(path)
        return cls(path, record=record, fresh=True)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SqliteRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the verified state

    @property
    def state(self) -> TrustState:
        return self._state

    @property
    def problem(self) -> Problem | None:
        """Why this registry must not be written or served from, or None."""
        return self._problem

    @property
    def last_entry(self) -> AuditEntry | None:
        return self._last

    def _apply(self, loaded: _Loaded) -> None:
        """Adopt what was loaded if it verifies; otherwise keep the last good state and say why
        (nothing is served or written from a registry that does not verify)."""
        self._problem = loaded.problem
        self.rollback = loaded.rollback if loaded.problem is not None else None
        """The state record this file is older than, when that is what is wrong with it."""
        if loaded.problem is None:
            self._empty = loaded.empty
            self._state, self._requests, self._last = (
                loaded.state,
                loaded.requests_digest,
                loaded.last,
            )

    def refresh(self) -> bool:
        """Read the file again if it changed since this connection last looked — through
        another SQLite connection (``data_version``), or behind SQLite's back (its size, time or
        inode moved while ``data_version`` did not: then a fresh connection reads it, with
        ``quick_check``) — and verify it. True if the verified state moved on; :attr:`problem`
        says if the file does not verify (the last good state is kept).

        Raises:
            RegistryDamaged: if the file can no longer be opened at all.
        """
        before = self._last
        if not self._reread():
            return False
        return self._problem is None and self._last != before

    def _reread(self) -> bool:
        """Verify the file again if it changed (see :meth:`refresh`); True if it did."""
        fingerprint = self._fingerprint()
        raw = fingerprint != self._print
        if raw and _emptied(self.path):
            return self._unreadable(fingerprint, "the file is empty (0 bytes)")
        try:
            version = self._data_version()
        except (StorageUnavailable, RegistryDamaged) as e:
            return self._unreadable(fingerprint, f"it cannot be read: {e}")
        if version != self._seen:
            self._apply(self._load(full=False))
        elif raw:
            try:
                fresh = open_database(self.path, busy_timeout=BUSY_TIMEOUT_S)
                _check_readable(fresh, self.path)
            except (StorageUnavailable, RegistryDamaged) as e:
                return self._unreadable(fingerprint, f"it cannot be read: {e}")
            self.db.close()
            self.db = fresh  # no page of the old connection's cache is trusted
            version = self._data_version()
            self._apply(self._load(full=True))
        else:
            return False
        self._seen, self._print = version, fingerprint
        return True

    def _unreadable(self, fingerprint: tuple[tuple[int, int, int] | None, ...], why: str) -> bool:
        self._apply(_damaged(0, f"{why}: it was changed outside the registry"))
        self._print = fingerprint
        return True

    def _fingerprint(self) -> tuple[tuple[int, int, int] | None, ...]:
        """The database and WAL files' inode, size and modification time."""
        prints: list[tuple[int, int, int] | None] = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                found = path.stat()
            except FileNotFoundError:
                prints.append(None)
                continue
            prints.append((found.st_ino, found.st_size, found.st_mtime_ns))
        return tuple(prints)

    def _data_version(self) -> int:
        try:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.OperationalError as e:
            raise StorageUnavailable(f"registry database: {e}") from e
        except sqlite3.Error as e:
            raise damaged(e) from e

    # ------------------------------------------------------------------ writing

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """A write transaction on the verified registry (see
        :class:`~gateway.registry.registrar.RegistryStorage`); the state record beside the file
        is rewritten after a commit that appended entries."""
        if self._fingerprint() != self._print:
            self._reread()  # changed, perhaps behind SQLite's back: read afresh first
        self._refuse_if_damaged()
        with write_transaction(self.db):
            if self._data_version() != self._seen:  # another process wrote: verify it first
                self._reread()
            self._refuse_if_damaged()
            if self._empty:  # an emptied registry accepted as it is: its meta values again
                _insert_meta(self.db)
                self._empty = False
            tx = _Transaction(self)
            yield tx
        self._state, self._requests = tx.state, tx.requests_digest
        self._seen, self._print = self._data_version(), self._fingerprint()
        if tx.last is not self._last:
            self._last = tx.last
            if self._record is not None and tx.last is not None:
                if self._rewind:  # the accepted rollback's own entry: the record goes back
                    self._record.write(_mark(tx.last))
                    self._rewind = False
                else:
                    self._record.advance(_mark(tx.last))

    def _refuse_if_damaged(self) -> None:
        if self._problem is not None:
            raise RegistryDamaged(
                f"{self.path.name} does not verify, so nothing is written to it: {self._problem}"
            )

    # ------------------------------------------------------------------ reading and checking

    def audit_entries(self, after: int = 0, limit: int | None = None) -> Iterator[AuditEntry]:
        sql = "SELECT * FROM audit WHERE seq > ? ORDER BY seq"
        args: list[Any] = [after]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            cursor = self.db.execute(sql, args)
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        except sqlite3.Error as e:
            raise RegistryDamaged(f"{self.path.name} cannot be read: {e}") from e
        for row in rows:
            yield _audit_entry(dict(zip(columns, row, strict=True)))

    def last_change_at(self) -> datetime | None:
        """When the last audited change (or refusal) happened: an instant known to have passed,
        which the gateway's clock must not read earlier than."""
        return self._last.at if self._last is not None else None

    def verify_audit(self) -> ChainReport:
        """Check the whole file again now: SQLite's ``quick_check``, every row readable, the
        chain whole and ending at the recorded head, the state the last entry's digest names,
        and not older than the state record."""
        loaded = self._load(full=True, apply_rollback=False)
        entries = loaded.last.seq if loaded.last else 0
        head = loaded.last.entry_hash if loaded.last else GENESIS
        if loaded.problem is None:
            return ChainReport(entries, head)
        problem = loaded.problem
        return ChainReport(entries, head, problem.at, problem.text, problem.kind)

    def _load(self, *, full: bool, apply_rollback: bool = True) -> _Loaded:
        """Read and verify the whole registry, in one read transaction of its own unless a
        write transaction is open."""
        # The state record is read before the database: a writer commits and then rewrites the
        # record, so a record read first never names an entry the snapshot read after it lacks
        # (read the other way round, a commit landing in between would look like a rollback).
        mark: StateMark | RegistryDamaged | None = None
        if self._record is not None:
            try:
                mark = self._record.read()
            except RegistryDamaged as e:
                mark = e
        own = not self.db.conn.in_transaction
        try:
            if own:
                self.db.execute("BEGIN")
            try:
                loaded = self._read(full=full, mark=mark)
            finally:
                if own and self.db.conn.in_transaction:
                    self.db.execute("ROLLBACK")
        except sqlite3.Error as e:
            return _damaged(0, f"the database file is damaged ({e})")
        if loaded.rollback is not None and apply_rollback and self._accept_rollback:
            self.rolled_back = loaded.rollback
            self._rewind = True
            return dataclasses.replace(loaded, problem=None)
        return loaded

    def _without_entries(
        self,
        state: TrustState,
        requests: str,
        mark: StateMark | RegistryDamaged | None,
        *,
        empty: bool = False,
    ) -> _Loaded:
        """A registry without a single audit entry: made but never initialised, or emptied.
        If the state record beside it names an entry, it is a rollback, which the
        administrator may accept."""
        if isinstance(mark, RegistryDamaged):
            return _Loaded(state, requests, None, Problem("file", 0, str(mark)))
        if mark is not None and mark.seq > 0:
            why = (
                f"the registry is empty, but audit entry {mark.seq} (trust version "
                f"{mark.trust_version}) was recorded on {mark.at.isoformat()}: it was emptied "
                "or replaced"
            )
            problem = Problem("rollback", 0, why)
            return _Loaded(state, requests, None, problem, rollback=mark, empty=empty)
        why = "the audit log is empty: the registry was emptied or never made"
        return _Loaded(state, requests, None, Problem("file", 0, why), empty=empty)

    def _read(self, *, full: bool, mark: StateMark | RegistryDamaged | None) -> _Loaded:
        db = self.db
        if full:
            rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
            if rows != ["ok"]:
                return _damaged(0, f"the database file is damaged ({'; '.join(rows[:3])})")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if not meta and all(_count(db, table) == 0 for table in _present_tables(db)):
            return self._without_entries(TrustState(), GENESIS, mark, empty=True)
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            found = meta.get("schema_version", "none")
            why = (
                f"registry schema {found[:8]} is not {SCHEMA_VERSION}, the one this huren reads: "
                "upgrade it with `huren registry migrate` (the gateway stopped; it keeps a backup "
                "and audits the upgrade)"
                if found.isdigit() and int(found) < SCHEMA_VERSION
                else f"registry schema {found[:8]} is not {SCHEMA_VERSION}, the one this huren "
                "reads: a newer huren wrote it"
            )
            return _Loaded(TrustState(), GENESIS, None, Problem("schema", 0, why))
        try:
            state = _restore(db, int(meta.get("trust_version", "-1")), self._key_records)
        except (ValueError, KeyError, TypeError, ConfigurationInvalid) as e:
            return _damaged(0, f"a stored row cannot be read back ({e})")
        requests = GENESIS
        for actor, request_id, action, digest, seq in db.execute(
            "SELECT actor, request_id, action, digest, audit_seq FROM requests ORDER BY audit_seq"
        ):
            record = RequestRecord(actor, request_id, Action(action), digest)
            requests = next_requests_digest(requests, record, int(seq))
        entries = list(self.audit_entries())
        report = verify_chain(entries)
        last = entries[-1] if entries else None
        if not report.intact:
            problem = Problem("chain", report.broken_at or 0, report.problem or "broken")
            return _Loaded(state, requests, last, problem)
        recorded, _, recorded_hash = meta.get(AUDIT_HEAD, "").partition(":")
        recorded_seq = int(recorded) if recorded.isdigit() else -1
        ends = last.seq if last else 0
        if (recorded_seq, recorded_hash) != (ends, last.entry_hash if last else GENESIS):
            return _Loaded(state, requests, last, _head_problem(recorded_seq, ends))
        if last is None:
            if state.version != 0 or requests != GENESIS:
                return _damaged(0, "the registry holds data but no audit entry")
            return self._without_entries(state, requests, mark)
        if last.state_digest != state_digest(state.digest(), requests):
            changed = "the registry's state is not the one its last audit entry vouches for"
            problem = Problem("chain", last.seq, f"{changed} (changed outside it)")
            return _Loaded(state, requests, last, problem)
        if self._record is not None:
            if isinstance(mark, RegistryDamaged):
                return _Loaded(state, requests, last, Problem("file", 0, str(mark)))
            if mark is None and last.seq > 1:
                # Every commit rewrites the record: without one, it was removed.
                gone = f"the state record {self._record.path.name} beside it is missing"
                missing = StateMark(0, GENESIS, 0, last.at)
                problem = Problem("rollback", last.seq, gone)
                return _Loaded(state, requests, last, problem, rollback=missing)
            if mark is not None and (older := _older(mark, entries)) is not None:
                problem = Problem("rollback", last.seq, older)
                return _Loaded(state, requests, last, problem, rollback=mark)
        return _Loaded(state, requests, last, None)


class _Transaction:
    """One change's writes (see :class:`~gateway.registry.registrar.RegistryTransaction`)."""

    def __init__(self, store: SqliteRegistry) -> None:
        self._db = store.db
        self.state: TrustState = store.state
        self.requests_digest: str = store._requests
        self.last: AuditEntry | None = store.last_entry

    def earlier(self, actor: str, request_id: str) -> tuple[str, AuditEntry] | None:
        row = self._db.execute(
            "SELECT digest, audit_seq FROM requests WHERE actor = ? AND request_id = ?",
            [actor, request_id],
        ).fetchone()
        if row is None:
            return None
        cursor = self._db.execute("SELECT * FROM audit WHERE seq = ?", [int(row[1])])
        columns = [d[0] for d in cursor.description]
        return str(row[0]), _audit_entry(dict(zip(columns, cursor.fetchone(), strict=True)))

    def append(
        self,
        record: AuditRecord,
        *,
        accepted: TrustState | None = None,
        request: RequestRecord | None = None,
    ) -> AuditEntry:
        seq = (self.last.seq if self.last else 0) + 1
        if accepted is not None:
            for effect in accepted.journal:
                _write(self._db, effect)
            accepted.journal.clear()
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'trust_version'", [str(accepted.version)]
            )
            self.state = accepted
        if request is not None:
            self._db.execute(
                "INSERT INTO requests (actor, request_id, action, digest, audit_seq)"
                " VALUES (?, ?, ?, ?, ?)",
                [request.actor, request.request_id, request.action.value, request.digest, seq],
            )
            self.requests_digest = next_requests_digest(self.requests_digest, request, seq)
        self.last = append_entry(self._db, record, self.state, self.requests_digest, self.last)
        return self.last


# ---------------------------------------------------------------------- problems


def _emptied(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


def _check_readable(db: sqlite_utils.Database, path: Path) -> None:
    """Raise RegistryDamaged unless SQLite reads ``path`` as a database (its header and schema
    page); the connection is closed first."""
    try:
        db.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.OperationalError as e:
        db.close()
        raise StorageUnavailable(f"database {path.name}: {e}") from e
    except sqlite3.DatabaseError as e:
        db.close()
        raise RegistryDamaged(f"{path.name} is damaged: {one_line(str(e))}") from e


def _create_schema(path: Path) -> None:
    db = open_database(path)
    try:
        with write_transaction(db):
            for table, columns in _TABLES.items():
                db.execute(f"CREATE TABLE {table} ({columns})")
            _insert_meta(db)
    finally:
        db.close()


def _insert_meta(db: sqlite_utils.Database) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('trust_version', '0'),"
        " (?, ?)",
        [str(SCHEMA_VERSION), AUDIT_HEAD, f"0:{GENESIS}"],
    )


def _present_tables(db: sqlite_utils.Database) -> list[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [str(r[0]) for r in rows if r[0] in _TABLES]


def _count(db: sqlite_utils.Database, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _damaged(at: int, text: str) -> _Loaded:
    return _Loaded(TrustState(), GENESIS, None, Problem("file", at, text))


def _head_problem(recorded_seq: int, ends: int) -> Problem:
    if recorded_seq > ends:
        missing = (
            f"entry {recorded_seq} was"
            if recorded_seq == ends + 1
            else f"entries {ends + 1} to {recorded_seq} were"
        )
        at, problem = ends + 1, f"{missing} removed from the end"
    elif recorded_seq < ends:
        at, problem = recorded_seq + 1, "entries were added outside the registry"
    else:
        at, problem = ends, "the last entry was replaced"
    recorded = f"(the registry recorded entry {recorded_seq} as the head)"
    return Problem("chain", at, f"{problem} {recorded}")


def _older(mark: StateMark, entries: list[AuditEntry]) -> str | None:
    """Why the file is older than the state recorded beside it, or None."""
    when = f"on {mark.at.isoformat()}"
    if len(entries) < mark.seq:
        return (
            f"the registry ends at audit entry {len(entries)}, but entry {mark.seq} (trust "
            f"version {mark.trust_version}) was recorded {when}: it was truncated or replaced "
            "by an older copy"
        )
    if entries[mark.seq - 1].entry_hash != mark.head:
        return f"audit entry {mark.seq} is not the one recorded {when}: another history"
    if entries[-1].trust_version < mark.trust_version:
        return f"the trust version is below {mark.trust_version}, recorded {when}"
    return None


def _mark(entry: AuditEntry) -> StateMark:
    return StateMark(entry.seq, entry.entry_hash, entry.trust_version, entry.at)


# ---------------------------------------------------------------------- rows -> state


def _restore(
    db: sqlite_utils.Database, version: int, key_records: KeyRecords | None = None
) -> TrustState:
    def rows(table: str, order: str) -> Iterator[dict[str, Any]]:
        cursor = db.execute(f"SELECT * FROM {table} ORDER BY {order}")
        columns = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            yield dict(zip(columns, row, strict=True))

    def profile(row: dict[str, Any]) -> tuple[Profile, str]:
        loaded = load_profile(row["source"])
        if (loaded.id, loaded.version) != (row["profile_id"], row["version"]):
            raise ValueError(f"profile row {row['profile_id']}@{row['version']} holds another")
        return loaded, row["source"]

    def policy(row: dict[str, Any]) -> tuple[Policy, str]:
        loaded = load_policy(row["source"])
        if (loaded.key, loaded.version) != (row["destination"], row["version"]):
            raise ValueError(f"policy row {row['destination']}@{row['version']} holds another")
        return loaded, row["source"]

    if version < 0:
        raise ValueError("no trust version")
    return TrustState.restore(
        version,
        regions=[Region(RegionCode(r["code"]), r["name"]) for r in rows("regions", "code")],
        operators=[
            Operator(
                r["name"],
                RegionCode(r["region"]) if r["region"] and r["region"] != REPLICA else None,
                r["spki_sha256"],
                bool(r["active"]),
                replica=r["region"] == REPLICA,
            )
            for r in rows("operators", "name")
        ],
        names=[
            NameClaim(NameKind(r["kind"]), r["name"], r["owner"], bool(r["reserved"]))
            for r in rows("names", "kind, name")
        ],
        profiles=[profile(r) for r in rows("profiles", "profile_id, version")],
        issuers=[_issuer(r) for r in rows("issuers", "id")],
        keys=(key_records or KeyRecords()).restore(
            db.execute(f"SELECT {_KEY_COLUMNS} FROM keys ORDER BY issuer_id, kid")
        ),
        revocations=[
            (IssuerId(r["issuer_id"]), KeyId(r["kid"]), _revocations(r))
            for r in rows("revocations", "issuer_id, kid")
        ],
        policies=[policy(r) for r in rows("policies", "destination, version")],
        retired=[
            Retirement(IssuerId(r["issuer_id"]), _when(r["at"]), r["reason"])
            for r in rows("retirements", "issuer_id")
        ],
    )


def _when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a stored time without its offset")
    return moment


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return _when(value) if value is not None else None


def _issuer(row: dict[str, Any]) -> Issuer:
    online = None
    if row["online_code_prefix"] is not None:
        online = OnlineEndpoint(
            row["online_code_prefix"],
            row["online_verify_url"],
            row["online_client_id"],
            row["online_client_secret"],
        )
    return Issuer(
        id=IssuerId(row["id"]),
        region=RegionCode(row["region"]),
        name=row["name"],
        profile_id=ProfileId(row["profile_id"]),
        profile_version=row["profile_version"],
        online=online,
        pseudonym_key=row["pseudonym_key"],
        code_name=row["code_name"],
    )


_ALGORITHMS = {a.value: a for a in crypto.Algorithm}
_KEY_STATUSES = {s.value: s for s in KeyStatus}


@functools.lru_cache(maxsize=256)
def _usage(text: str) -> frozenset[str]:
    """A key's stored usage list (a handful of distinct texts among all keys)."""
    return frozenset(json.loads(text))


_KEY_COLUMNS = (
    "issuer_id, kid, algorithm, spki_der, not_before, not_after, status, status_since, usage,"
    " certificate_sha256"
)


def _key(
    issuer: str,
    kid: str,
    algorithm: str,
    spki_der: bytes,
    not_before: str | None,
    not_after: str | None,
    status: str,
    status_since: str | None,
    usage: str | None,
    certificate_sha256: str | None,
) -> IssuerKey:
    """One row of ``keys`` (the columns of ``_KEY_COLUMNS``, in order).

    Restoring 100,000 keys is most of a registry's start-up: the key is parsed and checked
    (load_spki_der), the rest looked up rather than constructed; an unknown value is a
    KeyError, as a damaged row."""
    return IssuerKey(
        issuer=IssuerId(issuer),
        kid=KeyId(kid),
        public_key=crypto.load_spki_der(spki_der, _ALGORITHMS[algorithm], stored=True),
        not_before=_dt(not_before),
        not_after=_dt(not_after),
        status=_KEY_STATUSES[status],
        status_since=_dt(status_since),
        usage=_usage(usage) if usage is not None else None,
        certificate_sha256=bytes.fromhex(certificate_sha256) if certificate_sha256 else None,
    )


class KeyRecords:
    """The key records restored from the ``keys`` rows of the last load, by a digest of each
    row (BLAKE2b-128 of its pickle: exact, unlike Python's ``hash``).

    A record is a pure function of its row (:func:`_key`), so a row read again unchanged gives
    back the record made from it without parsing and checking its key again: a gateway serving
    a registry file that another process changed re-reads every row, but parses only the keys
    whose rows changed (at 100,000 keys, most of the re-read's cost; docs/performance.md). Only
    the last load's records are kept (about 80 bytes each beside the records themselves)."""

    def __init__(self) -> None:
        self._by_row: dict[bytes, IssuerKey] = {}

    def restore(self, rows: Iterable[tuple[Any, ...]]) -> list[IssuerKey]:
        """The records of ``rows`` (the columns of ``_KEY_COLUMNS``, in order).

        Raises:
            ValueError, KeyError, TypeError, ConfigurationInvalid: for a row that cannot be
                read back (as :func:`_key`); nothing is remembered then.
        """
        known, seen = self._by_row, {}
        records = []
        for row in rows:
            digest = hashlib.blake2b(pickle.dumps(row, 5), digest_size=16).digest()
            record = known.get(digest)
            if record is None:
                record = _key(*row)
            seen[digest] = record
            records.append(record)
        self._by_row = seen
        return records


def _revocations(row: dict[str, Any]) -> Revocations:
    ids = json.loads(row["ids"])
    return Revocations(
        int(row["counter"]), MappingProxyType({rid: _dt(before) for rid, before in ids.items()})
    )


# ---------------------------------------------------------------------- effects -> rows


def _write(db: sqlite_utils.Database, effect: Effect) -> None:
    writer = _WRITERS[type(effect)]
    writer(db, effect)


def _insert(db: sqlite_utils.Database, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))


def _region_added(db: sqlite_utils.Database, e: Any) -> None:
    _insert(db, "regions", {"code": e.region.code, "name": e.region.name})


def _operator_added(db: sqlite_utils.Database, e: Any) -> None:
    o: Operator = e.operator
    _insert(
        db,
        "operators",
        {
            "name": o.name,
            "region": REPLICA if o.replica else o.region,
            "spki_sha256": o.spki_sha256,
            "active": int(o.active),
        },
    )


def _operator_removed(db: sqlite_utils.Database, e: Any) -> None:
    db.execute("UPDATE operators SET active = 0 WHERE name = ?", [e.name])


def _name_claimed(db: sqlite_utils.Database, e: Any) -> None:
    c: NameClaim = e.claim
    _insert(
        db,
        "names",
        {"kind": c.kind.value, "name": c.name, "owner": c.owner, "reserved": int(c.reserved)},
    )


def _profile_added(db: sqlite_utils.Database, e: Any) -> None:
    _insert(db, "profiles", {"profile_id": e.profile_id, "version": e.version, "source": e.text})


def _issuer_added(db: sqlite_utils.Database, e: Any) -> None:
    issuer: Issuer = e.issuer
    online = issuer.online
    _insert(
        db,
        "issuers",
        {
            "id": issuer.id,
            "region": issuer.region,
            "name": issuer.name,
            "profile_id": issuer.profile_id,
            "profile_version": issuer.profile_version,
            "online_code_prefix": online.code_prefix if online else None,
            "online_verify_url": online.verify_url if online else None,
            "online_client_id": online.client_id if online else None,
            "online_client_secret": online.client_secret if online else None,
            "pseudonym_key": issuer.pseudonym_key,
            "code_name": issuer.code_name,
        },
    )


def _issuer_profile_moved(db: sqlite_utils.Database, e: Any) -> None:
    db.execute("UPDATE issuers SET profile_version = ? WHERE id = ?", [e.version, e.issuer])


def _issuer_retired(db: sqlite_utils.Database, e: Any) -> None:
    r: Retirement = e.retirement
    _insert(db, "retirements", {"issuer_id": r.issuer, "at": _ts(r.at), "reason": r.reason})


def _key_added(db: sqlite_utils.Database, e: Any) -> None:
    key: IssuerKey = e.key
    _insert(
        db,
        "keys",
        {
            "issuer_id": key.issuer,
            "kid": key.kid,
            "algorithm": key.public_key.algorithm.value,
            "spki_der": key.public_key.spki_der,
            "not_before": _ts(key.not_before),
            "not_after": _ts(key.not_after),
            "status": key.status.value,
            "status_since": _ts(key.status_since),
            "usage": json.dumps(sorted(key.usage)) if key.usage is not None else None,
            "certificate_sha256": key.certificate_sha256.hex() if key.certificate_sha256 else None,
        },
    )


def _key_status_changed(db: sqlite_utils.Database, e: Any) -> None:
    key: IssuerKey = e.key
    db.execute(
        "UPDATE keys SET status = ?, status_since = ? WHERE issuer_id = ? AND kid = ?",
        [key.status.value, _ts(key.status_since), key.issuer, key.kid],
    )


def _revocations_set(db: sqlite_utils.Database, e: Any) -> None:
    ids = {rid: _ts(before) for rid, before in e.revocations.ids.items()}
    db.execute("DELETE FROM revocations WHERE issuer_id = ? AND kid = ?", [e.issuer, e.kid])
    _insert(
        db,
        "revocations",
        {
            "issuer_id": e.issuer,
            "kid": e.kid,
            "counter": e.revocations.counter,
            "ids": json.dumps(ids, sort_keys=True),
        },
    )


def _policy_added(db: sqlite_utils.Database, e: Any) -> None:
    p = e.policy
    _insert(db, "policies", {"destination": p.destination, "version": p.version, "source": p.text})


_WRITERS: dict[type, Callable[[sqlite_utils.Database, Any], None]] = {
    RegionAdded: _region_added,
    OperatorAdded: _operator_added,
    OperatorRemoved: _operator_removed,
    NameClaimed: _name_claimed,
    ProfileAdded: _profile_added,
    IssuerAdded: _issuer_added,
    IssuerProfileMoved: _issuer_profile_moved,
    IssuerRetired: _issuer_retired,
    KeyAdded: _key_added,
    KeyStatusChanged: _key_status_changed,
    RevocationsSet: _revocations_set,
    PolicyAdded: _policy_added,
}


def append_entry(
    db: sqlite_utils.Database,
    record: AuditRecord,
    state: TrustState,
    requests_digest: str,
    last: AuditEntry | None,
) -> AuditEntry:
    """Number, chain and hash ``record`` after ``last`` (vouching for ``state`` and the request
    records' digest), write it and move the recorded head to it."""
    entry = seal(
        (last.seq if last else 0) + 1,
        record.at,
        record.actor,
        record.action.value,
        record.target,
        record.outcome.value,
        record.detail,
        state_digest(state.digest(), requests_digest),
        state.version,
        last.entry_hash if last else GENESIS,
    )
    db.table("audit").insert(_audit_row(entry))
    db.execute(
        "UPDATE meta SET value = ? WHERE key = ?", [f"{entry.seq}:{entry.entry_hash}", AUDIT_HEAD]
    )
    return entry


def _audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "state_digest": entry.state_digest,
        "trust_version": entry.trust_version,
        "previous_hash": entry.previous_hash,
        "entry_hash": entry.entry_hash,
    }


def _audit_entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        seq=int(row["seq"]),
        at=_when(row["at"]),
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        detail=row["detail"],
        state_digest=row["state_digest"],
        trust_version=int(row["trust_version"]),
        previous_hash=row["previous_hash"],
        entry_hash=row["entry_hash"],
    )
