"""Issue 10: nothing the gateway trusts changes without the audit chain knowing, shown through
what a user has: the command line (separate processes), gRPC over real TLS, the file on disk.

- Tampering (defects 3 to 6): a hub is built once per module through its own APIs (real
  regional issuers, a TLS gateway, operators over mutual TLS) and left at rest; each case works
  on a copy of its state directory, edits or damages ``registry.db`` as an attacker or a careless
  administrator would (sqlite3 by hand, truncation, flipped bytes), and checks ``huren audit
  verify``, ``huren serve``, the next change (gRPC or host-local), and a gateway that was already
  running when the file changed. Witness codes are ones an edit would turn GREEN if served.
- Rollback (defect 7): an emptied, replaced or older registry is refused until the
  administrator accepts it, audited, and trust versions never go back.
- Files (defect 8): the state directory is private, and a loose one is refused.
- Item 9: operator certificates need clientAuth, only admissible algorithms are offered, a key
  admission refusal is audited alike on every path, denied calls have a budget, and the clock's
  high-water mark outlives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import registry_pb2_grpc, verifier_pb2_grpc
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway.cli.pki import create_development_pki
from gateway.clients import TlsCredentials, new_request_id
from gateway.clock import system_clock
from gateway.crypto import ADMISSIBLE, Algorithm, PrivateKey, pki
from gateway.hub import open_hub
from gateway.model import Colour, Reason, Status
from gateway.recognise import DecisionReason, DecisionStatus
from gateway.registry.admission import prove
from gateway.registry.audit import AuditEntry
from gateway.registry.commands import CreateOperator, CreateRegion
from gateway.server.app import (
    REGISTRY_SERVICE,
    VERIFIER_SERVICE,
    GatewayServer,
    TlsFiles,
    open_gateway,
)
from gateway.server.certificates import ServerCertificates
from gateway.storage.files import StateFiles
from gateway.wire import decision_from_pb, verdict_from_pb
from tests.conftest import REPO
from tests.integration.cli import huren, huren_all, running
from tests.integration.conftest import (
    GATEWAY_LIMITS,
    LOCAL,
    MutableClock,
    bootstrap_admin,
    new_state,
    running_hub,
)
from tests.integration.rpc import refused
from tests.integration.test_recognise import add_destination, demo_policy, set_policy
from tests.integration.test_registry import (
    audit,
    channel_as,
    hangzhou_key,
    mint,
    self_signed,
)
from tests.integration.test_registry_names import registration

HZ, BJ = "330100", "110000"
LOCAL_ACTOR = f"local:{getpass.getuser()}"
STALE_GRACE = timedelta(seconds=1)
SERVE_PLAIN = ("serve", "--insecure", "--listen", "127.0.0.1:0", "--state-dir")
"""``huren serve`` without TLS, on a port the system picks; the state directory follows."""

Judged = tuple[object, object, Colour | None]
"""(status, reason, colour) of a verdict or a decision."""

WITNESSES: dict[str, Judged] = {
    # A Hangzhou 红码: GREEN if the stored profile's colour words are swapped.
    "red": (Status.VALID, Reason.OK, Colour.RED),
    # Signed by a revoked Hangzhou key: GREEN if the key is un-revoked in the file.
    "revoked": (Status.REJECTED, Reason.ERR_KEY_REVOKED, Colour.GREY),
    # Signed by a key nobody registered: GREEN if the key is inserted in the file.
    "forged": (Status.REJECTED, Reason.ERR_KEY_UNKNOWN, Colour.GREY),
    # Issued by Guangdong, whose issuer the hub retired: GREEN if the retirement is deleted.
    "retired": (Status.REJECTED, Reason.ERR_ISSUER_RETIRED, Colour.GREY),
}
BEIJING_DECIDES: Judged = (DecisionStatus.DECIDED, DecisionReason.REQUIREMENT_UNMET, Colour.GREY)
"""A lone green Hangzhou code at Beijing, whose policy requires a Beijing code: RECOGNISED GREEN
if the stored policy says ``own_region = false``, or if Hangzhou's issuer is moved to 110000."""


# ---------------------------------------------------------------------- the hub at rest


@dataclass(frozen=True)
class World:
    state: Path
    pki: Path
    now: datetime
    codes: dict[str, str]
    green: str
    """A green Hangzhou code (for Beijing's decision)."""
    values: dict[str, object]
    """What the hand edits write: an attacker's key, an attacker's certificate pin, ..."""


