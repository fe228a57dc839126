"""The registry file: durable settings, all-or-nothing mutations with their audit entries,
idempotent request ids, authorisation, and a tamper-evident audit chain."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.crypto import Algorithm, PrivateKey
from gateway.crypto.pki import issue_operator, new_ca
from gateway.errors import (
    ConfigurationInvalid,
    NotFound,
    NotPermitted,
    RequestConflict,
    RequestInvalid,
    StorageUnavailable,
)
from gateway.model import IssuerId, KeyId, ProfileId, Reason, RegionCode
from gateway.policy import PolicyError
from gateway.registry import Issuer, IssuerKey, KeyStatus
from gateway.registry.authority import Action, Actor, Role
from gateway.storage.secrets import (
    create_exclusive,
    load_or_create_private_key,
    load_or_create_secret,
    replace_atomically,
)
from gateway.storage.sqlite import Change, PolicySource, ProfileSource, RegistryStore
from tests.conftest import HANGZHOU_PROFILE, NOW

HANGZHOU = Issuer(
    IssuerId("hangzhou"), RegionCode("330100"), "杭州健康码", ProfileId("hangzhou"), 1
)
LOCAL = Actor(Role.LOCAL, "tester")
HZ_OPS = Actor(Role.OPERATOR, "hangzhou-ops", RegionCode("330100"))
BJ_OPS = Actor(Role.OPERATOR, "beijing-ops", RegionCode("110000"))
ADMIN = Actor(Role.ADMIN, "hub-admin")


def _keys(*kids: str) -> list[IssuerKey]:
    return [
        IssuerKey(IssuerId("hangzhou"), KeyId(k), PrivateKey.generate(Algorithm.ES256).public_key())
        for k in kids
    ]


def _store(path: Path) -> RegistryStore:
    return RegistryStore(path, clock=lambda: NOW)


def _register(
    store: RegistryStore, *kids: str, actor: Actor = LOCAL, request_id: str = "r1"
) -> Change:
    return store.register_issuer(
        HANGZHOU,
        ProfileSource.parse(HANGZHOU_PROFILE),
        _keys(*kids),
        actor=actor,
        request_id=request_id,
        digest=f"digest-{request_id}-{kids}",
    )


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_the_database_is_durable_by_configuration(tmp_path):
    store = _store(tmp_path / "r.db")
    conn = store.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()


def test_a_registration_is_reloaded_exactly_with_its_audit_entry(tmp_path):
    path = tmp_path / "r.db"
    store = _store(path)
    change = _register(store, "k1", "k2")
    saved = store.snapshot
    store.close()
    assert change.trust_version == saved.version == 4  # profile, issuer, two keys
    audit = change.audit
    assert (audit.seq, audit.actor, audit.action, audit.target, audit.outcome) == (
        1,
        "local:tester",
        "register-issuer",
        "hangzhou",
        "ok",
    )
    assert "k1, k2" in audit.detail
    loaded = _store(path)
    assert loaded.snapshot.version == saved.version
    assert dict(loaded.snapshot.keys) == dict(saved.keys)
    assert dict(loaded.snapshot.issuers) == dict(saved.issuers)
    assert audit.state_digest == loaded.state_digest()
    assert loaded.verify_audit().intact
    loaded.close()


def test_a_refused_registration_changes_nothing_but_is_audited(tmp_path):
    path = tmp_path / "r.db"
    store = _store(path)
    with pytest.raises(ConfigurationInvalid, match="already has a key"):
        _register(store, "k1", "k1")
    assert store.snapshot.version == 0
    (entry,) = store.audit_entries()
    assert (entry.outcome, entry.target) == ("refused", "hangzhou")
    assert entry.detail.startswith("ERR_IDENTIFIER")
    store.close()
    assert [_count(path, t) for t in ("profiles", "issuers", "keys", "regions")] == [0, 0, 0, 0]


def test_a_retried_request_returns_the_first_result_and_a_reused_id_is_refused(tmp_path):
    store = _store(tmp_path / "r.db")
    first = _register(store, "k1", request_id="same")
    again = store.register_issuer(
        HANGZHOU,
        ProfileSource.parse(HANGZHOU_PROFILE),
        _keys("k1"),
        actor=LOCAL,
        request_id="same",
        digest="digest-same-('k1',)",
    )
    assert again == first
    with pytest.raises(RequestConflict):
        store.register_issuer(
            HANGZHOU,
            ProfileSource.parse(HANGZHOU_PROFILE),
            _keys("k2"),
            actor=LOCAL,
            request_id="same",
            digest="other content",
        )
    assert len(list(store.audit_entries())) == 1
    for bad in ("", "x" * 129, "bad\nid", "请求"):
        with pytest.raises(RequestInvalid):
            _register(store, "k9", request_id=bad)
    store.close()


def _with_regions(store: RegistryStore) -> None:
    for code, name in (("330100", "杭州"), ("110000", "北京")):
        store.create_region(code, name, actor=ADMIN, request_id=f"region-{code}", digest=code)


def test_operators_act_only_in_their_own_region_and_denials_are_audited(tmp_path):
    store = _store(tmp_path / "r.db")
    _with_regions(store)
    version = store.snapshot.version
    with pytest.raises(NotPermitted, match="cannot act on issuers of 330100"):
        _register(store, "k1", actor=BJ_OPS)
    with pytest.raises(NotPermitted, match="does not change issuers"):
        _register(store, "k1", actor=ADMIN)
    assert store.snapshot.version == version
    change = _register(store, "k1", actor=HZ_OPS, request_id="ok")
    key = IssuerKey(IssuerId("hangzhou"), KeyId("k2"), _keys("k2")[0].public_key)
    with pytest.raises(NotPermitted):
        store.add_key(key, actor=BJ_OPS, request_id="steal", digest="x")
    with pytest.raises(NotPermitted):
        store.revoke_key(
            IssuerId("hangzhou"), KeyId("k1"), "", actor=BJ_OPS, request_id="x", digest="x"
        )
    with pytest.raises(NotPermitted, match="only the hub administrator"):
        store.create_region("310000", "上海", actor=HZ_OPS, request_id="r", digest="r")
    outcomes = [(e.actor, e.action, e.outcome) for e in store.audit_entries()]
    assert outcomes[2:] == [
        ("operator:110000:beijing-ops", "register-issuer", "denied"),
        ("admin:hub-admin", "register-issuer", "denied"),
        ("operator:330100:hangzhou-ops", "register-issuer", "ok"),
        ("operator:110000:beijing-ops", "add-key", "denied"),
        ("operator:110000:beijing-ops", "revoke-key", "denied"),
        ("operator:330100:hangzhou-ops", "create-region", "denied"),
    ]
    assert store.snapshot.version == change.trust_version
    assert store.verify_audit().intact
    store.close()


def test_an_issuer_id_of_another_region_cannot_be_registered_over(tmp_path):
    store = _store(tmp_path / "r.db")
    _with_regions(store)
    _register(store, "k1", actor=HZ_OPS)
    squatter = Issuer(IssuerId("hangzhou"), RegionCode("110000"), "假码", ProfileId("hangzhou"), 1)
    with pytest.raises(NotPermitted, match="cannot act on issuers of 330100"):
        store.register_issuer(
            squatter,
            ProfileSource.parse(HANGZHOU_PROFILE),
            [],
            actor=BJ_OPS,
            request_id="squat",
            digest="squat",
        )
    assert store.snapshot.issuers[IssuerId("hangzhou")].region == "330100"
    store.close()


def test_requests_refused_before_the_store_are_authorised_then_audited(tmp_path):
    """What the Registry service does with a request whose content failed validation (an
    unsafe key): a cross-region caller is denied, the owner's refusal is audited, an unknown
    issuer is NOT_FOUND, and a retry of a request that had succeeded gets its first result."""
    store = _store(tmp_path / "r.db")
    _with_regions(store)
    _register(store, "k1", actor=HZ_OPS)
    unsafe = ConfigurationInvalid(Reason.ERR_KEY_WEAK, "RSA keys must have at least 2048 bits")
    version = store.snapshot.version

    def refuse(actor: Actor, issuer: str, request_id: str) -> Change:
        return store.refuse(
            unsafe,
            Action.ADD_KEY,
            f"{issuer}/weak",
            IssuerId(issuer),
            actor=actor,
            request_id=request_id,
            digest=f"digest-{request_id}",
        )

    with pytest.raises(NotPermitted):
        refuse(BJ_OPS, "hangzhou", "a")
    with pytest.raises(ConfigurationInvalid, match="2048"):
        refuse(HZ_OPS, "hangzhou", "b")
    with pytest.raises(NotFound, match="nowhere"):
        refuse(HZ_OPS, "nowhere", "c")
    assert store.snapshot.version == version
    outcomes = [(e.actor, e.target, e.outcome, e.detail[:14]) for e in store.audit_entries()]
    assert outcomes[-3:] == [
        ("operator:110000:beijing-ops", "hangzhou/weak", "denied", "an operator of"),
        ("operator:330100:hangzhou-ops", "hangzhou/weak", "refused", "ERR_KEY_WEAK: "),
        ("operator:330100:hangzhou-ops", "nowhere/weak", "refused", "NOT_FOUND: iss"),
    ]
    done = store.add_key(_keys("k2")[0], actor=HZ_OPS, request_id="retry", digest="digest-retry")
    assert refuse(HZ_OPS, "hangzhou", "retry") == done  # e.g. a certificate expired since
    assert store.verify_audit().intact
    store.close()


def test_operators_cannot_register_in_a_region_the_hub_has_not_created(tmp_path):
    store = _store(tmp_path / "r.db")
    with pytest.raises(ConfigurationInvalid, match="not registered; the hub administrator"):
        _register(store, "k1", actor=HZ_OPS)
    store.close()


def test_keys_retire_and_revoke_and_revoked_ids_stay_burned(tmp_path):
    store = _store(tmp_path / "r.db")
    _register(store, "k1", "k2")
    retire_at = NOW + timedelta(hours=1)
    store.retire_key(
        IssuerId("hangzhou"), KeyId("k1"), retire_at, actor=LOCAL, request_id="a", digest="a"
    )
    store.revoke_key(
        IssuerId("hangzhou"), KeyId("k2"), "exposed", actor=LOCAL, request_id="b", digest="b"
    )
    keys = store.snapshot.keys
    k1, k2 = keys[(IssuerId("hangzhou"), KeyId("k1"))], keys[(IssuerId("hangzhou"), KeyId("k2"))]
    assert (k1.status, k1.status_since) == (KeyStatus.RETIRED, retire_at)
    assert (k2.status, k2.status_since) == (KeyStatus.REVOKED, NOW)
    # A retirement moves only earlier: later would bring back codes already refused.
    with pytest.raises(ConfigurationInvalid, match="only move earlier") as later:
        store.retire_key(
            IssuerId("hangzhou"),
            KeyId("k1"),
            retire_at + timedelta(days=1),
            actor=LOCAL,
            request_id="later",
            digest="later",
        )
    assert later.value.reason is Reason.ERR_VERSION
    earlier = store.retire_key(
        IssuerId("hangzhou"), KeyId("k1"), NOW, actor=LOCAL, request_id="earlier", digest="e"
    )
    assert earlier.audit.outcome == "ok"
    assert store.snapshot.keys[(IssuerId("hangzhou"), KeyId("k1"))].status_since == NOW
    with pytest.raises(ConfigurationInvalid) as refused:
        store.add_key(_keys("k2")[0], actor=LOCAL, request_id="c", digest="c")
    assert refused.value.reason is Reason.ERR_REVOKED_KID
    with pytest.raises(NotFound):
        store.revoke_key(
            IssuerId("nobody"), KeyId("k1"), "", actor=LOCAL, request_id="d", digest="d"
        )
    store.close()
    reloaded = _store(tmp_path / "r.db")
    assert reloaded.snapshot.keys[(IssuerId("hangzhou"), KeyId("k2"))].status is KeyStatus.REVOKED
    reloaded.close()


def test_profiles_move_one_version_at_a_time_and_old_versions_stay(tmp_path):
    store = _store(tmp_path / "r.db")
    _register(store, "k1")
    v2 = HANGZHOU_PROFILE.replace("version = 1", "version = 2").replace(
        'max = "24h"', 'max = "12h"'
    )
    v3 = v2.replace("version = 2", "version = 3")
    with pytest.raises(ConfigurationInvalid) as refused:
        store.update_profile(
            IssuerId("hangzhou"), ProfileSource.parse(v3), actor=LOCAL, request_id="a", digest="a"
        )
    assert refused.value.reason is Reason.ERR_VERSION
    store.update_profile(
        IssuerId("hangzhou"), ProfileSource.parse(v2), actor=LOCAL, request_id="b", digest="b"
    )
    assert store.snapshot.issuers[IssuerId("hangzhou")].profile_version == 2
    with pytest.raises(ConfigurationInvalid) as rollback:
        store.update_profile(
            IssuerId("hangzhou"),
            ProfileSource.parse(HANGZHOU_PROFILE),
            actor=LOCAL,
            request_id="c",
            digest="c",
        )
    assert rollback.value.reason is Reason.ERR_VERSION
    assert [v for v, _, _ in store.profile_history(ProfileId("hangzhou"))] == [1, 2]
    store.close()


def test_operator_pins_follow_their_certificates_and_removal(tmp_path):
    store = _store(tmp_path / "r.db")
    _with_regions(store)
    ca = new_ca()
    certificate = issue_operator(ca, "hangzhou-ops", "330100").certificate_pem
    with pytest.raises(ConfigurationInvalid, match="names another operator"):
        store.create_operator(
            "other-name", "330100", certificate, actor=ADMIN, request_id="a", digest="a"
        )
    store.create_operator(
        "hangzhou-ops", "330100", certificate, actor=ADMIN, request_id="b", digest="b"
    )
    from gateway.crypto.pki import certificate_pin

    found = store.operator_by_pin(certificate_pin(certificate))
    assert found is not None
    assert (found.name, found.region, found.active) == ("hangzhou-ops", "330100", True)
    store.remove_operator("hangzhou-ops", actor=ADMIN, request_id="c", digest="c")
    removed = store.operator_by_pin(certificate_pin(certificate))
    assert removed is not None
    assert removed.active is False
    store.close()


def test_tampering_with_an_audit_row_is_detected_and_named(tmp_path):
    path = tmp_path / "r.db"
    store = _store(path)
    _register(store, "k1", request_id="a")
    store.revoke_key(
        IssuerId("hangzhou"), KeyId("k1"), "x", actor=LOCAL, request_id="b", digest="b"
    )
    store.create_region("110000", "北京", actor=LOCAL, request_id="c", digest="c")
    assert store.verify_audit().intact
    store.close()
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE audit SET actor = 'operator:330100:someone-else' WHERE seq = 2")
    tampered = _store(copy)
    report = tampered.verify_audit()
    assert (report.intact, report.broken_at) == (False, 2)
    assert "does not match its hash" in (report.problem or "")
    tampered.close()


def test_a_change_written_without_its_audit_entry_is_detected(tmp_path):
    path = tmp_path / "r.db"
    store = _store(path)
    _register(store, "k1")
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE keys SET status = 'active', status_since = NULL")
        conn.execute("UPDATE issuers SET name = '假冒'")
    tampered = _store(path)
    report = tampered.verify_audit()
    assert not report.intact
    assert "state digest" in (report.problem or "")
    tampered.close()


def test_a_deleted_audit_row_breaks_the_chain(tmp_path):
    path = tmp_path / "r.db"
    store = _store(path)
    for i in range(3):
        store.create_region(
            ["110000", "310000", "440000"][i], "x", actor=LOCAL, request_id=str(i), digest=str(i)
        )
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM audit WHERE seq = 2")
    report = _store(path).verify_audit()
    assert (report.intact, report.broken_at) == (False, 3)


def test_writes_take_the_write_lock_first(tmp_path):
    store = _store(tmp_path / "r.db")
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    _register(store, "k1")
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[-1] == "COMMIT"
    store.close()


def test_a_locked_database_is_unavailable_and_nothing_changes(tmp_path):
    path = tmp_path / "r.db"
    store = RegistryStore(path, busy_timeout=0.1, clock=lambda: NOW)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable, match="busy"):
            _register(store, "k1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.snapshot.version == 0
    _register(store, "k1")
    assert store.snapshot.version == 3  # profile, issuer, key
    store.close()


def test_another_process_changes_are_seen_and_validated_against(tmp_path):
    path = tmp_path / "r.db"
    one, two = _store(path), _store(path)
    _register(one, "k1")
    assert two.refresh() is not None  # the other process sees the change
    assert two.refresh() is None
    three = _store(path)
    # A stale writer validates against the truth: the duplicate key id is refused.
    with pytest.raises(ConfigurationInvalid, match="already registered"):
        _register(three, "k1", request_id="again")
    for store in (one, two, three):
        store.close()


def test_a_database_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "r.db"
    _store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageUnavailable, match="schema"):
        _store(path)


def test_the_subject_secret_is_created_once_and_private(tmp_path):
    path = tmp_path / "subject.key"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first
    assert len(first) == 32
    assert path.stat().st_mode & 0o077 == 0
    path.write_text("not hex")
    with pytest.raises(StorageUnavailable):
        load_or_create_secret(path)


def test_secret_files_appear_whole_or_not_at_all(tmp_path):
    """Creation goes through a flushed temporary file linked into place: no empty key file is
    ever visible, a racing creator's file wins intact, and no temporary file is left behind."""
    path = tmp_path / "trustlist-key.pem"
    assert create_exclusive(path, b"first")
    assert not create_exclusive(path, b"second")  # another process got there first
    assert path.read_bytes() == b"first"
    assert path.stat().st_mode & 0o077 == 0
    key = load_or_create_private_key(tmp_path / "k.pem", Algorithm.ES256)
    assert load_or_create_private_key(tmp_path / "k.pem", Algorithm.ES256).public_key() == (
        key.public_key()
    )
    replace_atomically(tmp_path / "k.jwk", b"{}")
    replace_atomically(tmp_path / "k.jwk", b'{"x": 1}')
    assert (tmp_path / "k.jwk").read_bytes() == b'{"x": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.jwk", "k.pem", "trustlist-key.pem"]


