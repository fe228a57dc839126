"""The registry and operator commands of ``huren``, run as a user runs them: separate processes,
one real gateway on loopback, its registry file, and a development PKI made by ``huren pki``.

One gateway serves the whole module (starting one and bootstrapping its hub administrator costs
seconds); each test works on its own issuers and region codes, so the tests do not depend on one
another's order.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import re
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.cli.pki import create_development_pki
from gateway.clock import system_clock
from gateway.codecs import jws, strictjson
from gateway.crypto import pki
from regions import REGIONS, spec_of
from regions.common.keys import SigningKey, load_or_create
from regions.common.spec import Holder, Secrets
from regions.hangzhou import SPEC, Hangzhou
from tests.conftest import REPO, resident_id
from tests.integration.cli import huren, huren_all, init_state, refused, running

pytestmark = pytest.mark.slow

PROFILE = REPO / "regions" / "hangzhou" / "profile.toml"
HANGZHOU = Hangzhou()
# One operator per demo region, named after it, for that region's code.
DEMO_OPERATORS = {f"{name}-ops": spec_of(name).code for name in REGIONS}
LOCAL_ACTOR = f"local:{getpass.getuser()}"
HANGZHOU_OPS = "operator:330100:hangzhou-ops"
CHANGE = re.compile(
    r"\(trust version (?P<version>\d+), audit entry (?P<seq>\d+), request (?P<request>\S+)\)$"
)


def change(result: subprocess.CompletedProcess[str], text: str) -> tuple[int, int]:
    """(trust version, audit entry) of a change the CLI reported, after checking its text."""
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(text), line
    match = CHANGE.search(line)
    assert match, line
    return int(match["version"]), int(match["seq"])


@dataclass(frozen=True)
class Key:
    """A Hangzhou-style signing key, its JWKS file and its private key file."""

    signing: SigningKey
    jwks: Path
    pem: Path

    @property
    def kid(self) -> str:
        return self.signing.kid

    @classmethod
    def make(cls, folder: Path) -> Key:
        signing = load_or_create(folder, "hangzhou", SPEC.algorithm)
        jwks = folder / "jwks.json"
        jwks.write_text(json.dumps({"keys": [signing.jwk()]}))
        return cls(signing, jwks, folder / "signing-key.pem")

    def code(self, issued_at: datetime | None = None, state: str = "绿码") -> str:
        """A code minted exactly as the Hangzhou service mints them, with this key."""
        holder = Holder(resident_id(), "王芳")
        secrets = Secrets(self.signing.key, self.signing.kid)
        return HANGZHOU.issue(holder, state, issued_at or system_clock(), secrets, "cli").code


def profile(folder: Path, profile_id: str = "hangzhou", version: int = 1) -> Path:
    """The Hangzhou profile under another id and/or version (so tests do not share profiles)."""
    text = PROFILE.read_text("utf-8")
    assert 'id = "hangzhou"' in text
    assert "\nversion = 1\n" in text
    text = text.replace('id = "hangzhou"', f'id = "{profile_id}"', 1)
    text = text.replace("\nversion = 1\n", f"\nversion = {version}\n", 1)
    path = folder / f"{profile_id}-{version}.toml"
    path.write_text(text, "utf-8")
    return path


@dataclass(frozen=True)
class Hub:
    pki: Path
    state: Path
    address: str
    """The verification address (TLS, server authentication only)."""
    registry: str
    """The registry address (mutual TLS)."""

    def operator(self, action: str, who: str, *args: str) -> list[str]:
        """A ``huren operator`` command line, as operator ``who`` of the --pki folder."""
        connection = ["--pki", str(self.pki), "--as", who, "--gateway", self.registry]
        return ["operator", action, *connection, *args]

    def run(self, action: str, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return huren(*self.operator(action, who, *args))

    def verify(self, *codes: str) -> tuple[int, list[dict[str, Any]]]:
        result = huren(
            "verify", "--gateway", self.address, "--pki", str(self.pki), "--json", *codes
        )
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]

    def audit(self) -> list[dict[str, Any]]:
        """Every audit entry, as the hub administrator reads them over mutual TLS."""
        result = self.run("audit", "hub-admin", "--json")
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def register(
        self, who: str, issuer: str, region: str, key: Key, folder: Path, *extra: str
    ) -> list[str]:
        """A ``register-issuer`` command line for a Hangzhou-style issuer with its own profile."""
        return self.operator(
            "register-issuer",
            who,
            *("--id", issuer, "--region", region, "--name", f"{issuer} 健康码"),
            *("--profile", str(profile(folder, issuer)), "--keys", str(key.jwks)),
            *("--signing-key", str(key.pem)),
            *extra,
        )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A TLS gateway whose hub administrator was bootstrapped offline, and who then created
    region 330100 and pinned its operator hangzhou-ops, all through the CLI (the PKI, which
    ``huren pki init`` makes as tested below, is made in-process to save a start-up)."""
    root = tmp_path_factory.mktemp("hub")
    folder, state = root / "pki", root / "state"
    create_development_pki(folder)
    init_state(state)
    bootstrap = huren(
        *("registry", "create-operator", "--state-dir", str(state)),
        *("--name", "hub-admin", "--cert", str(folder / "operators" / "hub-admin.pem")),
    )
    assert bootstrap.returncode == 0, bootstrap.stderr
    assert bootstrap.stdout == "pinned hub-admin as hub administrator; audit entry 2\n"
    serve = ["serve", "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"]
    with running(*serve, "--state-dir", str(state), "--tls-dir", str(folder)) as line:
        match = re.fullmatch(
            r"huren gateway listening on (127\.0\.0\.1:\d+) \(trust version (\d+), 0 issuers; "
            r"registry on (127\.0\.0\.1:\d+)\)\n",
            line,
        )
        assert match, line
        hub = Hub(folder, state, match[1], match[3])
        version, seq = change(
            hub.run("create-region", "hub-admin", "--region", "330100", "--name", "杭州市"),
            "create-region 330100: 杭州市",
        )
        assert seq == 3  # after the registry's creation and the bootstrap
        assert version > int(match[2])
        _, seq = change(
            hub.run(
                "create-operator",
                "hub-admin",
                *("--name", "hangzhou-ops", "--region", "330100"),
                *("--operator-cert", str(folder / "operators" / "hangzhou-ops.pem")),
            ),
            "create-operator hangzhou-ops: operator of 330100, key ",
        )
        assert seq == 4
        yield hub


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


