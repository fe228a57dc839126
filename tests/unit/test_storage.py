"""The registry file: durable settings, all-or-nothing writes, reloads equal to what was saved."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import ConfigurationInvalid, StorageUnavailable
from gateway.model import IssuerId, KeyId, ProfileId, RegionCode
from gateway.registry import Issuer, IssuerKey
from gateway.storage.secrets import load_or_create_secret
from gateway.storage.sqlite import ProfileSource, RegistryStore
from tests.conftest import HANGZHOU_PROFILE, NOW

HANGZHOU = Issuer(
    IssuerId("hangzhou"), RegionCode("330100"), "杭州健康码", ProfileId("hangzhou"), 1
)


def _keys(*kids: str) -> list[IssuerKey]:
    return [
        IssuerKey(IssuerId("hangzhou"), KeyId(k), PrivateKey.generate(Algorithm.ES256).public_key())
        for k in kids
    ]


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_the_database_is_durable_by_configuration(tmp_path):
    store = RegistryStore(tmp_path / "r.db")
    conn = store.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()


def test_registration_is_reloaded_exactly(tmp_path):
    path = tmp_path / "r.db"
    store = RegistryStore(path)
    keys = _keys("k1", "k2")
    saved = store.register_issuer(HANGZHOU, ProfileSource.parse(HANGZHOU_PROFILE), keys, at=NOW)
    store.close()
    loaded = RegistryStore(path).snapshot
    assert loaded.version == saved.version == 4  # profile, issuer, two keys
    assert dict(loaded.issuers) == dict(saved.issuers)
    assert dict(loaded.keys) == dict(saved.keys)
    assert loaded.keys[(IssuerId("hangzhou"), KeyId("k1"))].public_key == keys[0].public_key
    assert loaded.profiles.keys() == saved.profiles.keys()
    with sqlite3.connect(path) as conn:
        source = conn.execute("SELECT source FROM profiles").fetchone()[0]
    assert source == HANGZHOU_PROFILE


def test_a_refused_registration_writes_nothing(tmp_path):
    path = tmp_path / "r.db"
    store = RegistryStore(path)
    with pytest.raises(ConfigurationInvalid, match="already has a key"):
        store.register_issuer(
            HANGZHOU, ProfileSource.parse(HANGZHOU_PROFILE), _keys("k1", "k1"), at=NOW
        )
    assert store.snapshot.version == 0
    store.close()
    assert [_count(path, t) for t in ("profiles", "issuers", "keys")] == [0, 0, 0]


def test_writes_take_the_write_lock_first(tmp_path):
    store = RegistryStore(tmp_path / "r.db")
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    store.register_issuer(HANGZHOU, ProfileSource.parse(HANGZHOU_PROFILE), _keys("k1"), at=NOW)
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[-1] == "COMMIT"
    store.close()


def test_a_locked_database_is_unavailable_and_nothing_changes(tmp_path):
    path = tmp_path / "r.db"
    store = RegistryStore(path, busy_timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable, match="busy"):
            store.register_issuer(
                HANGZHOU, ProfileSource.parse(HANGZHOU_PROFILE), _keys("k1"), at=NOW
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.snapshot.version == 0
    store.register_issuer(HANGZHOU, ProfileSource.parse(HANGZHOU_PROFILE), _keys("k1"), at=NOW)
    assert store.snapshot.version == 3
    store.close()


def test_a_database_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "r.db"
    RegistryStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageUnavailable, match="schema"):
        RegistryStore(path)


def test_the_subject_secret_is_created_once_and_private(tmp_path):
    path = tmp_path / "subject.key"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first
    assert len(first) == 32
    assert path.stat().st_mode & 0o077 == 0
    path.write_text("not hex")
    with pytest.raises(StorageUnavailable):
        load_or_create_secret(path)