def _policy(destination: str, version: int, extra: str = "") -> PolicySource:
    return PolicySource.parse(
        f'[policy]\nid = "p-{destination}"\nversion = {version}\n'
        f'destination = "{destination}"\n{extra}'
    )


def test_policies_are_versioned_authorised_audited_and_reloaded(tmp_path):
    path = tmp_path / "r.db"
    store = _store(path)
    _with_regions(store)
    stacking = _policy("110000", 1, "[require]\nown_region = true\n")
    with pytest.raises(NotPermitted, match="only an operator of 110000"):
        store.set_policy(stacking, actor=HZ_OPS, request_id="p0", digest="p0")
    with pytest.raises(NotPermitted, match="only an operator of 110000"):
        store.set_policy(stacking, actor=ADMIN, request_id="p0", digest="p0")
    change = store.set_policy(stacking, actor=BJ_OPS, request_id="p1", digest="p1")
    assert "code-stacking: requires a code from the destination's own region" in change.audit.detail
    assert (change.audit.action, change.audit.target) == ("set-policy", "110000")
    with pytest.raises(ConfigurationInvalid) as skipped:
        store.set_policy(_policy("110000", 3), actor=BJ_OPS, request_id="p3", digest="p3")
    assert skipped.value.reason is Reason.ERR_VERSION
    store.set_policy(_policy("110000", 2), actor=BJ_OPS, request_id="p2", digest="p2")
    with pytest.raises(NotPermitted, match="national"):
        store.set_policy(_policy("national", 1), actor=BJ_OPS, request_id="n", digest="n")
    store.set_policy(_policy("national", 1), actor=ADMIN, request_id="n", digest="n")
    snapshot = store.snapshot
    assert snapshot.policy_for(RegionCode("110105")).label == "p-110000@2"  # a district
    assert snapshot.policy_for(RegionCode("310000")).label == "p-national@1"
    assert [v for v, *_ in store.policy_history("110000")] == [1, 2]
    store.close()
    reloaded = _store(path)
    assert dict(reloaded.snapshot.policies) == dict(snapshot.policies)
    assert reloaded.verify_audit().intact
    outcomes = [(e.actor, e.outcome) for e in reloaded.audit_entries() if e.action == "set-policy"]
    assert outcomes == [
        ("operator:330100:hangzhou-ops", "denied"),
        ("admin:hub-admin", "denied"),
        ("operator:110000:beijing-ops", "ok"),
        ("operator:110000:beijing-ops", "refused"),
        ("operator:110000:beijing-ops", "ok"),
        ("operator:110000:beijing-ops", "denied"),
        ("admin:hub-admin", "ok"),
    ]
    reloaded.close()


def test_a_policy_that_does_not_load_is_refused_after_authorisation(tmp_path):
    store = _store(tmp_path / "r.db")
    _with_regions(store)
    broken = PolicyError("combine.strategy is 'wildest'")
    with pytest.raises(NotPermitted):
        store.refuse_policy(broken, "110000", actor=HZ_OPS, request_id="x", digest="x")
    with pytest.raises(PolicyError):
        store.refuse_policy(broken, "110000", actor=BJ_OPS, request_id="x", digest="x")
    with pytest.raises(NotPermitted, match="national"):
        store.refuse_policy(broken, None, actor=BJ_OPS, request_id="y", digest="y")
    entries = [(e.outcome, e.target, e.detail[:10]) for e in store.audit_entries()][-3:]
    assert entries == [
        ("denied", "110000", "only an op"),
        ("refused", "110000", "ERR_POLICY"),
        ("denied", "national", "only the h"),
    ]
    store.close()