# ------------------------------------------------------------------ huren pki


def test_pki_init_makes_a_ca_the_gateway_and_every_demo_operator(tmp_path):
    folder = tmp_path / "pki"
    made = huren("pki", "init", str(folder))
    assert made.returncode == 0, made.stderr
    assert f"development PKI in {folder}: ca.pem, gateway.pem" in made.stdout
    assert "hub administrator: operators/hub-admin.pem" in made.stdout
    for name, region in DEMO_OPERATORS.items():
        assert f"{name} ({region})" in made.stdout
    expected = {"ca.pem", "ca.key", "gateway.pem", "gateway.key"}
    for name in ("hub-admin", *DEMO_OPERATORS):
        expected |= {f"operators/{name}.pem", f"operators/{name}.key"}
    before = _files(folder)
    assert set(before) == expected
    keys = [folder / name for name in expected if name.endswith(".key")]
    assert len(keys) == 10
    assert all(_private(key) for key in keys)
    # Each operator's certificate names the identity the registry will pin.
    admin = pki.peer_identity(before["operators/hub-admin.pem"])
    assert (admin.name, admin.region) == ("hub-admin", None)
    for name, region in DEMO_OPERATORS.items():
        peer = pki.peer_identity(before[f"operators/{name}.pem"])
        assert (peer.name, peer.region) == (name, region)

    again = huren("pki", "init", str(folder))
    assert (again.returncode, again.stdout) == (2, "")
    assert (
        again.stderr
        == f"huren: ERR_IDENTIFIER: {folder} already holds a CA; use `huren pki issue`\n"
    )
    assert _files(folder) == before  # nothing was overwritten


