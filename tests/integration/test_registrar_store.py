"""The Registrar over a real registry file: every change decided once, written whole with its
audit entry, idempotent by request id, authorised, and never written to (or served from) a file
whose state the audit chain does not vouch for."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.crypto import Algorithm, PrivateKey
from gateway.crypto.pki import certificate_pin, issue_operator, new_ca
from gateway.errors import (
    ConfigurationInvalid,
    NotFound,
    NotPermitted,
    Overloaded,
    RegistryDamaged,
    RequestConflict,
    RequestInvalid,
    StorageUnavailable,
)
from gateway.hub import Hub, initialise, open_hub
from gateway.model import IssuerId, KeyId, Reason, RegionCode
from gateway.registry import KeyStatus
from gateway.registry.admission import KeyOffer, offers_from_file
from gateway.registry.authority import Actor, Role
from gateway.registry.commands import (
    AddKey,
    CreateOperator,
    CreateRegion,
    RegisterIssuer,
    RemoveOperator,
    RetireKey,
    RevokeKey,
    SetPolicy,
    UpdateProfile,
)
from gateway.registry.registrar import Change, Credential, Registrar, RegistrarLimits
from gateway.storage.secrets import (
    create_exclusive,
    load_or_create_private_key,
    load_or_create_secret,
    replace_atomically,
)
from gateway.storage.sqlite import SqliteRegistry
from tests.conftest import HANGZHOU_PROFILE, NOW

LOCAL = Actor(Role.LOCAL, "tester")
HZ_OPS = Actor(Role.OPERATOR, "hangzhou-ops", RegionCode("330100"))
BJ_OPS = Actor(Role.OPERATOR, "beijing-ops", RegionCode("110000"))
ADMIN = Actor(Role.ADMIN, "hub-admin")


def _hub(tmp_path: Path, *, regions: bool = True, **options: object) -> Hub:
    state = tmp_path / "state"
    if not (state / "registry.db").exists():
        initialise(state, LOCAL, lambda: NOW)
    hub = open_hub(state, clock=lambda: NOW, **options)  # type: ignore[arg-type]
    if regions and "330100" not in hub.store.state.snapshot().regions:
        for code, name in (("330100", "杭州"), ("110000", "北京")):
            hub.registrar.submit(ADMIN, f"region-{code}", CreateRegion(code, name))
    return hub


def _offers(issuer: str, request_id: str, *kids: str) -> tuple[KeyOffer, ...]:
    keys = {kid: PrivateKey.generate(Algorithm.ES256) for kid in kids}
    offers = []
    for kid, key in keys.items():
        jwk = json.dumps({**key.public_key().jwk(), "kid": kid}).encode()
        offers.extend(offers_from_file(jwk, [key], issuer=issuer, request_id=request_id))
    return tuple(offers)


def _register(
    hub: Hub,
    *kids: str,
    actor: Actor = LOCAL,
    request_id: str = "r1",
    issuer: str = "hangzhou",
    region: str = "330100",
    profile: str = HANGZHOU_PROFILE,
    code_name: str | None = None,
) -> Change:
    command = RegisterIssuer(
        issuer,
        region,
        "杭州健康码",
        profile,
        _offers(issuer, request_id, *kids),
        code_name=code_name,
    )
    return hub.registrar.submit(actor, request_id, command)


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_the_database_is_durable_by_configuration_and_private(tmp_path):
    hub = _hub(tmp_path)
    conn = hub.store.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    files = hub.files
    assert files.directory.stat().st_mode & 0o777 == 0o700
    for path in files.private_files():
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, path.name
    assert (files.database.parent / "registry.db-wal").exists()
    hub.close()


def test_a_registration_is_reloaded_exactly_with_its_audit_entry(tmp_path):
    hub = _hub(tmp_path)
    before = hub.store.state.version
    change = _register(hub, "k1", "k2")
    saved = hub.store.state.snapshot()
    hub.close()
    assert change.trust_version == saved.version == before + 4  # profile, issuer, two keys
    audit = change.audit
    assert (audit.actor, audit.action, audit.target, audit.outcome) == (
        "local:tester",
        "register-issuer",
        "hangzhou",
        "ok",
    )
    assert "k1, k2" in audit.detail
    again = _hub(tmp_path)
    assert again.store.problem is None
    loaded = again.store.state.snapshot()
    assert loaded.version == saved.version
    assert dict(loaded.keys) == dict(saved.keys)
    assert dict(loaded.issuers) == dict(saved.issuers)
    assert dict(loaded.profile_sources) == dict(saved.profile_sources)
    assert again.store.verify_audit().intact
    again.close()


def test_a_refused_registration_changes_nothing_but_is_audited(tmp_path):
    hub = _hub(tmp_path)
    version = hub.store.state.version
    command = RegisterIssuer(
        "hangzhou", "330100", "杭州健康码", HANGZHOU_PROFILE, _offers("hangzhou", "r1", "k1") * 2
    )
    with pytest.raises(ConfigurationInvalid, match="already has a key"):
        hub.registrar.submit(LOCAL, "r1", command)
    assert hub.store.state.version == version
    last = hub.store.last_entry
    assert last is not None
    assert (last.outcome, last.target) == ("refused", "hangzhou")
    assert last.detail.startswith("ERR_IDENTIFIER")
    hub.close()
    assert [
        _count(tmp_path / "state" / "registry.db", t) for t in ("profiles", "issuers", "keys")
    ] == [0, 0, 0]


def test_a_retried_request_returns_the_first_result_and_a_reused_id_is_refused(tmp_path):
    hub = _hub(tmp_path)
    offers = _offers("hangzhou", "same", "k1")
    command = RegisterIssuer("hangzhou", "330100", "杭州健康码", HANGZHOU_PROFILE, offers)
    first = hub.registrar.submit(LOCAL, "same", command)
    # A retry re-signs its proofs (ECDSA differs every time): the same content all the same.
    again = hub.registrar.submit(LOCAL, "same", command)
    assert again == first
    other = RegisterIssuer(
        "hangzhou", "330100", "杭州健康码", HANGZHOU_PROFILE, _offers("hangzhou", "same", "k2")
    )
    with pytest.raises(RequestConflict):
        hub.registrar.submit(LOCAL, "same", other)
    for bad in ("", "x" * 129, "bad\nid", "请求"):
        with pytest.raises(RequestInvalid):
            hub.registrar.submit(LOCAL, bad, command)
    assert hub.store.last_entry == first.audit
    hub.close()


def test_operators_act_only_in_their_own_region_and_denials_are_audited(tmp_path):
    hub = _hub(tmp_path)
    version = hub.store.state.version
    with pytest.raises(NotPermitted, match="cannot act on issuers of 330100"):
        _register(hub, "k1", actor=BJ_OPS)
    with pytest.raises(NotPermitted, match="does not change issuers"):
        _register(hub, "k1", actor=ADMIN)
    assert hub.store.state.version == version
    change = _register(hub, "k1", actor=HZ_OPS, request_id="ok")
    with pytest.raises(NotPermitted):
        hub.registrar.submit(
            BJ_OPS, "steal", AddKey("hangzhou", _offers("hangzhou", "steal", "k2")[0])
        )
    with pytest.raises(NotPermitted):
        hub.registrar.submit(BJ_OPS, "x", RevokeKey("hangzhou", "k1"))
    with pytest.raises(NotPermitted, match="only the hub administrator"):
        hub.registrar.submit(HZ_OPS, "r", CreateRegion("310000", "上海"))
    outcomes = [(e.actor, e.action, e.outcome) for e in hub.store.audit_entries()]
    assert outcomes[-6:] == [
        ("operator:110000:beijing-ops", "register-issuer", "denied"),
        ("admin:hub-admin", "register-issuer", "denied"),
        ("operator:330100:hangzhou-ops", "register-issuer", "ok"),
        ("operator:110000:beijing-ops", "add-key", "denied"),
        ("operator:110000:beijing-ops", "revoke-key", "denied"),
        ("operator:330100:hangzhou-ops", "create-region", "denied"),
    ]
    assert hub.store.state.version == change.trust_version
    assert hub.store.verify_audit().intact
    hub.close()


def test_an_issuer_id_of_another_region_cannot_be_registered_over(tmp_path):
    hub = _hub(tmp_path)
    _register(hub, "k1", actor=HZ_OPS)
    with pytest.raises(NotPermitted, match="cannot act on issuers of 330100"):
        _register(hub, actor=BJ_OPS, region="110000", request_id="squat")
    assert hub.store.state.issuer(IssuerId("hangzhou")).region == "330100"  # type: ignore[union-attr]
    hub.close()


def test_key_admission_refusals_are_authorised_then_audited(tmp_path):
    """A key that fails admission (a proof for another request id): a cross-region caller is
    denied whatever it sent, the owner's refusal is audited, an unknown issuer is NOT_FOUND,
    and a retry of a request that had succeeded gets its first result."""
    hub = _hub(tmp_path)
    _register(hub, "k1", actor=HZ_OPS)
    version = hub.store.state.version
    unproven = AddKey("hangzhou", _offers("hangzhou", "another request", "weak")[0])
    with pytest.raises(NotPermitted):
        hub.registrar.submit(BJ_OPS, "a", unproven)
    with pytest.raises(ConfigurationInvalid, match="proof of possession") as refused:
        hub.registrar.submit(HZ_OPS, "b", unproven)
    assert refused.value.reason is Reason.ERR_POP
    with pytest.raises(NotFound, match="nowhere"):
        hub.registrar.submit(HZ_OPS, "c", AddKey("nowhere", unproven.key))
    assert hub.store.state.version == version
    outcomes = [(e.actor, e.target, e.outcome, e.detail[:14]) for e in hub.store.audit_entries()]
    assert outcomes[-3:] == [
        ("operator:110000:beijing-ops", "hangzhou/weak", "denied", "an operator of"),
        ("operator:330100:hangzhou-ops", "hangzhou/weak", "refused", "ERR_POP: the p"),
        ("operator:330100:hangzhou-ops", "nowhere/weak", "refused", "NOT_FOUND: iss"),
    ]
    add = AddKey("hangzhou", _offers("hangzhou", "retry", "k2")[0])
    done = hub.registrar.submit(HZ_OPS, "retry", add)
    assert hub.registrar.submit(HZ_OPS, "retry", add) == done
    hub.close()


def test_operators_cannot_register_in_a_region_the_hub_has_not_created(tmp_path):
    hub = _hub(tmp_path, regions=False)
    with pytest.raises(ConfigurationInvalid, match="not registered; the hub administrator"):
        _register(hub, "k1", actor=LOCAL)
    hub.close()


def test_keys_retire_and_revoke_and_revoked_ids_stay_burned(tmp_path):
    hub = _hub(tmp_path)
    _register(hub, "k1", "k2")
    retire_at = NOW + timedelta(hours=1)
    hub.registrar.submit(LOCAL, "a", RetireKey("hangzhou", "k1", retire_at))
    hub.registrar.submit(LOCAL, "b", RevokeKey("hangzhou", "k2", "exposed"))
    keys = hub.store.state.snapshot().keys
    k1, k2 = keys[(IssuerId("hangzhou"), KeyId("k1"))], keys[(IssuerId("hangzhou"), KeyId("k2"))]
    assert (k1.status, k1.status_since) == (KeyStatus.RETIRED, retire_at)
    assert (k2.status, k2.status_since) == (KeyStatus.REVOKED, NOW)
    with pytest.raises(ConfigurationInvalid, match="only move earlier") as later:
        hub.registrar.submit(LOCAL, "later", RetireKey("hangzhou", "k1", retire_at + timedelta(1)))
    assert later.value.reason is Reason.ERR_VERSION
    assert (
        hub.registrar.submit(LOCAL, "earlier", RetireKey("hangzhou", "k1", NOW)).audit.outcome
        == "ok"
    )
    with pytest.raises(ConfigurationInvalid) as burned:
        hub.registrar.submit(LOCAL, "c", AddKey("hangzhou", _offers("hangzhou", "c", "k2")[0]))
    assert burned.value.reason is Reason.ERR_REVOKED_KID
    with pytest.raises(NotFound):
        hub.registrar.submit(LOCAL, "d", RevokeKey("nobody", "k1"))
    hub.close()
    reloaded = _hub(tmp_path)
    key = reloaded.store.state.snapshot().keys[(IssuerId("hangzhou"), KeyId("k2"))]
    assert key.status is KeyStatus.REVOKED
    reloaded.close()


def test_profiles_move_one_version_at_a_time_and_old_versions_stay(tmp_path):
    hub = _hub(tmp_path)
    _register(hub, "k1")
    v2 = HANGZHOU_PROFILE.replace("version = 1", "version = 2").replace(
        'max = "24h"', 'max = "12h"'
    )
    v3 = v2.replace("version = 2", "version = 3")
    with pytest.raises(ConfigurationInvalid) as skipped:
        hub.registrar.submit(LOCAL, "a", UpdateProfile("hangzhou", v3))
    assert skipped.value.reason is Reason.ERR_VERSION
    hub.registrar.submit(LOCAL, "b", UpdateProfile("hangzhou", v2))
    with pytest.raises(ConfigurationInvalid) as back:
        hub.registrar.submit(LOCAL, "c", UpdateProfile("hangzhou", HANGZHOU_PROFILE))
    assert back.value.reason is Reason.ERR_VERSION
    snapshot = hub.store.state.snapshot()
    assert snapshot.issuers[IssuerId("hangzhou")].profile_version == 2
    assert sorted(v for (i, v) in snapshot.profile_sources if i == "hangzhou") == [1, 2]
    hub.close()


def test_operator_pins_follow_their_certificates_clientauth_and_removal(tmp_path):
    hub = _hub(tmp_path)
    ca = new_ca()
    certificate = issue_operator(ca, "hangzhou-ops", "330100").certificate_pem
    with pytest.raises(ConfigurationInvalid, match="names another operator"):
        hub.registrar.submit(ADMIN, "a", CreateOperator("other-name", "330100", certificate))
    hub.registrar.submit(ADMIN, "b", CreateOperator("hangzhou-ops", "330100", certificate))
    found = hub.store.state.operator_by_pin(certificate_pin(certificate))
    assert found is not None
    assert (found.name, found.region, found.active) == ("hangzhou-ops", "330100", True)
    assert hub.registrar.identify(Credential(certificate)) == HZ_OPS
    hub.registrar.submit(ADMIN, "c", RemoveOperator("hangzhou-ops"))
    removed = hub.store.state.operator_by_pin(certificate_pin(certificate))
    assert removed is not None
    assert removed.active is False
    hub.close()


def test_writes_take_the_write_lock_first(tmp_path):
    hub = _hub(tmp_path)
    statements: list[str] = []
    hub.store.db.conn.set_trace_callback(statements.append)
    _register(hub, "k1")
    writes = [s for s in statements if not s.startswith("PRAGMA")]
    assert writes[0] == "BEGIN IMMEDIATE"
    assert writes[-1] == "COMMIT"
    hub.close()


def test_a_locked_database_is_unavailable_and_nothing_changes(tmp_path):
    hub = _hub(tmp_path)
    store = SqliteRegistry(hub.files.database, busy_timeout=0.1)
    registrar = Registrar(store, lambda: NOW)
    version = store.state.version
    holder = sqlite3.connect(hub.files.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable, match="busy"):
            registrar.submit(LOCAL, "r1", CreateRegion("310000", "上海"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.state.version == version
    registrar.submit(LOCAL, "r1", CreateRegion("310000", "上海"))
    assert store.state.version == version + 1
    store.close()
    hub.close()


def test_another_process_changes_are_seen_verified_and_validated_against(tmp_path):
    one, two = _hub(tmp_path), _hub(tmp_path)
    _register(one, "k1")
    assert two.store.refresh() is True  # the other connection sees the change, verified
    assert two.store.refresh() is False
    assert IssuerId("hangzhou") in two.store.state.snapshot().issuers
    three = open_hub(tmp_path / "state", clock=lambda: NOW)
    # A stale writer validates against the truth: the duplicate issuer is refused.
    with pytest.raises(ConfigurationInvalid, match="already registered"):
        _register(three, "k9", request_id="again")
    for hub in (one, two, three):
        hub.close()


def test_a_re_read_parses_again_only_the_keys_whose_rows_changed(tmp_path):
    """A gateway serving the file re-reads it after another process's change: keys whose rows
    are unchanged are the records it already had; a revoked key's is new, and says so."""
    one, two = _hub(tmp_path), _hub(tmp_path)
    _register(one, "k1", "k2")
    assert two.store.refresh() is True
    before = two.store.state.snapshot().keys
    one.registrar.submit(LOCAL, "revoke", RevokeKey("hangzhou", "k2", "lost"))
    assert two.store.refresh() is True
    after = two.store.state.snapshot().keys
    k1, k2 = (IssuerId("hangzhou"), KeyId("k1")), (IssuerId("hangzhou"), KeyId("k2"))
    assert after[k1] is before[k1]
    assert after[k2] is not before[k2]
    assert (before[k2].status, after[k2].status) == (KeyStatus.ACTIVE, KeyStatus.REVOKED)
    # A row changed behind the registry's back is read afresh (its old record would hide the
    # change from the state digest), and the file does not verify.
    with sqlite3.connect(tmp_path / "state" / "registry.db") as conn:
        conn.execute("UPDATE keys SET status = 'revoked' WHERE kid = 'k1'")
    assert two.store.refresh() is False  # the verified state did not move on
    assert two.store.problem is not None
    assert two.store.state.snapshot().keys[k1] is after[k1]  # the last good state is kept
    for hub in (one, two):
        hub.close()