async def _build(base: Path) -> World:
    clock = MutableClock(system_clock().replace(microsecond=0))
    evil = PrivateKey.generate(Algorithm.ES256)
    async with running_hub(base, clock, names=("hangzhou", "guangdong")) as hub:
        await add_destination(hub, "beijing")
        await set_policy(hub, "beijing-ops", demo_policy("beijing"))
        operator, admin = hub.registry("hangzhou-ops"), hub.registry("hub-admin")
        revoked_key, added = hangzhou_key("hz-revoked")
        await operator.AddKey(added)
        codes = {
            "red": await hub.regions["hangzhou"].issue(contact=True),
            "revoked": mint(revoked_key, "hz-revoked", clock()),
            "forged": mint(evil, "evil", clock()),
            "retired": await hub.regions["guangdong"].issue(),
        }
        await operator.RevokeKey(
            rpb.RevokeKeyRequest(
                request_id=new_request_id(), issuer_id="hangzhou", kid="hz-revoked"
            )
        )
        await admin.RetireIssuer(
            rpb.RetireIssuerRequest(
                request_id=new_request_id(), issuer_id="guangdong", reason="keys lost"
            )
        )
        ca = pki.Issued((hub.pki / "ca.pem").read_bytes(), (hub.pki / "ca.key").read_bytes())
        deputy = pki.issue_operator(ca, "hz-deputy", HZ)
        await admin.CreateOperator(
            rpb.CreateOperatorRequest(
                request_id=new_request_id(),
                name="hz-deputy",
                region=HZ,
                certificate_pem=deputy.certificate_pem,
            )
        )
        await admin.RemoveOperator(
            rpb.RemoveOperatorRequest(request_id=new_request_id(), name="hz-deputy")
        )
        values: dict[str, object] = {
            "evil_spki": evil.public_key().spki_der,
            "rogue_pin": pki.certificate_pin(
                pki.issue_operator(ca, "beijing-ops", BJ).certificate_pem
            ),
            "hangzhou_kid": hub.regions["hangzhou"].kid,
        }
        green = await hub.regions["hangzhou"].issue()
        return World(hub.files.directory, hub.pki, clock(), codes, green, values)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return asyncio.run(_build(tmp_path_factory.mktemp("world")))