def test_pki_init_names_every_host_the_gateway_certificate_holds(tmp_path):
    folder = tmp_path / "pki"
    made = huren("pki", "init", str(folder), "--host", "hub.example", "--host", "10.0.0.5")
    assert made.returncode == 0, made.stderr
    names = "localhost, 127.0.0.1, hub.example, 10.0.0.5"
    assert f"development PKI in {folder}: ca.pem, gateway.pem ({names})" in made.stdout
    certificate = x509.load_pem_x509_certificate((folder / "gateway.pem").read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    held = [*san.get_values_for_type(x509.DNSName)]
    held += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    assert sorted(held) == sorted(names.split(", "))


def test_pki_issue_adds_one_operator_signed_by_the_same_ca(tmp_path):
    folder, empty = tmp_path / "pki", tmp_path / "empty"
    create_development_pki(folder)
    ca = (folder / "ca.pem").read_bytes()
    operator, admin, no_ca = huren_all(
        ("pki", "issue", str(folder), "--name", "yuhang-ops", "--region", "330110"),
        ("pki", "issue", str(folder), "--name", "deputy-admin"),
        ("pki", "issue", str(empty), "--name", "yuhang-ops", "--region", "330110"),
    )
    # Names may hold dots: the files keep the whole name.
    dotted = huren("pki", "issue", str(folder), "--name", "yuhang.ops.2", "--region", "330110")
    assert dotted.returncode == 0, dotted.stderr
    assert pki.peer_identity((folder / "operators" / "yuhang.ops.2.pem").read_bytes()).name == (
        "yuhang.ops.2"
    )
    # Issuing again under a taken name would lock out the operator whose key is pinned.
    pinned = (folder / "operators" / "hangzhou-ops.key").read_bytes()
    again = huren("pki", "issue", str(folder), "--name", "hangzhou-ops", "--region", "330100")
    assert again.returncode == 2
    assert "operators/hangzhou-ops already exists" in again.stderr
    assert (folder / "operators" / "hangzhou-ops.key").read_bytes() == pinned
    assert no_ca.returncode == 2
    assert no_ca.stderr == f"huren: ERR_IDENTIFIER: no CA in {empty}: run `huren pki init` first\n"
    assert operator.returncode == 0, operator.stderr
    assert operator.stdout == f"operator of 330110 yuhang-ops: {folder}/operators/yuhang-ops.pem\n"
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout == f"hub administrator deputy-admin: {folder}/operators/deputy-admin.pem\n"
    for name, region in (("yuhang-ops", "330110"), ("deputy-admin", None)):
        peer = pki.peer_identity((folder / "operators" / f"{name}.pem").read_bytes())
        assert (peer.name, peer.region) == (name, region)
        assert _private(folder / "operators" / f"{name}.key")
    assert (folder / "ca.pem").read_bytes() == ca


def test_pki_issue_refuses_a_bad_region_or_name_in_one_line(tmp_path):
    folder = tmp_path / "pki"
    create_development_pki(folder)
    bad_region, bad_name = huren_all(
        ("pki", "issue", str(folder), "--name", "x-ops", "--region", "33011x"),
        ("pki", "issue", str(folder), "--name", "Bad Name", "--region", "330110"),
    )
    for result in (bad_region, bad_name):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("huren: ")


# ------------------------------------------------------------------ the operator flow


def test_an_issuer_lives_its_life_through_the_operator_cli(hub, tmp_path):
    first, second = Key.make(tmp_path / "k1"), Key.make(tmp_path / "k2")
    registered = huren(
        *hub.operator(
            "register-issuer",
            "hangzhou-ops",
            *("--id", "hangzhou", "--region", "330100", "--name", "杭州健康码"),
            *("--profile", str(PROFILE), "--keys", str(first.jwks)),
            *("--signing-key", str(first.pem)),
        )
    )
    change(
        registered,
        f"register-issuer hangzhou: region 330100, profile hangzhou@1, keys {first.kid} ",
    )

    # A code signed with the registered key verifies through the gateway's TLS port.
    code = first.code()
    listed, shown, described, verified = huren_all(
        hub.operator("list-issuers", "hangzhou-ops", "--region", "330100"),
        hub.operator("get-issuer", "hangzhou-ops", "--issuer", "hangzhou", "--json"),
        hub.operator("get-issuer", "hangzhou-ops", "--issuer", "hangzhou"),
        ("verify", "--gateway", hub.address, "--pki", str(hub.pki), code),
    )
    # Without --json, get-issuer speaks to people (issue 11, 10: it printed JSON regardless).
    assert described.returncode == 0, described.stderr
    assert described.stdout.splitlines()[0] == (
        "issuer hangzhou  杭州健康码  region 330100  profile hangzhou@1 (versions 1)"
    )
    assert re.search(
        rf"^  key {first.kid}  ES256  active  spki [0-9a-f]{{16}}$", described.stdout, re.M
    )
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        rf"^  hangzhou +330100 杭州健康码 hangzhou@1  keys: {first.kid} \(ES256, active\)$",
        listed.stdout,
        re.MULTILINE,
    ), listed.stdout
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert (record["issuer_id"], record["region"], record["profile_version"]) == (
        "hangzhou",
        "330100",
        1,
    )
    assert [(k["kid"], k["status"]) for k in record["keys"]] == [(first.kid, "active")]
    assert [p["version"] for p in record["profiles"]] == [1]
    assert record["profiles"][0]["profile_toml"] == PROFILE.read_text("utf-8")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("GREEN  VALID ")
    assert f"kid={first.kid} profile=hangzhou@1" in verified.stdout

    change(
        hub.run(
            "add-key",
            "hangzhou-ops",
            *("--issuer", "hangzhou", "--keys", str(second.jwks)),
            *("--signing-key", str(second.pem)),
        ),
        f"add-key hangzhou/{second.kid}: ES256 key {second.kid} ",
    )
    change(
        hub.run(
            "revoke-key",
            "hangzhou-ops",
            *("--issuer", "hangzhou", "--kid", first.kid, "--reason", "key leaked"),
        ),
        f"revoke-key hangzhou/{first.kid}: revoked: key leaked ",
    )
    # The same gateway process, not restarted, now refuses the first key's codes at once.
    status, verdicts = hub.verify(code, second.code())
    assert status == 1
    assert [(v["status"], v["reason"], v["kid"]) for v in verdicts] == [
        ("REJECTED", "ERR_KEY_REVOKED", first.kid),
        ("VALID", "OK", second.kid),
    ]

    # Retiring refuses codes issued after the given time and keeps the earlier ones.
    now = system_clock()
    retire_at = now - timedelta(hours=1)
    change(
        hub.run(
            "retire-key",
            "hangzhou-ops",
            *("--issuer", "hangzhou", "--kid", second.kid, "--at", retire_at.isoformat()),
        ),
        f"retire-key hangzhou/{second.kid}: codes issued after {retire_at.isoformat()} "
        "are refused ",
    )
    before = second.code(now - timedelta(hours=2))
    verified, again = huren_all(
        (
            "verify",
            "--gateway",
            hub.address,
            "--pki",
            str(hub.pki),
            "--json",
            second.code(now),
            before,
        ),
        hub.operator("retire-key", "hangzhou-ops", "--issuer", "hangzhou", "--kid", first.kid),
    )
    assert verified.returncode == 1, verified.stderr
    verdicts = [json.loads(line) for line in verified.stdout.splitlines()]
    assert [(v["status"], v["reason"]) for v in verdicts] == [
        ("REJECTED", "ERR_KEY_NOT_VALID"),
        ("VALID", "OK"),
    ]
    # A revoked key stays revoked: the refusal names its reason code.
    refused(again, "FAILED_PRECONDITION", f"ERR_REVOKED_KID: key {first.kid} is already revoked")

    change(
        hub.run(
            "update-profile",
            "hangzhou-ops",
            *("--issuer", "hangzhou", "--profile", str(profile(tmp_path, version=2))),
        ),
        "update-profile hangzhou: profile hangzhou@2 (",
    )
    shown, verified, audit, text = huren_all(
        hub.operator("get-issuer", "hangzhou-ops", "--issuer", "hangzhou", "--json"),
        ("verify", "--gateway", hub.address, "--pki", str(hub.pki), "--json", before),
        hub.operator("audit", "hub-admin", "--json"),
        hub.operator("audit", "hangzhou-ops"),
    )
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 1
    record = json.loads(shown.stdout)
    assert record["profile_version"] == 2
    assert [p["version"] for p in record["profiles"]] == [1, 2]
    assert "\nversion = 2\n" in record["profiles"][1]["profile_toml"]
    assert {k["kid"]: k["status"] for k in record["keys"]} == {
        first.kid: "revoked",
        second.kid: "retired",
    }
    assert verified.returncode == 0, verified.stderr
    verdict = json.loads(verified.stdout)
    assert (verdict["colour"], verdict["profile"], verdict["profile_version"]) == (
        "GREEN",
        "hangzhou",
        2,
    )

    # The audit log names who did what; the hub's own set-up came first.
    assert audit.returncode == 0, audit.stderr
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    head = [(int(e["seq"]), e["actor"], e["action"], e["target"]) for e in entries[:4]]
    assert head == [
        (1, LOCAL_ACTOR, "initialise", "registry"),
        (2, LOCAL_ACTOR, "create-operator", "hub-admin"),
        (3, "admin:hub-admin", "create-region", "330100"),
        (4, "admin:hub-admin", "create-operator", "hangzhou-ops"),
    ]
    mine = [
        (e["actor"], e["action"], e["target"], e["outcome"])
        for e in entries
        if e["target"] == "hangzhou" or e["target"].startswith("hangzhou/")
    ]
    assert mine == [
        (HANGZHOU_OPS, "register-issuer", "hangzhou", "ok"),
        (HANGZHOU_OPS, "add-key", f"hangzhou/{second.kid}", "ok"),
        (HANGZHOU_OPS, "revoke-key", f"hangzhou/{first.kid}", "ok"),
        (HANGZHOU_OPS, "retire-key", f"hangzhou/{second.kid}", "ok"),
        (HANGZHOU_OPS, "retire-key", f"hangzhou/{first.kid}", "refused"),
        (HANGZHOU_OPS, "update-profile", "hangzhou", "ok"),
    ]
    # The human listing, as a regional operator reads it.
    assert text.returncode == 0, text.stderr
    assert re.search(
        r"^    3 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ok      admin:hub-admin create-region 330100: 杭州市$",
        text.stdout,
        re.MULTILINE,
    ), text.stdout
    assert f"ok      {HANGZHOU_OPS} revoke-key hangzhou/{first.kid}: revoked: key leaked" in (
        text.stdout
    )