def test_a_database_of_another_schema_version_is_not_served(tmp_path):
    _hub(tmp_path).close()
    with sqlite3.connect(tmp_path / "state" / "registry.db") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    hub = open_hub(tmp_path / "state", clock=lambda: NOW)
    assert hub.store.problem is not None
    assert "schema 99 is not" in str(hub.store.problem)
    with pytest.raises(RegistryDamaged):
        hub.registrar.submit(LOCAL, "x", CreateRegion("310000", "上海"))
    hub.close()


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


def _policy(destination: str, version: int, extra: str = "", policy_id: str = "") -> SetPolicy:
    return SetPolicy(
        f'[policy]\nid = "{policy_id or "p-" + destination}"\nversion = {version}\n'
        f'destination = "{destination}"\n{extra}'
    )


def test_policies_are_versioned_authorised_audited_and_reloaded(tmp_path):
    hub = _hub(tmp_path)
    stacking = _policy("110000", 1, "[require]\nown_region = true\n")
    with pytest.raises(NotPermitted, match="only an operator of 110000"):
        hub.registrar.submit(HZ_OPS, "p0", stacking)
    with pytest.raises(NotPermitted, match="only an operator of 110000"):
        hub.registrar.submit(ADMIN, "p0", stacking)
    change = hub.registrar.submit(BJ_OPS, "p1", stacking)
    assert "code-stacking: requires a code from the destination's own region" in change.audit.detail
    assert (change.audit.action, change.audit.target) == ("set-policy", "110000")
    with pytest.raises(ConfigurationInvalid) as skipped:
        hub.registrar.submit(BJ_OPS, "p3", _policy("110000", 3))
    assert skipped.value.reason is Reason.ERR_VERSION
    hub.registrar.submit(BJ_OPS, "p2", _policy("110000", 2))
    with pytest.raises(NotPermitted, match="national"):
        hub.registrar.submit(BJ_OPS, "n", _policy("national", 1))
    hub.registrar.submit(ADMIN, "n", _policy("national", 1))
    snapshot = hub.store.state.snapshot()
    assert snapshot.policy_for(RegionCode("110105")).label == "p-110000@2"  # a district
    assert snapshot.policy_for(RegionCode("310000")).label == "p-national@1"
    assert [v.version for v in snapshot.policy_versions["110000"]] == [1, 2]
    hub.close()
    reloaded = _hub(tmp_path)
    assert dict(reloaded.store.state.snapshot().policies) == dict(snapshot.policies)
    assert reloaded.store.verify_audit().intact
    outcomes = [
        (e.actor, e.outcome) for e in reloaded.store.audit_entries() if e.action == "set-policy"
    ]
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
    hub = _hub(tmp_path)
    broken = SetPolicy(
        '[policy]\nid = "p"\nversion = 1\ndestination = "110000"\n[combine]\nstrategy = "wildest"\n'
    )
    with pytest.raises(NotPermitted):
        hub.registrar.submit(HZ_OPS, "x", broken)
    with pytest.raises(ConfigurationInvalid) as refused:
        hub.registrar.submit(BJ_OPS, "x", broken)
    assert refused.value.reason is Reason.ERR_POLICY
    # Text that says nothing is authorised against the caller's own region, then refused.
    with pytest.raises(ConfigurationInvalid, match="not valid TOML"):
        hub.registrar.submit(BJ_OPS, "y", SetPolicy("this is not toml ["))
    entries = [(e.outcome, e.target, e.detail[:10]) for e in hub.store.audit_entries()][-3:]
    assert entries[:2] == [
        ("denied", "110000", "only an op"),
        ("refused", "110000", "ERR_POLICY"),
    ]
    hub.close()