def copy_of(world: World, folder: Path) -> Path:
    """The world's state directory copied, with everything in ``registry.db`` itself."""
    copy = folder / "state"
    shutil.copytree(world.state, copy)
    with closing(sqlite3.connect(copy / "registry.db")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return copy


def audit_log(database: Path) -> object:
    """The audit rows as SQLite reads them (or, where it cannot, the file's bytes)."""
    try:
        with closing(sqlite3.connect(database)) as db:
            return db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
    except sqlite3.Error:
        data = database.read_bytes()
        return f"unreadable: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"


def one_line(text: str) -> str:
    """The single line a refusal prints (never a traceback)."""
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------------- the edits


Edit = Callable[[Path, World], None]


def sql(*statements: str) -> Edit:
    """Statements run on the file with sqlite3, as someone with a shell on the host would."""

    def edit(database: Path, world: World) -> None:
        with closing(sqlite3.connect(database)) as db, db:
            for statement in statements:
                db.execute(statement, world.values)

    return edit


def truncate(fraction: float) -> Edit:
    def edit(database: Path, world: World) -> None:
        data = database.read_bytes()
        database.write_bytes(data[: int(len(data) * fraction)])

    return edit


def flip_page_of(table: str) -> Edit:
    """Flip bytes in the middle of the cell content of ``table``'s last b-tree leaf page."""

    def edit(database: Path, world: World) -> None:
        with closing(sqlite3.connect(database)) as db:
            (size,) = db.execute("PRAGMA page_size").fetchone()
            (page,) = db.execute(
                "SELECT max(pageno) FROM dbstat WHERE name = ? AND pagetype = 'leaf'", [table]
            ).fetchone()
        data = bytearray(database.read_bytes())
        start = (page - 1) * size
        assert data[start] == 0x0D, "a table b-tree leaf page"
        content = int.from_bytes(data[start + 5 : start + 7], "big") or 65536
        middle = start + (content + size) // 2
        for offset in range(middle, middle + 8):
            data[offset] ^= 0xFF
        database.write_bytes(bytes(data))

    return edit


@dataclass(frozen=True)
class Tamper:
    edit: Edit
    verify_exits: frozenset[int]
    """What ``huren audit verify`` may exit with: 1 for a broken chain, 2 for a damaged file."""
    by_hand: bool = True
    """Edited through SQLite (a running gateway is told by SQLite that the file changed)."""


BROKEN, DAMAGED, EITHER = frozenset({1}), frozenset({2}), frozenset({1, 2})
SWAP_COLOURS = (
    "UPDATE profiles SET source = replace(replace(replace(source, '\"红码\"', '\"@\"'),"
    " '\"绿码\"', '\"红码\"'), '\"@\"', '\"绿码\"') WHERE profile_id = 'hangzhou'"
)
CASES = {
    "profile-text-colours-swapped": Tamper(sql(SWAP_COLOURS), BROKEN),
    "policy-text-own-region-off": Tamper(
        sql(
            "UPDATE policies SET source = replace(source, 'own_region = true',"
            " 'own_region = false') WHERE destination = '110000'"
        ),
        BROKEN,
    ),
    "key-un-revoked": Tamper(
        sql("UPDATE keys SET status = 'active', status_since = NULL WHERE kid = 'hz-revoked'"),
        BROKEN,
    ),
    "key-inserted": Tamper(
        sql(
            "INSERT INTO keys (issuer_id, kid, algorithm, spki_der, status)"
            " VALUES ('hangzhou', 'evil', 'ES256', :evil_spki, 'active')"
        ),
        BROKEN,
    ),
    "revocation-list-inserted": Tamper(
        sql(
            "INSERT INTO revocations (issuer_id, kid, counter, ids)"
            " VALUES ('hangzhou', :hangzhou_kid, 1, '{}')"
        ),
        BROKEN,
    ),
    "issuer-moved-to-beijing": Tamper(
        sql("UPDATE issuers SET region = '110000' WHERE id = 'hangzhou'"), BROKEN
    ),
    "retirement-deleted": Tamper(sql("DELETE FROM retirements"), BROKEN),
    "region-inserted": Tamper(sql("INSERT INTO regions VALUES ('310000', '上海市')"), BROKEN),
    "operator-re-activated": Tamper(
        sql("UPDATE operators SET active = 1 WHERE name = 'hz-deputy'"), BROKEN
    ),
    "operator-pin-changed": Tamper(
        sql("UPDATE operators SET spki_sha256 = :rogue_pin WHERE name = 'beijing-ops'"), BROKEN
    ),
    "profile-id-given-to-beijing": Tamper(
        sql("UPDATE names SET owner = '110000' WHERE kind = 'profile' AND name = 'hangzhou'"),
        BROKEN,
    ),
    "request-record-deleted": Tamper(
        sql("DELETE FROM requests WHERE action = 'revoke-key'"), BROKEN
    ),
    "request-digest-changed": Tamper(
        sql("UPDATE requests SET digest = hex(zeroblob(32)) WHERE action = 'revoke-key'"), BROKEN
    ),
    "meta-trust-version-bumped": Tamper(
        sql("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'trust_version'"),
        BROKEN,
    ),
    "meta-audit-head-moved-back": Tamper(
        sql(
            "UPDATE meta SET value = '1:' || (SELECT entry_hash FROM audit WHERE seq = 1)"
            " WHERE key = 'audit_head'"
        ),
        BROKEN,
    ),
    "audit-row-deleted": Tamper(sql("DELETE FROM audit WHERE seq = 5"), BROKEN),
    "audit-rows-reordered": Tamper(
        sql(
            "UPDATE audit SET seq = -5 WHERE seq = 5",
            "UPDATE audit SET seq = 5 WHERE seq = 6",
            "UPDATE audit SET seq = 6 WHERE seq = -5",
        ),
        BROKEN,
    ),
    "audit-tail-cut-and-head-moved": Tamper(
        sql(
            "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)",
            "UPDATE meta SET value = (SELECT seq || ':' || entry_hash FROM audit"
            " ORDER BY seq DESC LIMIT 1) WHERE key = 'audit_head'",
        ),
        BROKEN,
    ),
    "file-truncated-to-0-bytes": Tamper(truncate(0), DAMAGED, by_hand=False),
    "file-cut-in-half": Tamper(truncate(0.5), DAMAGED, by_hand=False),
    "btree-page-of-the-audit-log-flipped": Tamper(flip_page_of("audit"), EITHER, by_hand=False),
    "btree-page-of-the-profiles-flipped": Tamper(flip_page_of("profiles"), EITHER, by_hand=False),
}
BUMP = sql("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'trust_version'")


# ---------------------------------------------------------------------- at rest


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_an_edited_or_damaged_registry_is_refused_at_rest_and_never_laundered(
    world: World, tmp_path: Path, name: str
) -> None:
    """``audit verify`` says the file is not the one the chain vouches for, ``huren serve``
    refuses to start in one line, and a host-local change is refused without touching the
    audit log (its next entry would otherwise vouch for the edit)."""
    case = CASES[name]
    copy = copy_of(world, tmp_path)
    database = copy / "registry.db"
    case.edit(database, world)
    log = audit_log(database)
    verify, serve, create = huren_all(
        ("audit", "verify", "--state-dir", str(copy)),
        (
            *("serve", "--state-dir", str(copy), "--tls-dir", str(world.pki)),
            *("--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"),
        ),
        (
            *("registry", "create-region", "--state-dir", str(copy)),
            *("--region", "310000", "--name", "上海市"),
        ),
    )
    assert verify.returncode in case.verify_exits, (verify.stdout, verify.stderr)
    said = one_line(verify.stdout + verify.stderr)
    assert "intact" not in said
    assert (serve.returncode, serve.stdout) == (2, ""), serve.stderr
    assert one_line(serve.stderr).startswith("huren: refusing to serve"), serve.stderr
    assert (create.returncode, create.stdout) == (2, ""), create.stderr
    assert one_line(create.stderr).startswith("huren: "), create.stderr
    assert audit_log(database) == log


# ---------------------------------------------------------------------- while serving


@dataclass
class Live:
    """A gateway started on a copy of the world (stale grace: one second), and stubs on it."""

    server: GatewayServer
    clock: MutableClock
    verifier: verifier_pb2_grpc.VerifierServiceAsyncStub
    health: health_pb2_grpc.HealthAsyncStub
    beijing: registry_pb2_grpc.RegistryServiceAsyncStub
    """Beijing's operator, over mutual TLS."""

    async def judged(self, world: World) -> tuple[dict[str, Judged], Judged]:
        """Every witness's verdict, and Beijing's decision on a lone green Hangzhou code."""
        names = list(world.codes)
        answer = await self.verifier.VerifyBatch(
            pb.VerifyBatchRequest(codes=[world.codes[n] for n in names])
        )
        verdicts = [verdict_from_pb(v) for v in answer.verdicts]
        decided = await self.verifier.Recognise(
            pb.RecogniseRequest(codes=[world.green], destination=BJ)
        )
        decision = decision_from_pb(decided.decision)
        return (
            {n: (v.status, v.reason, v.colour) for n, v in zip(names, verdicts, strict=True)},
            (decision.status, decision.reason, decision.colour),
        )

    async def serving(self) -> dict[str, bool]:
        serving = health_pb2.HealthCheckResponse.SERVING
        return {
            name or "(server)": (
                await self.health.Check(health_pb2.HealthCheckRequest(service=name))
            ).status
            == serving
            for name in ("", VERIFIER_SERVICE, REGISTRY_SERVICE)
        }

    async def look(self) -> Exception | None:
        """One look at the file, as the gateway's refresh loop takes every second (which logs
        whatever a look raises and carries on)."""
        try:
            await self.server.refresh_once()
        except Exception as error:
            return error
        return None


@contextlib.asynccontextmanager
async def live_gateway(directory: Path, world: World) -> AsyncIterator[Live]:
    clock = MutableClock(world.now)
    limits = dataclasses.replace(GATEWAY_LIMITS, stale_grace=STALE_GRACE)
    gateway = open_gateway(directory, limits, clock)
    server = GatewayServer(
        gateway,
        "127.0.0.1:0",
        registry_listen="127.0.0.1:0",
        certificates=ServerCertificates(TlsFiles(world.pki)),
    )
    port = await server.start()
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{port}", TlsCredentials.from_pki(world.pki).channel()
    )
    mutual = grpc.aio.secure_channel(
        f"127.0.0.1:{server.registry_port}",
        TlsCredentials.from_pki(world.pki, "beijing-ops").channel(),
    )
    try:
        yield Live(
            server,
            clock,
            verifier_pb2_grpc.VerifierServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            registry_pb2_grpc.RegistryServiceStub(mutual),
        )
    finally:
        await channel.close(None)
        await mutual.close(None)
        await server.stop(0)
        gateway.hub.close()