# ------------------------------------------------------------------ refusals


def test_operators_are_refused_what_they_may_not_do(hub, tmp_path):
    key, other = Key.make(tmp_path / "key"), Key.make(tmp_path / "other")
    beijing = hub.register("hangzhou-ops", "beijing-hc", "110000", key, tmp_path)
    # Offering a key with the private key of another: the CLI cannot prove possession.
    wrong = hub.operator(
        "register-issuer",
        "hangzhou-ops",
        *("--id", "wrong-pop", "--region", "330100", "--name", "x"),
        *("--profile", str(profile(tmp_path, "wrong-pop")), "--keys", str(key.jwks)),
        *("--signing-key", str(other.pem)),
    )
    results = huren_all(
        beijing,
        hub.operator("create-region", "hangzhou-ops", "--region", "110000", "--name", "北京市"),
        hub.operator(
            *("create-region", "hangzhou-ops", "--json"),
            *("--region", "110000", "--name", "北京市"),
        ),
        hub.register("hub-admin", "admin-hc", "330100", key, tmp_path),
        # A certificate from the right CA whose key the registry does not pin.
        hub.operator("create-region", "beijing-ops", "--region", "110000", "--name", "北京市"),
        wrong,
        hub.operator("get-issuer", "hangzhou-ops", "--issuer", "wrong-pop"),
    )
    other_region = "an operator of 330100 cannot act on issuers of 110000"
    admin_only = "only the hub administrator creates regions and operators and reserves names"
    no_issuers = "the hub administrator does not change issuers; their region's operator does"
    # --json changes successful answers only: a refusal is the same line on stderr.
    elsewhere, admin, admin_json, not_issuers, unpinned, no_proof, not_found = results
    refused(elsewhere, "PERMISSION_DENIED", other_region)
    refused(admin, "PERMISSION_DENIED", admin_only)
    refused(admin_json, "PERMISSION_DENIED", admin_only)
    refused(not_issuers, "PERMISSION_DENIED", no_issuers)
    refused(unpinned, "UNAUTHENTICATED", "the certificate's key is not a registered operator's")
    refused(
        no_proof,
        "INVALID_ARGUMENT",
        f"ERR_POP: no proof of possession for key '{key.kid}': whoever registers a key must "
        "sign with its private key (--signing-key)",
    )
    refused(not_found, "NOT_FOUND", "issuer 'wrong-pop' is not registered")

    # Denials and refusals are audited with who asked; the unauthenticated call is not.
    entries = hub.audit()
    denied = [
        (e["actor"], e["action"], e["target"], e["detail"])
        for e in entries
        if e["outcome"] == "denied" and e["target"] in ("beijing-hc", "110000", "admin-hc")
    ]
    assert sorted(denied) == sorted(
        [
            (HANGZHOU_OPS, "register-issuer", "beijing-hc", other_region),
            (HANGZHOU_OPS, "create-region", "110000", admin_only),
            (HANGZHOU_OPS, "create-region", "110000", admin_only),
            ("admin:hub-admin", "register-issuer", "admin-hc", no_issuers),
        ]
    )
    assert not [e for e in entries if "beijing-ops" in e["actor"]]
    unproven = [(e["outcome"], e["detail"][:8]) for e in entries if e["target"] == "wrong-pop"]
    assert unproven == [("refused", "ERR_POP:")]