# ---------------------------------------------------------------------- trust integrity


def test_an_unaudited_edit_is_never_laundered_by_the_next_entry(tmp_path):
    """Issue 10, defect 4: un-revoking a key in the file and then making any change (even a
    denied one) used to write an entry whose digest vouched for the edited state."""
    hub = _hub(tmp_path)
    _register(hub, "k1")
    hub.registrar.submit(LOCAL, "revoke", RevokeKey("hangzhou", "k1", "exposed"))
    with sqlite3.connect(hub.files.database) as conn:
        conn.execute("UPDATE keys SET status = 'active', status_since = NULL")
    before = len(list(hub.store.audit_entries()))
    for actor, command in (
        (BJ_OPS, RevokeKey("hangzhou", "k1")),  # a denied call
        (LOCAL, CreateRegion("310000", "上海")),  # a host-local change
    ):
        with pytest.raises(RegistryDamaged, match="does not verify"):
            hub.registrar.submit(actor, "after-edit", command)
    assert len(list(hub.store.audit_entries())) == before
    # The running state is still the one the chain vouches for: the key stays revoked.
    key = hub.store.state.snapshot().keys[(IssuerId("hangzhou"), KeyId("k1"))]
    assert key.status is KeyStatus.REVOKED
    assert not hub.store.verify_audit().intact
    hub.close()