ALL_SERVING = {"(server)": True, VERIFIER_SERVICE: True, REGISTRY_SERVICE: True}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(CASES))
async def test_a_running_gateway_keeps_its_last_good_trust_and_then_goes_stale(
    world: World, tmp_path: Path, name: str
) -> None:
    """The file changes under a running gateway (an edit made by hand also bumps the trust
    version, so that a reload that checked nothing would serve it at once): the next look
    keeps the last good trust, marks the Registry NOT_SERVING, refuses the next change without
    writing, and after the stale grace answers every code ERR_TRUST_STALE."""
    case = CASES[name]
    copy = copy_of(world, tmp_path)
    database = copy / "registry.db"
    async with live_gateway(copy, world) as live:
        before = await live.judged(world)
        assert before == (WITNESSES, BEIJING_DECIDES)
        assert await live.serving() == ALL_SERVING
        case.edit(database, world)
        if case.by_hand:
            BUMP(database, world)
        problem = await live.look()
        assert await live.judged(world) == before  # the edit is not served
        assert await live.serving() == {**ALL_SERVING, REGISTRY_SERVICE: False}, problem

        log = audit_log(database)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await live.beijing.RevokeKey(
                rpb.RevokeKeyRequest(
                    request_id=new_request_id(),
                    issuer_id="hangzhou",
                    kid=str(world.values["hangzhou_kid"]),
                )
            )
        assert denied.value.code() is grpc.StatusCode.UNAVAILABLE, denied.value.details()
        assert "does not verify" in (denied.value.details() or "")
        assert audit_log(database) == log

        live.clock.advance(STALE_GRACE * 2)
        problem = await live.look()
        verdicts, decision = await live.judged(world)
        assert set(verdicts.values()) == {
            (Status.UNVERIFIABLE, Reason.ERR_TRUST_STALE, Colour.GREY)
        }, problem
        assert decision[2] is not Colour.GREEN
        assert await live.serving() == dict.fromkeys(ALL_SERVING, False)