# ------------------------------------------------------------------ idempotence


def test_a_retried_request_id_answers_the_first_result(hub, tmp_path):
    key = Key.make(tmp_path / "key")
    region = hub.operator(
        *("create-region", "hub-admin", "--region", "320000", "--name", "江苏省"),
        *("--request-id", "shared-id"),
    )
    first, registered = huren_all(
        region, hub.register("hangzhou-ops", "idem-hc", "330100", key, tmp_path)
    )
    version, seq = change(first, "create-region 320000: 江苏省 ")
    change(registered, "register-issuer idem-hc: ")

    # Retries, even at the same time as each other, answer what the first call did. Request ids
    # belong to their operator: hangzhou-ops may use the administrator's.
    revoke = hub.operator(
        *("revoke-key", "hangzhou-ops", "--issuer", "idem-hc", "--kid", key.kid),
        *("--reason", "rotated", "--request-id", "shared-id"),
    )
    update = hub.operator(
        *("update-profile", "hangzhou-ops", "--issuer", "idem-hc"),
        *("--profile", str(profile(tmp_path, "idem-hc", 2)), "--request-id", "profile-2"),
    )
    again, as_json, revoked, revoked_again, updated, updated_again = huren_all(
        region, [*region, "--json"], revoke, revoke, update, update
    )
    assert again.stdout == first.stdout
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert (int(answer["trust_version"]), int(answer["audit"]["seq"])) == (version, seq)
    assert answer["audit"]["actor"] == "admin:hub-admin"
    change(revoked, f"revoke-key idem-hc/{key.kid}: revoked: rotated ")
    assert revoked_again.stdout == revoked.stdout
    change(updated, "update-profile idem-hc: profile idem-hc@2 (")
    assert updated_again.stdout == updated.stdout

    # The same id for other content is refused, and changes nothing.
    conflict = "request id 'shared-id' was used for a different request"
    other_region, other_reason, audit = huren_all(
        [*region[:-6], "--region", "320000", "--name", "苏", "--request-id", "shared-id"],
        [*revoke[:-4], "--reason", "other", "--request-id", "shared-id"],
        hub.operator("audit", "hub-admin", "--json"),
    )
    refused(other_region, "ALREADY_EXISTS", conflict)
    refused(other_reason, "ALREADY_EXISTS", conflict)
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [e["outcome"] for e in entries if e["target"] == "320000"] == ["ok"]
    assert sorted(e["action"] for e in entries if e["target"].startswith("idem-hc")) == [
        "register-issuer",
        "revoke-key",
        "update-profile",
    ]


def test_a_retried_registration_answers_the_first_result(hub, tmp_path):
    key = Key.make(tmp_path / "key")
    register = hub.register("hangzhou-ops", "retry-hc", "330100", key, tmp_path)
    first = huren(*register, "--request-id", "register-retry-hc")
    change(first, "register-issuer retry-hc: ")
    again = huren(*register, "--request-id", "register-retry-hc")
    assert (again.returncode, again.stdout) == (0, first.stdout), again.stderr


