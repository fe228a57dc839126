"""``huren registry migrate``: a registry written by schema 6 (the SQL in schema6/, dumped from
that version's own commands) is refused by the gateway with the command named, upgraded with a
backup first and an audit entry chained to the old ones, and then served: its issuer's codes
verify and new changes are audited on the same chain."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from gateway.clock import system_clock
from regions.common.keys import load_or_create
from regions.common.spec import Holder, Secrets
from regions.hangzhou import SPEC, Hangzhou
from tests.conftest import resident_id
from tests.integration.cli import huren, running

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "schema6"


def schema6_state(directory: Path) -> Path:
    """A state directory as schema 6 left it: registry.db alone, readable by others."""
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    with sqlite3.connect(directory / "registry.db") as db:
        db.executescript((FIXTURE / "registry.sql").read_text("utf-8"))
    db.close()
    return directory


def audit_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT seq, at, actor, action, target, outcome, detail, state_digest, trust_version,"
            " previous_hash, entry_hash FROM audit ORDER BY seq"
        ).fetchall()
    db.close()
    return rows


def schema_of(path: Path) -> str:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    db.close()
    return str(row[0])


def green_code(tmp_path: Path) -> str:
    """A code of the fixture's Hangzhou key (its private key is beside the SQL)."""
    keys = tmp_path / "hangzhou"
    keys.mkdir()
    shutil.copy2(FIXTURE / "hangzhou-signing-key.pem", keys / "signing-key.pem")
    signing = load_or_create(keys, "hangzhou", SPEC.algorithm)
    holder = Holder(resident_id(), "王芳")
    secrets = Secrets(signing.key, signing.kid)
    return Hangzhou().issue(holder, "绿码", system_clock(), secrets, "migrate").code


def test_a_schema_6_registry_is_upgraded_audited_and_served(tmp_path):
    state = schema6_state(tmp_path / "state")
    before = audit_rows(state / "registry.db")
    assert len(before) == 3
    for command in (
        ("serve", "--insecure", "--listen", "127.0.0.1:0"),
        ("registry", "create-region", "--region", "310000", "--name", "上海"),
    ):
        refused = huren(*command, "--state-dir", str(state))
        assert refused.returncode == 2
        assert (
            "has registry schema 6, this huren reads schema 7: upgrade it with " in refused.stderr
        )
        assert f"`huren registry migrate --state-dir {state}`" in refused.stderr

    upgraded = huren("registry", "migrate", "--state-dir", str(state))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "from schema 6 to 7 (audit entry 4, trust version 5)" in upgraded.stdout
    backups = list(state.glob("registry.db.schema-6.*.bak"))
    assert len(backups) == 1
    assert backups[0].name in upgraded.stdout
    assert backups[0].stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    assert schema_of(backups[0]) == "6"  # the way back, as it was
    assert audit_rows(backups[0]) == before
    assert schema_of(state / "registry.db") == "7"

    verified = huren("audit", "verify", "--state-dir", str(state))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("audit chain intact: 4 entries")
    log = huren("audit", "log", "--state-dir", str(state), "--json")
    entries = [json.loads(line) for line in log.stdout.splitlines()]
    assert [tuple(e.values())[:1] for e in entries] == [(1,), (2,), (3,), (4,)]
    assert audit_rows(state / "registry.db")[:3] == before  # the old history, unchanged
    last = entries[-1]
    assert last["action"] == "migrate-schema"
    assert last["actor"].startswith("local:")
    assert backups[0].name in last["detail"]

    # Served, and its issuer's codes verify; a change afterwards joins the same chain.
    code = green_code(tmp_path)
    with running(
        *("serve", "--insecure", "--listen", "127.0.0.1:0", "--state-dir", str(state))
    ) as line:
        address = re.search(r"listening on (\S+) \(trust version 5, 1 issuers", line)
        assert address is not None, line
        answer = huren("verify", "--insecure", "--gateway", address.group(1), "--json", code)
    assert answer.returncode == 0, answer.stderr
    verdict = json.loads(answer.stdout)
    assert (verdict["status"], verdict["colour"], verdict["issuer"]) == (
        "VALID",
        "GREEN",
        "hangzhou",
    )
    created = huren(
        "registry",
        "create-region",
        "--state-dir",
        str(state),
        "--region",
        "310000",
        "--name",
        "上海",
    )
    assert created.returncode == 0, created.stderr
    again = huren("audit", "verify", "--state-dir", str(state))
    assert again.stdout.startswith("audit chain intact: 5 entries"), again.stdout

    twice = huren("registry", "migrate", "--state-dir", str(state))
    assert (twice.returncode, twice.stdout) == (
        0,
        f"the registry in {state} has schema 7: nothing to do\n",
    )


def test_an_edited_schema_6_registry_is_not_upgraded(tmp_path):
    state = schema6_state(tmp_path / "state")
    with sqlite3.connect(state / "registry.db") as db:
        db.execute("UPDATE audit SET detail = '杭州 (edited)' WHERE seq = 1")
    db.close()
    refused = huren("registry", "migrate", "--state-dir", str(state))
    assert refused.returncode == 2
    assert "audit chain is broken at entry 1" in refused.stderr
    assert "not upgraded" in refused.stderr
    assert schema_of(state / "registry.db") == "6"
    assert not list(state.glob("*.bak"))