# ---------------------------------------------------------------------- rollback (defect 7)


@dataclass(frozen=True)
class History:
    """A registry with a few changes, and a copy of its file from before the last two."""

    files: StateFiles
    older: Path
    recorded_seq: int
    recorded_version: int


def history(folder: Path) -> History:
    files = new_state(folder / "state")
    with open_hub(files.directory) as hub:
        hub.registrar.submit(LOCAL, "hz", CreateRegion(HZ, "杭州市"))
    older = folder / "older.db"
    shutil.copy(files.database, older)  # closed: everything is in the file itself
    with open_hub(files.directory) as hub:
        for code, name in ((BJ, "北京市"), ("310000", "上海市")):
            hub.registrar.submit(LOCAL, code, CreateRegion(code, name))
        last = hub.store.last_entry
    assert last is not None
    return History(files, older, last.seq, last.trust_version)


def _older_copy(history: History, folder: Path) -> None:
    shutil.copy(history.older, history.files.database)


def _record_deleted(history: History, folder: Path) -> None:
    _older_copy(history, folder)
    history.files.state_record.unlink()


def _emptied(history: History, folder: Path) -> None:
    with closing(sqlite3.connect(history.files.database)) as db, db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            db.execute(f"DELETE FROM {table}")


def _fresh_schema(history: History, folder: Path) -> None:
    """The registry file of a state directory that was just made, put in place."""
    shutil.copy(new_state(folder / "fresh").database, history.files.database)


ROLLBACKS: dict[str, Callable[[History, Path], None]] = {
    "older-copy-put-back": _older_copy,
    "state-record-deleted-with-an-older-copy": _record_deleted,
    "all-tables-emptied": _emptied,
    "fresh-schema": _fresh_schema,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ROLLBACKS))
def test_a_rolled_back_registry_is_refused_until_the_administrator_accepts_it(
    tmp_path: Path, name: str
) -> None:
    """Trust only grows: a registry older than the record beside it (emptied, replaced, or an
    older copy) is refused by start-up and ``audit verify``, saying how to continue; ``huren
    registry accept-rollback`` continues from it, audited in the administrator's name with the
    entry that was recorded, and trust versions go on above the recorded one."""
    past = history(tmp_path)
    ROLLBACKS[name](past, tmp_path)
    state = str(past.files.directory)
    verify, serve = huren_all(
        ("audit", "verify", "--state-dir", state),
        (*SERVE_PLAIN, state),
    )
    assert verify.returncode in (1, 2), verify.stdout
    assert "intact" not in one_line(verify.stdout + verify.stderr)
    assert serve.returncode == 2, serve.stdout
    refusal = one_line(serve.stderr)
    assert refusal.startswith("huren: refusing to serve"), refusal
    assert "`huren registry accept-rollback`" in refusal, refusal

    accepted = huren("registry", "accept-rollback", "--state-dir", state)
    assert (accepted.returncode, accepted.stderr) == (0, ""), accepted.stderr
    with open_hub(past.files.directory) as hub:
        accept = hub.store.last_entry
        assert accept is not None
        after = hub.registrar.submit(LOCAL, "after", CreateRegion("440000", "广东省"))
        assert hub.store.verify_audit().intact
    assert accepted.stdout == (
        f"accepted: continuing from this registry, audit entry {accept.seq}, "
        f"trust version {accept.trust_version}\n"
    )
    assert (accept.actor, accept.action, accept.outcome) == (LOCAL_ACTOR, "accept-rollback", "ok")
    if name == "state-record-deleted-with-an-older-copy":
        # Nothing tells what was recorded: the entry says the record was missing, and claims
        # no recorded entry it cannot know.
        assert "missing" in accept.detail, accept.detail
    else:
        recorded = f"audit entry {past.recorded_seq}, trust version {past.recorded_version}"
        assert recorded in accept.detail, accept.detail
        assert past.recorded_version < accept.trust_version
    assert accept.trust_version < after.trust_version


@pytest.mark.slow
def test_serve_accept_rollback_serves_an_older_copy_above_the_recorded_version(
    tmp_path: Path,
) -> None:
    past = history(tmp_path)
    _older_copy(past, tmp_path)
    state = str(past.files.directory)
    with running(*SERVE_PLAIN, state, "--accept-rollback") as line:
        match = re.fullmatch(r"huren gateway listening on \S+ \(trust version (\d+), .*\n", line)
        assert match, line
    assert int(match[1]) > past.recorded_version
    with open_hub(past.files.directory) as hub:
        last = hub.store.last_entry
    assert last is not None
    assert (last.actor, last.action, last.trust_version) == (
        LOCAL_ACTOR,
        "accept-rollback",
        int(match[1]),
    )
    again = huren("audit", "verify", "--state-dir", state)
    assert again.returncode == 0, again.stdout