def test_keys_arrive_as_pem_and_as_x509_certificates(hub, tmp_path):
    """A region that keeps its public keys as a PEM file or an X.509 certificate registers them
    with --kid; the certificate's validity becomes the key's, and codes verify with both."""
    holder = Key.make(tmp_path / "first")
    change(
        huren(*hub.register("hangzhou-ops", "pem-hc", "330100", holder, tmp_path)),
        "register-issuer pem-hc: ",
    )
    pem_key, x509_key = Key.make(tmp_path / "pem"), Key.make(tmp_path / "x509")
    public_pem = tmp_path / "public.pem"
    public_pem.write_text(pem_key.signing.key.public_key().pem())
    raw = serialization.load_pem_private_key(x509_key.pem.read_bytes(), None)
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    certificate = pki.self_signed(
        raw,
        "pem-hc signing 2026",
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=30),
    )
    cert_file = tmp_path / "signing.crt"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    for kid, keys, signing in (
        ("pem-1", public_pem, pem_key.pem),
        ("x509-1", cert_file, x509_key.pem),
    ):
        change(
            hub.run(
                "add-key",
                "hangzhou-ops",
                *("--issuer", "pem-hc", "--keys", str(keys), "--kid", kid),
                *("--signing-key", str(signing)),
            ),
            f"add-key pem-hc/{kid}: ES256 key {kid} ",
        )
    shown = hub.run("get-issuer", "hangzhou-ops", "--issuer", "pem-hc", "--json")
    assert shown.returncode == 0, shown.stderr
    keys = {k["kid"]: k for k in json.loads(shown.stdout)["keys"]}
    assert set(keys) == {holder.kid, "pem-1", "x509-1"}
    assert keys["x509-1"]["not_after"].startswith(f"{(now + timedelta(days=30)):%Y-%m-%d}")
    assert keys["pem-1"].get("not_after") in (None, "")
    # pem-hc writes Hangzhou's format, naming itself in "iss": one code per new key.
    issued = int(now.timestamp())
    codes = [
        jws.sign(
            {"alg": "ES256", "kid": kid, "typ": "JWT"},
            strictjson.dumps(
                {
                    "iss": "pem-hc",
                    "iat": issued,
                    "exp": issued + 3600,
                    "hc": "绿码",
                    "idn": resident_id(),
                }
            ),
            signing.signing.key,
        )
        for kid, signing in (("pem-1", pem_key), ("x509-1", x509_key))
    ]
    status, verdicts = hub.verify(*codes)
    assert status == 0, verdicts
    assert [(v["colour"], v["issuer"], v["kid"]) for v in verdicts] == [
        ("GREEN", "pem-hc", "pem-1"),
        ("GREEN", "pem-hc", "x509-1"),
    ]


# ------------------------------------------------------------------ the signed trust list


def test_the_trust_list_verifies_offline_and_tampering_shows(hub, tmp_path):
    signed, public = tmp_path / "trust.jws", tmp_path / "public.jws"
    fetched, anonymous = huren_all(
        hub.operator("trust-list", "hangzhou-ops", "--out", str(signed)),
        # Reading the trust list needs no client certificate, on the verification port.
        ["operator", "trust-list", "--pki", str(hub.pki), "--gateway", hub.address],
    )
    assert fetched.returncode == 0, fetched.stderr
    match = re.fullmatch(
        rf"trust list version (\d+) written to {re.escape(str(signed))}\n", fetched.stdout
    )
    assert match, fetched.stdout
    version = int(match[1])
    assert anonymous.returncode == 0, anonymous.stderr
    public.write_text(anonymous.stdout)

    jws = signed.read_text().strip()
    header, payload, signature = jws.split(".")
    position = len(payload) // 2
    flipped = "B" if payload[position] == "A" else "A"
    tampered = tmp_path / "tampered.jws"
    tampered.write_text(
        f"{header}.{payload[:position]}{flipped}{payload[position + 1 :]}.{signature}\n"
    )
    key = str(hub.state / "trustlist-key.jwk")
    good, other, bad = huren_all(
        ("trustlist", "verify", str(signed), "--key", key),
        ("trustlist", "verify", str(public), "--key", key),
        ("trustlist", "verify", str(tampered), "--key", key),
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"trust list verifies: version {version}, issued ")
    assert other.returncode == 0, other.stderr
    assert other.stdout.startswith("trust list verifies: version ")
    assert bad.returncode == 1, bad.stderr
    assert (
        bad.stdout
        == "trust list does NOT verify: trust list refused: the signature does not verify\n"
    )


# ------------------------------------------------------------------ the audit chain


def _copy(database: Path, to: Path, *statements: str) -> Path:
    """A consistent copy of a live registry file (SQLite's backup), then ``statements`` on it."""
    with (
        contextlib.closing(sqlite3.connect(database)) as source,
        contextlib.closing(sqlite3.connect(to)) as target,
    ):
        source.backup(target)
        with target:
            for statement in statements:
                target.execute(statement)
    return to


