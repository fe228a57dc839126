"""The registry's SQLite file, through sqlite-utils.

Durable settings and write transactions come from :mod:`gateway.storage.database`. A change is
written only after the in-memory :class:`TrustState` accepted it, and the new snapshot is
published only after the commit returned.

The file also holds issuer credentials (online-verification client secrets, pseudonym keys):
protect it like a key store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import crypto
from gateway.errors import StorageUnavailable
from gateway.model import IssuerId, KeyId, ProfileId, RegionCode
from gateway.profiles import Profile, load_profile
from gateway.registry import (
    Issuer,
    IssuerKey,
    KeyStatus,
    OnlineEndpoint,
    TrustSnapshot,
    TrustState,
)
from gateway.storage.database import BUSY_TIMEOUT_S, open_database, write_transaction

SCHEMA_VERSION = 2


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


class RegistryStore:
    """One registry database file. Methods are not thread-safe; use one store per writer."""

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
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
        db.table("profiles").create(
            {"profile_id": str, "version": int, "source": str, "sha256": str, "added_at": str},
            pk=("profile_id", "version"),
            not_null={"source", "sha256", "added_at"},
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
                "added_at": str,
            },
            pk=("issuer_id", "kid"),
            not_null={"algorithm", "spki_der", "status", "added_at"},
            foreign_keys=[("issuer_id", "issuers", "id")],
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

    def _load(self) -> TrustState:
        """Replay every stored row through the validating state (profiles are re-parsed)."""
        state = TrustState()
        for row in self.db.table("profiles").rows_where(order_by="profile_id, version"):
            state.add_profile(load_profile(row["source"]))
        for row in self.db.table("issuers").rows_where(order_by="id"):
            state.add_issuer(_issuer(row))
        for row in self.db.table("keys").rows_where(order_by="issuer_id, kid"):
            state.add_key(_key(row))
        state.restore_version(int(self._meta("trust_version") or "0"))
        return state

    # ------------------------------------------------------------------ writes

    def register_issuer(
        self,
        issuer: Issuer,
        profile: ProfileSource,
        keys: Sequence[IssuerKey],
        *,
        at: datetime,
    ) -> TrustSnapshot:
        """Add an issuer with its profile and initial keys, all or nothing.

        Raises:
            ConfigurationInvalid: if the trust state refuses any part; nothing is written.
            StorageUnavailable: if the database cannot be written; nothing is written.
        """
        candidate = TrustState(self._state.snapshot())
        new_profile = not candidate.has_profile(profile.profile.id, profile.profile.version)
        candidate.add_profile(profile.profile)
        candidate.add_issuer(issuer)
        for key in keys:
            candidate.add_key(key)
        with write_transaction(self.db):
            if new_profile:
                self.db.table("profiles").insert(
                    {
                        "profile_id": profile.profile.id,
                        "version": profile.profile.version,
                        "source": profile.text,
                        "sha256": profile.profile.source_sha256,
                        "added_at": _ts(at),
                    }
                )
            self.db.table("issuers").insert(_issuer_row(issuer, at))
            for key in keys:
                self.db.table("keys").insert(_key_row(key, at))
            self._set_meta("trust_version", str(candidate.version))
        self._state = candidate
        return candidate.snapshot()


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
        "added_at": _ts(at),
    }