# ---------------------------------------------------------------------- files (defect 8)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run commands with the usual, permissive umask: privacy must not depend on it."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


SECRETS = ("registry.db", "registry.state", "subject.key", "link.key", "trustlist-key.pem")


@pytest.mark.slow
def test_registry_init_makes_the_state_private_and_tightens_an_existing_directory(
    tmp_path: Path,
) -> None:
    new, existing = tmp_path / "new", tmp_path / "var-lib-huren"
    existing.mkdir()
    existing.chmod(0o755)
    with umask(0o022):
        made = huren_all(
            ("registry", "init", "--state-dir", str(new)),
            ("registry", "init", "--state-dir", str(existing)),
        )
        assert [r.returncode for r in made] == [0, 0], [r.stderr for r in made]
        for directory in (new, existing):
            assert mode(directory) == 0o700, directory
            assert {name: mode(directory / name) for name in SECRETS} == dict.fromkeys(
                SECRETS, 0o600
            )
        # SQLite's -wal and -shm exist while a gateway has the registry open.
        with running(*SERVE_PLAIN, str(new)):
            companions = [new / "registry.db-wal", new / "registry.db-shm"]
            assert [mode(p) for p in companions] == [0o600, 0o600]


@pytest.mark.slow
def test_serve_refuses_a_state_directory_or_secret_that_others_may_read(tmp_path: Path) -> None:
    original = new_state(tmp_path / "original").directory
    loose = {"": 0o750, "registry.db": 0o640, "registry.state": 0o644, "subject.key": 0o604}
    cases = []
    for name, bits in loose.items():
        copy = tmp_path / (name or "directory")
        shutil.copytree(original, copy)
        target = copy / name
        target.chmod(bits)
        cases.append((copy, target, "chmod 600" if name else "chmod 700"))
    results = huren_all(*[(*SERVE_PLAIN, str(copy)) for copy, _, _ in cases])
    for (_, target, fix), result in zip(cases, results, strict=True):
        assert result.returncode == 2, result.stdout
        line = one_line(result.stderr)
        assert line.startswith(f"huren: refusing to use {target}: group or others"), line
        assert line.endswith(f"`{fix} {target}`"), line


@pytest.mark.slow
def test_serve_refuses_a_state_directory_without_a_registry_and_init_makes_one(
    tmp_path: Path,
) -> None:
    missing, empty, fresh = tmp_path / "missing", tmp_path / "empty", tmp_path / "fresh"
    empty.mkdir(mode=0o700)
    for result in huren_all((*SERVE_PLAIN, str(missing)), (*SERVE_PLAIN, str(empty))):
        assert result.returncode == 2, result.stdout
        assert "`huren registry init" in one_line(result.stderr), result.stderr
    assert not missing.exists()
    assert list(empty.iterdir()) == []
    with running(*SERVE_PLAIN, str(fresh), "--init") as line:
        assert line.startswith("huren gateway listening on "), line
    assert mode(fresh) == 0o700
    with open_hub(fresh) as hub:
        assert hub.store.verify_audit().intact
        assert [e.action for e in hub.store.audit_entries()] == ["initialise"]


# ---------------------------------------------------------------------- smaller holes (item 9)