def test_audit_verify_names_the_first_broken_entry(hub, tmp_path):
    # The last entry is a change, whose state digest the registry must still match.
    change(
        hub.run("create-region", "hub-admin", "--region", "440000", "--name", "广东省"),
        "create-region 440000: 广东省 ",
    )
    database = hub.state / "registry.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        (last,) = db.execute("SELECT MAX(seq) FROM audit").fetchone()
    copies = {
        "detail": _copy(
            database, tmp_path / "detail.db", "UPDATE audit SET detail = 'nothing' WHERE seq = 3"
        ),
        "last": _copy(database, tmp_path / "last.db", f"DELETE FROM audit WHERE seq = {last}"),
        "middle": _copy(database, tmp_path / "middle.db", "DELETE FROM audit WHERE seq = 2"),
        "swap": _copy(
            database,
            tmp_path / "swap.db",
            "UPDATE audit SET seq = -2 WHERE seq = 2",
            "UPDATE audit SET seq = 2 WHERE seq = 3",
            "UPDATE audit SET seq = 3 WHERE seq = -2",
        ),
        "state": _copy(
            database,
            tmp_path / "state.db",
            "UPDATE regions SET name = '杭州' WHERE code = '330100'",
        ),
    }
    results = huren_all(
        ("audit", "verify", "--state-dir", str(hub.state)),
        *[("audit", "verify", "--db", str(path)) for path in copies.values()],
        ("audit", "verify", "--db", str(tmp_path / "missing.db")),
    )
    intact, *broken, missing = results
    # The original, checked after the copies were made and tampered with, is intact.
    assert intact.returncode == 0, intact.stderr
    assert re.fullmatch(
        rf"audit chain intact: {last} entries, head [0-9a-f]{{16}}\n", intact.stdout
    )
    state = (
        "the registry's state is not the one its last audit entry vouches for (changed outside it)"
    )
    expected = {
        "detail": "audit chain BROKEN at entry 3: its content does not match its hash",
        "last": f"audit chain BROKEN at entry {last}: entry {last} was removed from the end "
        f"(the registry recorded entry {last} as the head)",
        "middle": "audit chain BROKEN at entry 3: sequence number 3, expected 2",
        "swap": "audit chain BROKEN at entry 2: does not link to the entry before it",
        "state": f"audit chain BROKEN at entry {last}: {state}",
    }
    for name, result in zip(copies, broken, strict=True):
        assert (result.returncode, result.stdout) == (1, expected[name] + "\n"), name
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"huren: no registry at {tmp_path / 'missing.db'}: ")


def test_audit_verify_notices_a_removed_trailing_denial(hub, tmp_path):
    refused(
        hub.run("create-region", "hangzhou-ops", "--region", "120000", "--name", "天津市"),
        "PERMISSION_DENIED",
        "only the hub administrator creates regions and operators and reserves names",
    )
    copy = _copy(
        hub.state / "registry.db",
        tmp_path / "copy.db",
        "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
    )
    result = huren("audit", "verify", "--db", str(copy))
    assert result.returncode == 1, result.stdout


def test_audit_verify_refuses_a_state_dir_without_a_registry(tmp_path):
    result = huren("audit", "verify", "--state-dir", str(tmp_path / "typo"))
    assert result.returncode == 2, result.stdout
    assert not (tmp_path / "typo").exists()


def test_audit_log_prints_one_json_object_per_entry_in_order(hub):
    everything, page, text, remote = huren_all(
        ("audit", "log", "--state-dir", str(hub.state), "--json"),
        ("audit", "log", "--state-dir", str(hub.state), "--json", "--after", "1", "--limit", "2"),
        ("audit", "log", "--state-dir", str(hub.state), "--limit", "3"),
        hub.operator("audit", "hub-admin", "--json", "--limit", "3"),
    )
    assert everything.returncode == 0, everything.stderr
    entries = [json.loads(line) for line in everything.stdout.splitlines()]
    assert len(entries) >= 3
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    fields = {
        "seq",
        "at",
        "actor",
        "action",
        "target",
        "outcome",
        "detail",
        "state_digest",
        "entry_hash",
    }
    assert all(set(e) == fields for e in entries)
    assert all(datetime.fromisoformat(e["at"]).utcoffset() == timedelta(0) for e in entries)
    assert [(e["actor"], e["action"], e["target"], e["outcome"]) for e in entries[:3]] == [
        (LOCAL_ACTOR, "initialise", "registry", "ok"),
        (LOCAL_ACTOR, "create-operator", "hub-admin", "ok"),
        ("admin:hub-admin", "create-region", "330100", "ok"),
    ]
    # The file read locally and the gateway's answer over mutual TLS are the same chain.
    assert remote.returncode == 0, remote.stderr
    hashes = [json.loads(line)["entry_hash"] for line in remote.stdout.splitlines()]
    assert hashes == [e["entry_hash"] for e in entries[:3]]
    assert page.returncode == 0, page.stderr
    assert [json.loads(line)["seq"] for line in page.stdout.splitlines()] == [2, 3]

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"    2 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ok      "
        rf"{re.escape(LOCAL_ACTOR)} create-operator hub-admin: hub administrator, key [0-9a-f]{{16}}",
        lines[1],
    ), lines[1]
    assert lines[2].endswith(" ok      admin:hub-admin create-region 330100: 杭州市")


