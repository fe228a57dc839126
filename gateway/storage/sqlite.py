"""The registry's SQLite file, through sqlite-utils: trust data, operators, requests, audit log.

Every mutation goes through :meth:`RegistryStore.mutate`, in one ``BEGIN IMMEDIATE``
transaction:

1. reload the in-memory state if another process changed the file (the trust version moved);
2. answer a retried request id with its first result (idempotence), or refuse a reused id with
   other content;
3. check the actor may do it, on the region of the issuer acted on (a denial, or a request about
   an issuer that does not exist, is audited and changes nothing);
4. apply the change to a *candidate* :class:`TrustState`, which validates it (a refusal is
   audited and changes nothing), and write its rows;
5. write the new trust version, the audit entry (hash-chained, with the digest of the new state)
   and the request record.

The new snapshot is published only after the commit returned. Durable settings come from
:mod:`gateway.storage.database`. The file also holds issuer credentials (online client secrets,
pseudonym keys): protect it like a key store.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway import crypto
from gateway.clock import Clock, system_clock
from gateway.crypto import pki
from gateway.errors import (
    Abandoned,
    ConfigurationInvalid,
    NotFound,
    NotPermitted,
    RequestConflict,
    RequestInvalid,
    StorageUnavailable,
)
from gateway.model import IssuerId, KeyId, ProfileId, Reason, RegionCode, parse_region_code
from gateway.policy import NATIONAL, Policy, load_policy
from gateway.profiles import Profile, load_profile
from gateway.registry import (
    Issuer,
    IssuerKey,
    KeyStatus,
    OnlineEndpoint,
    Revocations,
    TrustSnapshot,
    TrustState,
)
from gateway.registry.audit import GENESIS, AuditEntry, seal, verify_chain
from gateway.registry.audit import ChainReport as ChainReport
from gateway.registry.authority import Action, Actor, refusal
from gateway.storage.database import BUSY_TIMEOUT_S, open_database, write_transaction

SCHEMA_VERSION = 6
AUDIT_HEAD = "audit_head"
MAX_REQUEST_ID = 128


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class ProfileSource:
    """A profile together with the exact text it was loaded from (kept for audit)."""

    profile: Profile
    text: str

    @classmethod
    def parse(cls, text: str) -> ProfileSource:
        return cls(load_profile(text), text)


@dataclass(frozen=True, slots=True)
class PolicySource:
    """A precedence policy together with the exact text it was loaded from."""

    policy: Policy
    text: str

    @classmethod
    def parse(cls, text: str) -> PolicySource:
        return cls(load_policy(text), text)


@dataclass(frozen=True, slots=True)
class Change:
    """What a mutation produced: the trust version after it, and its audit entry."""

    trust_version: int
    audit: AuditEntry


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    name: str
    region: RegionCode | None
    spki_sha256: str
    active: bool


@dataclass
class Mutation:
    """What a change may use: the candidate state (which validates), the rows, the time."""

    state: TrustState
    store: RegistryStore
    now: datetime

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self.store.db.table(table).insert(row)

    def execute(self, sql: str, args: list[Any]) -> None:
        self.store.db.execute(sql, args)


class RegistryStore:
    """One registry database file. Not thread-safe: use it from one thread at a time (the
    gateway's ``StoreWorker``); several processes may share the file."""

    def __init__(
        self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S, clock: Clock = system_clock
    ) -> None:
        self.path = path
        self.clock = clock
        self._abandoned: Callable[[], bool] | None = None
        self.db = open_database(path, busy_timeout=busy_timeout)
        try:
            with write_transaction(self.db):
                self._create_schema()
            self._state = self._load()
        except sqlite3.Error as e:
            raise StorageUnavailable(f"registry database {path.name}: {e}") from e

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def snapshot(self) -> TrustSnapshot:
        return self._state.snapshot()

    # ------------------------------------------------------------------ schema and loading

    def _create_schema(self) -> None:
        db = self.db
        db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db.table("regions").create(
            {"code": str, "name": str, "created_at": str},
            pk="code",
            not_null={"name", "created_at"},
            if_not_exists=True,
        )
        db.table("operators").create(
            {
                "name": str,
                "region": str,
                "spki_sha256": str,
                "active": int,
                "created_at": str,
            },
            pk="name",
            not_null={"spki_sha256", "active", "created_at"},
            if_not_exists=True,
        )
        db.table("profiles").create(
            {"profile_id": str, "version": int, "source": str, "sha256": str, "added_at": str},
            pk=("profile_id", "version"),
            not_null={"source", "sha256", "added_at"},
            if_not_exists=True,
        )
        db.table("policies").create(
            {
                "destination": str,
                "version": int,
                "policy_id": str,
                "source": str,
                "sha256": str,
                "added_at": str,
            },
            pk=("destination", "version"),
            not_null={"policy_id", "source", "sha256", "added_at"},
            if_not_exists=True,
        )
        db.table("issuers").create(
            {
                "id": str,
                "region": str,
                "name": str,
                "profile_id": str,
                "profile_version": int,
                "online_code_prefix": str,
                "online_verify_url": str,
                "online_client_id": str,
                "online_client_secret": bytes,
                "pseudonym_key": bytes,
                "code_name": str,
                "added_at": str,
            },
            pk="id",
            not_null={"region", "name", "profile_id", "profile_version", "added_at"},
            if_not_exists=True,
        )
        db.table("keys").create(
            {
                "issuer_id": str,
                "kid": str,
                "algorithm": str,
                "spki_der": bytes,
                "not_before": str,
                "not_after": str,
                "status": str,
                "status_since": str,
                "usage": str,
                "certificate_sha256": str,
                "added_at": str,
            },
            pk=("issuer_id", "kid"),
            not_null={"algorithm", "spki_der", "status", "added_at"},
            foreign_keys=[("issuer_id", "issuers", "id")],
            if_not_exists=True,
        )
        db.table("revocations").create(
            {"issuer_id": str, "kid": str, "counter": int, "ids": str, "set_at": str},
            pk=("issuer_id", "kid"),
            not_null={"counter", "ids", "set_at"},
            foreign_keys=[("issuer_id", "issuers", "id")],
            if_not_exists=True,
        )
        db.table("requests").create(
            {"actor": str, "request_id": str, "action": str, "digest": str, "audit_seq": int},
            pk=("actor", "request_id"),
            not_null={"action", "digest", "audit_seq"},
            if_not_exists=True,
        )
        db.table("audit").create(
            {
                "seq": int,
                "at": str,
                "actor": str,
                "action": str,
                "target": str,
                "outcome": str,
                "detail": str,
                "state_digest": str,
                "previous_hash": str,
                "entry_hash": str,
                "trust_version": int,
            },
            pk="seq",
            not_null={"at", "actor", "action", "target", "outcome", "state_digest"},
            if_not_exists=True,
        )
        stored = self._meta("schema_version")
        if stored is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
            self._set_meta("trust_version", "0")
        elif int(stored) != SCHEMA_VERSION:
            raise StorageUnavailable(f"registry schema {stored} is not {SCHEMA_VERSION}")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return str(row[0]) if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    def _trust_version(self) -> int:
        return int(self._meta("trust_version") or "0")

    def _load(self) -> TrustState:
        """Replay every stored row through the validating state (profiles are re-parsed)."""
        state = TrustState()
        for row in self.db.table("profiles").rows_where(order_by="profile_id, version"):
            state.add_profile(load_profile(row["source"]))
        for row in self.db.table("issuers").rows_where(order_by="id"):
            state.add_issuer(_issuer(row))
        for row in self.db.table("keys").rows_where(order_by="issuer_id, kid"):
            state.add_key(_key(row))
        for row in self.db.table("policies").rows_where(order_by="destination, version"):
            state.set_policy(load_policy(row["source"]))
        for row in self.db.table("revocations").rows_where(order_by="issuer_id, kid"):
            state.set_revocations(IssuerId(row["issuer_id"]), KeyId(row["kid"]), _revocations(row))
        state.restore_version(self._trust_version())
        return state

    def refresh(self) -> TrustSnapshot | None:
        """Reload if another process changed the registry; the new snapshot, or None."""
        if self._trust_version() == self._state.version:
            return None
        self._state = self._load()
        return self._state.snapshot()

    # ------------------------------------------------------------------ mutations

    @contextmanager
    def abandoned_if(self, abandoned: Callable[[], bool]) -> Iterator[None]:
        """Within this block, a change is rolled back instead of committed if ``abandoned()``
        is true once it is ready to commit (its caller has given up and would never learn of it).
        Denied and refused attempts are still audited."""
        previous, self._abandoned = self._abandoned, abandoned
        try:
            yield
        finally:
            self._abandoned = previous

    def mutate(
        self,
        actor: Actor,
        request_id: str,
        action: Action,
        target: str,
        region: Callable[[TrustState], RegionCode | None],
        digest: str,
        apply: Callable[[Mutation], str],
    ) -> Change:
        """Run one mutation as described in the module docstring.

        ``digest`` identifies the request's content (for idempotence); ``region`` finds the
        region of the target in the current state (for authorisation); ``apply`` validates on the
        candidate state, writes its rows and returns the audit detail.

        Raises:
            RequestInvalid: for a malformed request id.
            RequestConflict: for a request id reused with other content.
            NotPermitted: if the actor may not do this (audited).
            NotFound: if the issuer acted on does not exist (audited).
            ConfigurationInvalid: if the change is invalid (audited).
            StorageUnavailable: if the database cannot be written.
            Abandoned: if the caller gave up (see :meth:`abandoned_if`) before the commit.
        """
        if not (0 < len(request_id) <= MAX_REQUEST_ID and request_id.isascii()) or not (
            request_id.isprintable()
        ):
            raise RequestInvalid(
                f"request id must be 1 to {MAX_REQUEST_ID} printable ASCII characters"
            )
        failure: NotPermitted | ConfigurationInvalid | NotFound | None = None
        now = self.clock()
        with write_transaction(self.db):
            if self._trust_version() != self._state.version:
                self._state = self._load()  # another process wrote: validate against the truth
            earlier = self.db.execute(
                "SELECT digest, audit_seq FROM requests WHERE actor = ? AND request_id = ?",
                [actor.label, request_id],
            ).fetchone()
            if earlier is not None:
                if earlier[0] != digest:
                    raise RequestConflict(
                        f"request id {request_id!r} was used for a different request"
                    )
                return self._change_at(int(earlier[1]))
            candidate = TrustState(self._state.snapshot())
            missing: NotFound | None = None
            try:
                reason = refusal(actor, action, region(self._state))
            except NotFound as e:  # the issuer acted on does not exist
                reason, missing = None, e
            if missing is not None:
                failure = missing
                entry = self._append(
                    now, actor, action, target, "refused", _why(missing), candidate.version
                )
            elif reason is not None:
                failure = NotPermitted(reason)
                entry = self._append(
                    now, actor, action, target, "denied", reason, candidate.version
                )
            else:
                self.db.conn.execute("SAVEPOINT mutation")
                try:
                    detail = apply(Mutation(candidate, self, now))
                except (ConfigurationInvalid, NotFound) as e:
                    self.db.conn.execute("ROLLBACK TO mutation")
                    failure = e
                    candidate = TrustState(self._state.snapshot())
                    entry = self._append(
                        now, actor, action, target, "refused", _why(e), candidate.version
                    )
                else:
                    self.db.conn.execute("RELEASE mutation")
                    if self._abandoned is not None and self._abandoned():
                        raise Abandoned(
                            "the deadline passed before the change committed; nothing changed"
                        )
                    self._set_meta("trust_version", str(candidate.version))
                    # The request record first, so that the entry's state digest covers it.
                    seq = self._next_seq()
                    self.db.table("requests").insert(
                        {
                            "actor": actor.label,
                            "request_id": request_id,
                            "action": action.value,
                            "digest": digest,
                            "audit_seq": seq,
                        }
                    )
                    entry = self._append(
                        now, actor, action, target, "ok", detail, candidate.version
                    )
                    assert entry.seq == seq
        if failure is not None:
            raise failure
        self._state = candidate
        return Change(candidate.version, entry)

    def _append(
        self,
        at: datetime,
        actor: Actor,
        action: Action,
        target: str,
        outcome: str,
        detail: str,
        trust_version: int,
    ) -> AuditEntry:
        last = self.db.execute(
            "SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq, previous = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
        entry = seal(
            seq,
            at,
            actor.label,
            action.value,
            target,
            outcome,
            detail,
            self.state_digest(),
            trust_version,
            previous,
        )
        self.db.table("audit").insert(_audit_row(entry))
        self._set_meta(AUDIT_HEAD, f"{entry.seq}:{entry.entry_hash}")
        return entry

    def _next_seq(self) -> int:
        last = self.db.execute("SELECT max(seq) FROM audit").fetchone()
        return int(last[0] or 0) + 1

    def _change_at(self, seq: int) -> Change:
        row = self.db.execute("SELECT * FROM audit WHERE seq = ?", [seq]).fetchone()
        columns = [d[0] for d in self.db.execute("SELECT * FROM audit LIMIT 0").description]
        entry = _audit_entry(dict(zip(columns, row, strict=True)))
        return Change(entry.trust_version, entry)

    # ------------------------------------------------------------------ the changes

    def register_issuer(
        self,
        issuer: Issuer,
        profile: ProfileSource,
        keys: list[IssuerKey],
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        """Add an issuer with its profile and initial keys, all or nothing."""

        def apply(m: Mutation) -> str:
            known = m.store.db.execute(
                "SELECT 1 FROM regions WHERE code = ?", [issuer.region]
            ).fetchone()
            if known is None:
                if actor.role.value != "local":
                    raise ConfigurationInvalid(
                        Reason.ERR_IDENTIFIER,
                        f"region {issuer.region} is not registered; "
                        "the hub administrator creates it",
                    )
                row = {"code": issuer.region, "name": issuer.name, "created_at": _ts(m.now)}
                m.insert("regions", row)
            new_profile = not m.state.has_profile(profile.profile.id, profile.profile.version)
            m.state.add_profile(profile.profile)
            m.state.add_issuer(issuer)
            for key in keys:
                m.state.add_key(key)
            if new_profile:
                m.insert("profiles", _profile_row(profile, m.now))
            m.insert("issuers", _issuer_row(issuer, m.now))
            for key in keys:
                m.insert("keys", _key_row(key, m.now))
            kids = ", ".join(k.kid for k in keys) or "none"
            return f"region {issuer.region}, profile {profile.profile.label}, keys {kids}"

        return self.mutate(
            actor,
            request_id,
            Action.REGISTER_ISSUER,
            issuer.id,
            _claimed_region(issuer.id, issuer.region),
            digest,
            apply,
        )

    def refuse(
        self,
        error: ConfigurationInvalid,
        action: Action,
        target: str,
        issuer: IssuerId,
        claimed_region: RegionCode | None = None,
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        """Record a request about ``issuer`` whose content failed validation before it reached
        the store (an unsafe key, an unreadable profile), exactly as :meth:`mutate` would.

        Authorisation still comes first (a cross-region attempt is *denied*, whatever it
        carries), and a retry of a request that had succeeded returns its first result.

        Raises:
            NotPermitted: if the actor may not act on ``issuer`` (audited).
            ConfigurationInvalid: ``error``, once audited.
            NotFound: for an unknown issuer (audited).
        """

        def apply(m: Mutation) -> str:
            raise error

        region = (
            _claimed_region(issuer, claimed_region)
            if claimed_region is not None
            else _region_of(issuer)
        )
        return self.mutate(actor, request_id, action, target, region, digest, apply)

    def add_key(self, key: IssuerKey, *, actor: Actor, request_id: str, digest: str) -> Change:
        def apply(m: Mutation) -> str:
            m.state.add_key(key)
            m.insert("keys", _key_row(key, m.now))
            return f"{key.public_key.algorithm.value} key {key.kid}"

        return self.mutate(
            actor,
            request_id,
            Action.ADD_KEY,
            f"{key.issuer}/{key.kid}",
            _region_of(key.issuer),
            digest,
            apply,
        )

    def retire_key(
        self,
        issuer: IssuerId,
        kid: KeyId,
        at: datetime | None,
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        def apply(m: Mutation) -> str:
            when = at or m.now
            retired = m.state.retire_key(issuer, kid, when)
            self._update_key(m, retired)
            return f"codes issued after {when.isoformat()} are refused"

        return self.mutate(
            actor,
            request_id,
            Action.RETIRE_KEY,
            f"{issuer}/{kid}",
            _region_of(issuer),
            digest,
            apply,
        )

    def revoke_key(
        self,
        issuer: IssuerId,
        kid: KeyId,
        reason: str,
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        def apply(m: Mutation) -> str:
            revoked = m.state.revoke_key(issuer, kid, m.now)
            self._update_key(m, revoked)
            return f"revoked: {reason}" if reason else "revoked"

        return self.mutate(
            actor,
            request_id,
            Action.REVOKE_KEY,
            f"{issuer}/{kid}",
            _region_of(issuer),
            digest,
            apply,
        )

    def update_profile(
        self,
        issuer: IssuerId,
        profile: ProfileSource,
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        def apply(m: Mutation) -> str:
            new_profile = not m.state.has_profile(profile.profile.id, profile.profile.version)
            m.state.update_profile(issuer, profile.profile)
            if new_profile:
                m.insert("profiles", _profile_row(profile, m.now))
            m.execute(
                "UPDATE issuers SET profile_version = ? WHERE id = ?",
                [profile.profile.version, issuer],
            )
            return f"profile {profile.profile.label} ({profile.profile.source_sha256[:16]})"

        return self.mutate(
            actor, request_id, Action.UPDATE_PROFILE, issuer, _region_of(issuer), digest, apply
        )

    def set_revocations(
        self,
        issuer: IssuerId,
        kid: KeyId,
        revocations: Revocations,
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        """Replace a key's revocation list with a newer one (a higher counter)."""

        def apply(m: Mutation) -> str:
            m.state.set_revocations(issuer, kid, revocations)
            ids = {rid: _ts(before) for rid, before in revocations.ids.items()}
            m.execute("DELETE FROM revocations WHERE issuer_id = ? AND kid = ?", [issuer, kid])
            m.insert(
                "revocations",
                {
                    "issuer_id": issuer,
                    "kid": kid,
                    "counter": revocations.counter,
                    "ids": json.dumps(ids, sort_keys=True),
                    "set_at": _ts(m.now),
                },
            )
            return f"counter {revocations.counter}, {len(ids)} revoked ids"

        return self.mutate(
            actor,
            request_id,
            Action.SET_REVOCATIONS,
            f"{issuer}/{kid}",
            _region_of(issuer),
            digest,
            apply,
        )

    def set_policy(
        self, policy: PolicySource, *, actor: Actor, request_id: str, digest: str
    ) -> Change:
        """Make ``policy`` its destination's current precedence policy (the next version)."""
        destination = policy.policy.destination

        def apply(m: Mutation) -> str:
            m.state.set_policy(policy.policy)
            m.insert(
                "policies",
                {
                    "destination": policy.policy.key,
                    "version": policy.policy.version,
                    "policy_id": policy.policy.id,
                    "source": policy.text,
                    "sha256": policy.policy.source_sha256,
                    "added_at": _ts(m.now),
                },
            )
            flags = "; ".join(policy.policy.flags())
            label = f"policy {policy.policy.label} ({policy.policy.source_sha256[:16]})"
            return f"{label}; {flags}" if flags else label

        return self.mutate(
            actor,
            request_id,
            Action.SET_POLICY,
            policy.policy.key,
            lambda _: destination,
            digest,
            apply,
        )

    def refuse_policy(
        self,
        error: ConfigurationInvalid,
        claimed: str | None,
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        """Record a policy that failed to load, as :meth:`refuse` does for issuers: authorised
        against the destination it claims (``claimed``: a region code, ``national``, or None when
        not even that could be read, which only the hub administrator may send)."""

        def apply(m: Mutation) -> str:
            raise error

        region: RegionCode | None = None
        target = claimed or NATIONAL
        if claimed is not None and claimed != NATIONAL:
            try:
                region = parse_region_code(claimed)
            except ValueError:
                region, target = None, NATIONAL
        return self.mutate(
            actor, request_id, Action.SET_POLICY, target[:16], lambda _: region, digest, apply
        )

    def create_region(
        self, code: str, name: str, *, actor: Actor, request_id: str, digest: str
    ) -> Change:
        def apply(m: Mutation) -> str:
            try:
                region = parse_region_code(code)
            except ValueError as e:
                raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
            if not name or len(name) > 64 or not name.isprintable():
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER, "region name must be 1-64 printable characters"
                )
            if m.store.db.execute("SELECT 1 FROM regions WHERE code = ?", [region]).fetchone():
                raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"region {region} already exists")
            m.insert("regions", {"code": region, "name": name, "created_at": _ts(m.now)})
            m.state.touch()
            return name

        return self.mutate(actor, request_id, Action.CREATE_REGION, code, _nowhere, digest, apply)

    def create_operator(
        self,
        name: str,
        region: str | None,
        certificate_pem: bytes,
        *,
        actor: Actor,
        request_id: str,
        digest: str,
    ) -> Change:
        def apply(m: Mutation) -> str:
            try:
                peer = pki.peer_identity(certificate_pem)
            except ValueError as e:
                raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"certificate: {e}") from e
            if (peer.name, peer.region) != (name, region):
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER, "the certificate names another operator or region"
                )
            if (
                region is not None
                and not m.store.db.execute(
                    "SELECT 1 FROM regions WHERE code = ?", [region]
                ).fetchone()
            ):
                raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"region {region} does not exist")
            if m.store.db.execute(
                "SELECT 1 FROM operators WHERE name = ? OR spki_sha256 = ?",
                [name, peer.spki_sha256],
            ).fetchone():
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER, f"operator {name} or its key is already registered"
                )
            m.insert(
                "operators",
                {
                    "name": name,
                    "region": region,
                    "spki_sha256": peer.spki_sha256,
                    "active": 1,
                    "created_at": _ts(m.now),
                },
            )
            m.state.touch()
            role = f"operator of {region}" if region else "hub administrator"
            return f"{role}, key {peer.spki_sha256[:16]}"

        return self.mutate(actor, request_id, Action.CREATE_OPERATOR, name, _nowhere, digest, apply)

    def remove_operator(self, name: str, *, actor: Actor, request_id: str, digest: str) -> Change:
        def apply(m: Mutation) -> str:
            row = m.store.db.execute(
                "SELECT active FROM operators WHERE name = ?", [name]
            ).fetchone()
            if row is None or not row[0]:
                raise NotFound(f"no active operator {name}")
            m.execute("UPDATE operators SET active = 0 WHERE name = ?", [name])
            m.state.touch()
            return "removed; its certificate no longer authenticates"

        return self.mutate(actor, request_id, Action.REMOVE_OPERATOR, name, _nowhere, digest, apply)

    def _update_key(self, m: Mutation, key: IssuerKey) -> None:
        m.execute(
            "UPDATE keys SET status = ?, status_since = ? WHERE issuer_id = ? AND kid = ?",
            [key.status.value, _ts(key.status_since), key.issuer, key.kid],
        )

    # ------------------------------------------------------------------ reading

    def operator_by_pin(self, spki_sha256: str) -> OperatorRecord | None:
        row = self.db.execute(
            "SELECT name, region, spki_sha256, active FROM operators WHERE spki_sha256 = ?",
            [spki_sha256],
        ).fetchone()
        if row is None:
            return None
        return OperatorRecord(row[0], RegionCode(row[1]) if row[1] else None, row[2], bool(row[3]))

    def profile_sources(self) -> dict[tuple[str, int], str]:
        """The text of every profile version, by (id, version)."""
        return {
            (r["profile_id"], int(r["version"])): r["source"]
            for r in self.db.table("profiles").rows_where()
        }

    def policy_history(self, key: str) -> list[tuple[int, str, str, str]]:
        """(version, policy id, sha256, source) of every policy of a destination (a region code
        or ``national``), oldest first."""
        return [
            (int(r["version"]), r["policy_id"], r["sha256"], r["source"])
            for r in self.db.table("policies").rows_where(
                "destination = ?", [key], order_by="version"
            )
        ]

    def policy_sources(self) -> dict[tuple[str, int], str]:
        """The text of every policy version, by (destination, version)."""
        return {
            (r["destination"], int(r["version"])): r["source"]
            for r in self.db.table("policies").rows_where()
        }

    def profile_history(self, profile_id: ProfileId) -> list[tuple[int, str, str]]:
        """(version, sha256, source) of every version of a profile, oldest first."""
        return [
            (int(r["version"]), r["sha256"], r["source"])
            for r in self.db.table("profiles").rows_where(
                "profile_id = ?", [profile_id], order_by="version"
            )
        ]

    def audit_entries(self, after: int = 0, limit: int | None = None) -> Iterator[AuditEntry]:
        sql = "SELECT * FROM audit WHERE seq > ? ORDER BY seq"
        args: list[Any] = [after]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        cursor = self.db.execute(sql, args)
        columns = [d[0] for d in cursor.description]
        for row in cursor:
            yield _audit_entry(dict(zip(columns, row, strict=True)))

    def last_change_at(self) -> datetime | None:
        """When the last audited change (or refusal) happened: an instant known to have passed,
        which the gateway's clock must not read earlier than."""
        row = self.db.execute("SELECT at FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else datetime.fromisoformat(row[0])

    def startup_problem(self) -> str | None:
        """Why this registry must not be served from, or None: SQLite's ``quick_check`` of the
        file, then the whole audit chain against the recorded head and the current state (an
        entry edited, removed or added, or a table changed outside the registry)."""
        rows = [str(row[0]) for row in self.db.execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            return f"the database file is damaged ({'; '.join(rows[:3])})"
        report = self.verify_audit()
        if not report.intact:
            return f"the audit chain is broken at entry {report.broken_at}: {report.problem}"
        return None

    def verify_audit(self) -> ChainReport:
        """The whole chain, plus: the chain ends at the head recorded with the last change (so
        entries removed from the end show), and the last entry's state digest is the registry's
        current state (a change written without its audit entry shows)."""
        entries = list(self.audit_entries())
        report = verify_chain(entries)
        if not report.intact:
            return report
        last = entries[-1] if entries else None
        ends, tail = (last.seq, last.entry_hash) if last else (0, GENESIS)
        recorded, _, recorded_hash = (self._meta(AUDIT_HEAD) or f"0:{GENESIS}").partition(":")
        recorded_seq = int(recorded) if recorded.isdigit() else -1
        if (recorded_seq, recorded_hash) != (ends, tail):
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
            return ChainReport(
                report.entries,
                report.head,
                at,
                f"{problem} (the registry recorded entry {recorded_seq} as the head)",
            )
        if last is not None and last.state_digest != self.state_digest():
            return ChainReport(
                report.entries,
                report.head,
                last.seq,
                "the registry's state no longer matches the last entry's state digest",
            )
        return report

    def state_digest(self) -> str:
        """SHA-256 over the canonical content of every trust and authority table."""
        tables = {
            "regions": "SELECT code, name FROM regions ORDER BY code",
            "operators": "SELECT name, region, spki_sha256, active FROM operators ORDER BY name",
            "profiles": "SELECT profile_id, version, sha256 FROM profiles"
            " ORDER BY profile_id, version",
            "issuers": "SELECT id, region, name, profile_id, profile_version, online_code_prefix,"
            " online_verify_url, online_client_id, online_client_secret, pseudonym_key, code_name"
            " FROM issuers ORDER BY id",
            "keys": "SELECT issuer_id, kid, algorithm, spki_der, not_before, not_after, status,"
            " status_since, usage, certificate_sha256 FROM keys ORDER BY issuer_id, kid",
            "revocations": "SELECT issuer_id, kid, counter, ids FROM revocations"
            " ORDER BY issuer_id, kid",
            "policies": "SELECT destination, version, policy_id, sha256 FROM policies"
            " ORDER BY destination, version",
            "requests": "SELECT actor, request_id, action, digest, audit_seq FROM requests"
            " ORDER BY actor, request_id",
        }
        content = {
            name: [[_canonical(v) for v in row] for row in self.db.execute(sql)]
            for name, sql in tables.items()
        }
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _region_of(issuer_id: IssuerId) -> Callable[[TrustState], RegionCode | None]:
    def region(state: TrustState) -> RegionCode | None:
        issuer = state.issuer(issuer_id)
        if issuer is None:
            raise NotFound(f"issuer {issuer_id} is not registered")
        return issuer.region

    return region


def _why(error: ConfigurationInvalid | NotFound) -> str:
    """The audit detail of a refusal: its reason code and message."""
    code = error.reason.value if isinstance(error, ConfigurationInvalid) else "NOT_FOUND"
    return f"{code}: {error}"


def _claimed_region(
    issuer_id: IssuerId, claimed: RegionCode
) -> Callable[[TrustState], RegionCode | None]:
    """For a registration: the region of the issuer id if it is taken (nobody registers over
    another region's issuer), else the region the request claims."""

    def region(state: TrustState) -> RegionCode | None:
        issuer = state.issuer(issuer_id)
        return issuer.region if issuer is not None else claimed

    return region


def _nowhere(state: TrustState) -> RegionCode | None:
    return None


def _canonical(value: Any) -> Any:
    # Secrets and keys enter the digest by their hash only.
    return hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else value


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


def _issuer_row(issuer: Issuer, at: datetime) -> dict[str, Any]:
    online = issuer.online
    return {
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
        "added_at": _ts(at),
    }


def _profile_row(profile: ProfileSource, at: datetime) -> dict[str, Any]:
    return {
        "profile_id": profile.profile.id,
        "version": profile.profile.version,
        "source": profile.text,
        "sha256": profile.profile.source_sha256,
        "added_at": _ts(at),
    }


def _key(row: dict[str, Any]) -> IssuerKey:
    algorithm = crypto.Algorithm(row["algorithm"])
    return IssuerKey(
        issuer=IssuerId(row["issuer_id"]),
        kid=KeyId(row["kid"]),
        public_key=crypto.load_spki_der(row["spki_der"], algorithm),
        not_before=_dt(row["not_before"]),
        not_after=_dt(row["not_after"]),
        status=KeyStatus(row["status"]),
        status_since=_dt(row["status_since"]),
        usage=frozenset(json.loads(row["usage"])) if row["usage"] is not None else None,
        certificate_sha256=(
            bytes.fromhex(row["certificate_sha256"]) if row["certificate_sha256"] else None
        ),
    )


def _revocations(row: dict[str, Any]) -> Revocations:
    ids = json.loads(row["ids"])
    return Revocations(
        int(row["counter"]), MappingProxyType({rid: _dt(before) for rid, before in ids.items()})
    )


def _key_row(key: IssuerKey, at: datetime) -> dict[str, Any]:
    return {
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
        "added_at": _ts(at),
    }


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
        at=datetime.fromisoformat(row["at"]),
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        detail=row["detail"] or "",
        state_digest=row["state_digest"],
        trust_version=int(row["trust_version"]),
        previous_hash=row["previous_hash"],
        entry_hash=row["entry_hash"],
    )