def operator_certificate(
    folder: Path, key: ec.EllipticCurvePrivateKey, name: str, region: str, *, client_auth: bool
) -> bytes:
    """An operator certificate from the development CA for ``key``, with or without the
    clientAuth extended key usage (TLS accepts a client certificate without any)."""
    ca_certificate = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = system_clock()
    identity = x509.UniformResourceIdentifier(f"{pki.TRUST_DOMAIN}region/{region}/operator/{name}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([identity]), critical=False)
    )
    if client_auth:
        usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = builder.add_extension(usage, critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.mark.asyncio
async def test_an_operator_certificate_without_client_auth_is_refused(
    tmp_path: Path, clock: MutableClock
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        without = operator_certificate(hub.pki, key, "hz-deputy", HZ, client_auth=False)
        paired = operator_certificate(hub.pki, key, "hz-deputy", HZ, client_auth=True)
        (tmp_path / "without.pem").write_bytes(without)
        local = await asyncio.to_thread(
            huren,
            *("registry", "create-operator", "--state-dir", str(hub.files.directory)),
            *("--name", "hz-deputy", "--region", HZ, "--cert", str(tmp_path / "without.pem")),
        )
        assert (local.returncode, local.stdout) == (2, "")
        assert local.stderr == (
            "huren: ERR_IDENTIFIER: the certificate lacks the clientAuth extended key usage: "
            "it cannot authenticate\n"
        )
        admin = hub.registry("hub-admin")

        def pin(certificate: bytes) -> Awaitable[rpb.CreateOperatorResponse]:
            return admin.CreateOperator(
                rpb.CreateOperatorRequest(
                    request_id=new_request_id(),
                    name="hz-deputy",
                    region=HZ,
                    certificate_pem=certificate,
                )
            )

        await refused(pin(without), grpc.StatusCode.INVALID_ARGUMENT, Reason.ERR_IDENTIFIER)
        await pin(paired)  # the same key, in a certificate that may authenticate a client
        stranger = channel_as(hub, without, key_pem)
        for call in (
            stranger.ListAudit(rpb.ListAuditRequest(limit=1)),
            stranger.CreateRegion(
                rpb.CreateRegionRequest(request_id=new_request_id(), region="310000", name="上海")
            ),
        ):
            error = await refused(call, grpc.StatusCode.UNAUTHENTICATED)
            assert "clientAuth" in (error.details() or "")
        await channel_as(hub, paired, key_pem).ListAudit(rpb.ListAuditRequest(limit=1))


ALGORITHMS = re.compile(r"--algorithm \{([^}]*)\}")


@pytest.mark.slow
def test_key_commands_offer_only_admissible_algorithms_in_a_stable_order(tmp_path: Path) -> None:
    """RS256 (PKCS#1 v1.5) is never admitted, so it is not offered; the choices printed by
    processes with different (random) hash seeds are the same, in the same order."""
    key = tmp_path / "key.pem"
    key.write_text(PrivateKey.generate(Algorithm.ES256).public_key().pem())
    rs256, *helps = huren_all(
        (
            *("operator", "add-key", "--issuer", "hangzhou", "--keys", str(key)),
            *("--signing-key", str(key), "--algorithm", "RS256"),
        ),
        ("operator", "add-key", "--help"),
        ("registry", "add-issuer", "--help"),
        ("operator", "add-key", "--help"),
    )
    assert (rs256.returncode, rs256.stdout) == (2, "")
    chosen = re.search(
        r"argument --algorithm: invalid choice: 'RS256' \(choose from (.*)\)", rs256.stderr
    )
    assert chosen, rs256.stderr
    admissible = sorted(a.value for a in ADMISSIBLE)
    assert [c.strip("' ") for c in chosen[1].split(",")] == admissible
    offered = []
    for result in helps:
        assert result.returncode == 0, result.stderr
        found = ALGORITHMS.search(result.stdout)
        assert found, result.stdout
        offered.append(found[1].split(","))
    assert offered == [admissible] * len(helps)


@dataclass(frozen=True)
class Unadmitted:
    """A key the registry must not admit, as a gRPC submission and as host-local files."""

    submission: rpb.KeySubmission
    keys: Path
    signing_key: Path
    reason: Reason


def _unproven(folder: Path, issuer: str, request_id: str, now: datetime) -> Unadmitted:
    """A proof of possession made for another request (gRPC); on the host, a signing key that
    is not the key's (the command line makes the proof itself)."""
    key = PrivateKey.generate(Algorithm.ES256)
    jwk = json.dumps({**key.public_key().jwk(), "kid": "k1"}).encode()
    (folder / "keys.json").write_bytes(jwk)
    (folder / "other.pem").write_bytes(PrivateKey.generate(Algorithm.ES256).pem())
    submission = rpb.KeySubmission(
        kid="k1", key=jwk, proof=prove(key, issuer, "k1", "another-request")
    )
    return Unadmitted(submission, folder / "keys.json", folder / "other.pem", Reason.ERR_POP)


def _expired(folder: Path, issuer: str, request_id: str, now: datetime) -> Unadmitted:
    """An X.509 certificate that expired a month ago, with a genuine proof."""
    key = PrivateKey.generate(Algorithm.ES256)
    certificate = self_signed(key, now - timedelta(days=400), now - timedelta(days=30))
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(key.pem())
    submission = rpb.KeySubmission(kid="k1", key=pem, proof=prove(key, issuer, "k1", request_id))
    return Unadmitted(submission, folder / "cert.pem", folder / "key.pem", Reason.ERR_KEY_WEAK)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "unadmitted", [_unproven, _expired], ids=["unproven-key", "expired-certificate"]
)
async def test_a_key_admission_refusal_is_audited_alike_from_grpc_and_the_host(
    tmp_path: Path, clock: MutableClock, unadmitted: Callable[..., Unadmitted]
) -> None:
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        request = registration("hz-remote", HZ)
        offer = unadmitted(tmp_path, "hz-remote", request.request_id, clock())
        request.keys.append(offer.submission)
        await refused(
            hub.registry("hangzhou-ops").RegisterIssuer(request),
            grpc.StatusCode.INVALID_ARGUMENT,
            offer.reason,
        )
        local = await asyncio.to_thread(
            huren,
            *("registry", "add-issuer", "--state-dir", str(hub.files.directory)),
            *("--id", "hz-local", "--region", HZ, "--name", "杭州区码", "--kid", "k1"),
            *("--profile", str(REPO / "regions" / "hangzhou" / "profile.toml")),
            *("--keys", str(offer.keys), "--signing-key", str(offer.signing_key)),
        )
        assert local.returncode == 2, local.stdout
        assert one_line(local.stderr).startswith(f"huren: {offer.reason.value}: ")
        entries = {e.target: e for e in await audit(hub)}
    assert "hz-local" in entries, "the host-local refusal was not audited"
    remote, host = entries["hz-remote"], entries["hz-local"]
    assert (remote.actor, host.actor) == (f"operator:{HZ}:hangzhou-ops", LOCAL_ACTOR)
    for entry in (remote, host):
        assert (entry.action, entry.outcome) == ("register-issuer", rpb.AUDIT_OUTCOME_REFUSED)
        assert entry.detail.startswith(f"{offer.reason.value}: "), entry.detail


def hangzhou_operator_hub(folder: Path) -> tuple[StateFiles, Path]:
    """A state directory whose hub administrator and Hangzhou operator are pinned."""
    files, tls = new_state(folder / "state"), folder / "pki"
    create_development_pki(tls)
    bootstrap_admin(files, tls)
    with open_hub(files.directory) as hub:
        hub.registrar.submit(LOCAL, "region", CreateRegion(HZ, "杭州市"))
        certificate = (tls / "operators" / "hangzhou-ops.pem").read_bytes()
        hub.registrar.submit(LOCAL, "operator", CreateOperator("hangzhou-ops", HZ, certificate))
    return files, tls


def audit_entries(files: StateFiles) -> list[AuditEntry]:
    with open_hub(files.directory) as hub:
        return list(hub.store.audit_entries())


@pytest.mark.slow
def test_denied_calls_beyond_the_budget_are_exhausted_and_audited_once(tmp_path: Path) -> None:
    """An operator cannot grow the audit log without bound: past the budget its denied calls
    are RESOURCE_EXHAUSTED and only counted, and one entry records how many there were (the
    gateway writes it at the latest when it stops)."""
    files, tls = hangzhou_operator_hub(tmp_path)
    serve = [
        *("serve", "--state-dir", str(files.directory), "--tls-dir", str(tls)),
        *("--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"),
        *("--denied-burst", "3", "--denied-refill-seconds", "3600"),
    ]
    before = len(audit_entries(files))
    with running(*serve) as line:
        address = re.search(r"registry on (\S+)\)", line)
        assert address, line
        credentials = TlsCredentials.from_pki(tls, "hangzhou-ops").channel()
        with grpc.secure_channel(address[1], credentials) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            codes = []
            for _ in range(8):
                request = rpb.CreateRegionRequest(
                    request_id=new_request_id(), region="310000", name="上海市"
                )
                with pytest.raises(grpc.RpcError) as denied:
                    stub.CreateRegion(request)
                codes.append(denied.value.code())
            assert (
                codes
                == [grpc.StatusCode.PERMISSION_DENIED] * 3
                + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 5
            )
            assert len(audit_entries(files)) == before + 3
    entries = audit_entries(files)
    assert len(entries) == before + 4, [(e.action, e.outcome) for e in entries[before:]]
    last = entries[-1]
    assert (last.actor, last.action, last.outcome) == (
        f"operator:{HZ}:hangzhou-ops",
        "rate-limited",
        "denied",
    )
    assert last.detail.startswith("5 denied or refused call(s)"), last.detail


@pytest.mark.asyncio
async def test_a_restarted_gateway_remembers_the_latest_instant_an_earlier_run_judged_at(
    tmp_path: Path, clock: MutableClock
) -> None:
    """Threats F6 across restarts: a gateway that judged a code two hours on persists that
    instant (clock.mark); restarted with its clock set back to before it (but after the
    registry's last change), it judges nothing; without the mark it would."""
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        code = await hub.regions["hangzhou"].issue()
        state = tmp_path / "copy"
        shutil.copytree(hub.files.directory, state)
    start = clock()
    first = open_gateway(state, GATEWAY_LIMITS, MutableClock(start + timedelta(hours=2)))
    server = GatewayServer(first, "127.0.0.1:0")
    await server.start()
    try:
        assert first.service.verify(code).colour is Colour.GREEN
        await server.keep_house()
    finally:
        await server.stop(0)
        first.hub.close()
    mark = StateFiles(state).clock_mark
    assert mode(mark) == 0o600
    assert datetime.fromisoformat(mark.read_text().strip()) == start + timedelta(hours=2)

    def restarted_at(now: datetime) -> tuple[object, object]:
        gateway = open_gateway(state, GATEWAY_LIMITS, MutableClock(now))
        try:
            verdict = gateway.service.verify(code)
        finally:
            gateway.hub.close()
        return verdict.status, verdict.reason

    set_back = start + timedelta(minutes=30)
    assert restarted_at(set_back) == (Status.UNVERIFIABLE, Reason.ERR_CLOCK_UNTRUSTED)
    mark.unlink()
    assert restarted_at(set_back) == (Status.VALID, Reason.OK)