def test_denied_calls_beyond_the_budget_are_counted_and_coalesced(tmp_path):
    hub = _hub(tmp_path, limits=RegistrarLimits(burst=3, refill_seconds=3600))
    before = len(list(hub.store.audit_entries()))
    for n in range(3):
        with pytest.raises(NotPermitted):
            hub.registrar.submit(HZ_OPS, f"d{n}", CreateRegion("310000", "上海"))
    for n in range(5):
        with pytest.raises(Overloaded, match="retry later"):
            hub.registrar.submit(HZ_OPS, f"o{n}", CreateRegion("310000", "上海"))
    assert len(list(hub.store.audit_entries())) == before + 3  # the excess is not written
    hub.registrar.flush(quiet_seconds=0)
    last = hub.store.last_entry
    assert last is not None
    assert (last.actor, last.action, last.outcome) == (HZ_OPS.label, "rate-limited", "denied")
    assert last.detail.startswith("5 denied or refused call(s)")
    # Another actor is not held back by this one's budget, and changes are never limited.
    with pytest.raises(NotPermitted):
        hub.registrar.submit(BJ_OPS, "b", CreateRegion("310000", "上海"))
    assert hub.registrar.submit(ADMIN, "ok", CreateRegion("310000", "上海")).audit.outcome == "ok"
    assert hub.store.verify_audit().intact
    hub.close()