# ------------------------------------------------------------------ a region registers itself


def test_a_running_region_registers_itself_with_its_operator_certificate(hub, tmp_path):
    change(
        hub.run("create-region", "hub-admin", "--region", "310000", "--name", "上海市"),
        "create-region 310000: 上海市 ",
    )
    change(
        hub.run(
            *("create-operator", "hub-admin", "--name", "shanghai-ops", "--region", "310000"),
            *("--operator-cert", str(hub.pki / "operators" / "shanghai-ops.pem")),
        ),
        "create-operator shanghai-ops: operator of 310000, ",
    )
    state = tmp_path / "shanghai"
    with running("region", "serve", "shanghai", "--port", "0", "--state-dir", str(state)) as line:
        match = re.fullmatch(
            r"region shanghai \(310000\) listening on (http://127\.0\.0\.1:\d+) kid=(\S+)\n", line
        )
        assert match, line
        url, kid = match[1], match[2]
        register = [
            *("region", "register", "shanghai", "--url", url, "--state-dir", str(state)),
            *("--gateway", hub.registry, "--pki", str(hub.pki)),
        ]
        wrong, done = huren_all(
            [*register, "--as", "hangzhou-ops"], [*register, "--as", "shanghai-ops"]
        )
        refused(wrong, "PERMISSION_DENIED", "an operator of 330100 cannot act on issuers of 310000")
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(
            rf"registered shanghai: region 310000, profile shanghai@1, keys {re.escape(kid)} "
            r"\(trust version \d+, audit entry \d+\)\n",
            done.stdout,
        ), done.stdout
        twice, listed = huren_all(
            [*register, "--as", "shanghai-ops"],
            hub.operator("list-issuers", "shanghai-ops", "--region", "310000", "--json"),
        )
        refused(twice, "INVALID_ARGUMENT", "ERR_IDENTIFIER: issuer shanghai is already registered")
    assert listed.returncode == 0, listed.stderr
    (issuer,) = json.loads(listed.stdout)["issuers"]
    assert (issuer["issuer_id"], issuer["name"]) == ("shanghai", "随申码")
    assert [(k["kid"], k["status"]) for k in issuer["keys"]] == [(kid, "active")]


# ------------------------------------------------------------------ a plaintext gateway


def test_an_insecure_gateway_serves_reading_calls_and_refuses_every_change(tmp_path):
    key = Key.make(tmp_path / "key")
    state = tmp_path / "state"
    init_state(state, ("330100", "杭州"))
    added = huren(
        *("registry", "add-issuer", "--state-dir", str(state)),
        *("--id", "hangzhou", "--region", "330100", "--name", "杭州健康码"),
        *("--profile", str(PROFILE), "--keys", str(key.jwks), "--signing-key", str(key.pem)),
    )
    assert added.returncode == 0, added.stderr
    serve = ["serve", "--insecure", "--listen", "127.0.0.1:0", "--state-dir", str(state)]
    with running(*serve) as line:
        match = re.fullmatch(
            r"huren gateway listening on (127\.0\.0\.1:\d+) \(trust version \d+, 1 issuers; "
            r"registry changes disabled \(--insecure\)\)\n",
            line,
        )
        assert match, line
        plain = ["--insecure", "--gateway", match[1]]
        trust = tmp_path / "trust.jws"
        results = huren_all(
            ("operator", "create-region", *plain, "--region", "310000", "--name", "上海市"),
            ("operator", "revoke-key", *plain, "--issuer", "hangzhou", "--kid", key.kid),
            ("operator", "list-issuers", *plain),
            ("operator", "trust-list", *plain, "--out", str(trust)),
            ("operator", "audit", *plain),
            ("verify", *plain, "--json", key.code()),
        )
        create, revoke, listed, fetched, audit, verified = results
    disabled = "changes are disabled: the gateway runs without TLS (--insecure)"
    refused(create, "PERMISSION_DENIED", disabled)
    refused(revoke, "PERMISSION_DENIED", disabled)
    assert listed.returncode == 0, listed.stderr
    assert f"  hangzhou     330100 杭州健康码 hangzhou@1  keys: {key.kid} (ES256, active)" in (
        listed.stdout
    )
    assert fetched.returncode == 0, fetched.stderr
    # The audit log is for registered operators, who need the mutual-TLS port.
    refused(
        audit, "UNAUTHENTICATED", "this call needs an operator's client certificate (mTLS port)"
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["colour"] == "GREEN"

    checked, log = huren_all(
        ("trustlist", "verify", str(trust), "--key", str(state / "trustlist-key.jwk")),
        ("audit", "log", "--state-dir", str(state), "--json"),
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("trust list verifies: version ")
    assert ", 1 issuers, 1 keys" in checked.stdout
    # Refused before anything was decided: only the offline registration is in the log.
    assert [json.loads(line)["action"] for line in log.stdout.splitlines()] == [
        "initialise",
        "create-region",
        "register-issuer",
    ]
