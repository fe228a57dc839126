"""Issue 11, "Done when": an issuer written only from docs/issuers.md (``issuer.py`` here, which
imports nothing of huren) reproduces the document's test vectors and onboards an eighth region,
Xiamen, whose profile lives only in this folder: its operator registers it through the
documented ``huren operator`` commands over mutual TLS, and a real gateway verifies its codes
and links them to the same traveller's Hangzhou code."""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.conftest import REPO, resident_id
from tests.integration import test_cli_registry as registry_cli
from tests.integration.cli import huren
from tests.integration.independent_issuer import issuer

HERE = Path(__file__).parent
DATA: dict[str, Any] = json.loads((REPO / "docs" / "issuer-vectors.json").read_text("utf-8"))
VECTORS = {v["id"]: v for v in DATA["vectors"]}
NUMBER = DATA["person"]["number"]
REGION = "350200"

# A TLS gateway whose hub administrator created region 330100 and its operator hangzhou-ops
# through the CLI (the fixture of the registry commands' tests, one gateway for this module).
hub = registry_cli.hub


# ------------------------------------------------------------------ independence


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            found.add((node.module or "").split(".")[0])
    return found


def test_the_issuer_imports_only_the_standard_library_and_cryptography():
    imported = _imported(HERE / "issuer.py")
    assert "cryptography" in imported
    outside = {name for name in imported if name not in sys.stdlib_module_names}
    assert outside - {"__future__"} == {"cryptography"}
    assert not imported & {"gateway", "regions", "tests"}


def test_importing_the_issuer_loads_no_huren_module():
    """At run time too: a fresh interpreter that imports only the issuer has no huren module."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import issuer; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'gateway', 'regions', 'tests'}))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(HERE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=HERE,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")


# ------------------------------------------------------------------ the vectors, from the document


def _key(kid: str) -> Any:
    found = next(k for k in DATA["keys"] if k["kid"] == kid)
    key = serialization.load_pem_private_key(found["private_pem"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return key


def test_it_derives_the_vectors_identity_carriers():
    secrets, person = DATA["secrets"], DATA["person"]
    link_key = bytes.fromhex(secrets["link_key_hex"])
    assert issuer.link_hash(link_key, NUMBER).hex() == person["link_hash_hex"]
    pseudonym_key = bytes.fromhex(secrets["pseudonym_key_hex"])
    for issuer_id, sealed in person["pseudonyms_hex"].items():
        assert issuer.seal(pseudonym_key, issuer_id, NUMBER).hex() == sealed


@pytest.mark.parametrize(
    "vector_id",
    [
        "jws-compact-full-number",
        "jws-compact-masked-link",
        "jws-es256-full-number",
        "jws-es384-masked-link",
    ],
)
def test_it_reproduces_the_compact_jws_vectors_byte_for_byte(vector_id):
    vector = VECTORS[vector_id]
    kid = json.loads(vector["header"])["kid"]
    payload = issuer.compact_json(vector["claims"])
    assert payload.hex() == vector["payload_hex"]
    assert issuer.compact_jws(_key(kid), kid, payload) == vector["code"]


def test_it_reproduces_the_numeric_deflate_vector():
    """zlib at level 9 compresses as the vector's compressor did; were it another compressor,
    the inflated payload and a verifying signature would be what to compare (section 9)."""
    vector = VECTORS["jws-numeric-deflate-name-dob"]
    kid = json.loads(vector["header"])["kid"]
    payload = issuer.compact_json(vector["claims"])
    jws = issuer.compact_jws(_key(kid), kid, payload, deflate=True)
    assert jws == vector["compact_jws"]
    assert issuer.numeric("vn:/", jws) == vector["code"]
    body = jws.split(".")[1]
    compressed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert zlib.decompress(compressed, -15).hex() == vector["payload_hex"]


# ------------------------------------------------------------------ an eighth region, onboarded


def _verify(hub: registry_cli.Hub, *codes: str) -> list[dict[str, Any]]:
    returncode, verdicts = hub.verify(*codes)
    assert returncode in (0, 1)
    return verdicts


def _recognise(hub: registry_cli.Hub, *codes: str) -> dict[str, Any]:
    result = huren(
        *("recognise", "--at", REGION, "--gateway", hub.address, "--pki", str(hub.pki)),
        *("--json", *codes),
    )
    assert result.stderr == ""
    decision: dict[str, Any] = json.loads(result.stdout)
    return decision


@pytest.mark.slow
def test_xiamen_onboards_from_the_docs_and_its_codes_verify_and_link(hub, tmp_path):
    # The hub administrator creates the region and its operator (operators.md sections 2 and 4).
    issued = huren("pki", "issue", str(hub.pki), "--name", "xiamen-ops", "--region", REGION)
    assert issued.returncode == 0, issued.stderr
    registry_cli.change(
        hub.run("create-region", "hub-admin", "--region", REGION, "--name", "厦门市"),
        f"create-region {REGION}: 厦门市",
    )
    registry_cli.change(
        hub.run(
            "create-operator",
            "hub-admin",
            *("--name", "xiamen-ops", "--region", REGION),
            *("--operator-cert", str(hub.pki / "operators" / "xiamen-ops.pem")),
        ),
        "create-operator xiamen-ops: operator of 350200",
    )
    # The region gets the linking key out of band, makes its key, checks its profile (5.1-5.2).
    xiamen = issuer.Xiamen.create(tmp_path, issuer.read_link_key(hub.state / "link.key"))
    checked = huren("profile", "check", str(issuer.PROFILE))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("profile xiamen@1: valid")
    # Before anything is registered, the dry run verifies sample codes locally (profiles.md).
    now = datetime.now(UTC) - timedelta(minutes=1)
    codes = {colour: xiamen.mint(NUMBER, colour, now) for colour in issuer.STATES}
    jwks = str(tmp_path / "xiamen-jwks.json")
    dry = huren("profile", "test", str(issuer.PROFILE), "--key", jwks, *codes.values())
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.count("VALID") >= len(codes)
    # Its operator registers it with proof of possession (5.3).
    registry_cli.change(
        hub.run(
            "register-issuer",
            "xiamen-ops",
            *("--id", issuer.ISSUER_ID, "--region", REGION, "--name", "厦门健康码"),
            *("--profile", str(issuer.PROFILE), "--keys", str(tmp_path / "xiamen-jwks.json")),
            *("--signing-key", str(tmp_path / "xiamen-signing-key.pem")),
        ),
        "register-issuer xiamen",
    )

    # A code of each colour verifies through the gateway (5.4).
    verdicts = _verify(hub, *codes.values())
    assert [(v["status"], v["reason"], v["colour"], v["local_state"]) for v in verdicts] == [
        ("VALID", "OK", colour, word) for colour, word in issuer.STATES.items()
    ]
    for verdict in verdicts:
        assert (verdict["issuer"], verdict["region"], verdict["kid"]) == (
            "xiamen",
            REGION,
            "xm-2026-1",
        )
        assert (verdict["profile"], verdict["profile_version"]) == ("xiamen", 1)
        assert verdict["masked_identity"] == NUMBER[:3] + "*" * 13 + NUMBER[-2:]
        assert verdict["issued_at"] == now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert len({v["subject"] for v in verdicts}) == 1

    # The same traveller's Hangzhou code (the full number) has the same subject, so recognising
    # both is a decision, not SUBJECT_MISMATCH: the link hash is the documented one.
    hangzhou_key = registry_cli.Key.make(tmp_path / "hangzhou")
    registry_cli.change(
        hub.run(
            "register-issuer",
            "hangzhou-ops",
            *("--id", "hangzhou", "--region", "330100", "--name", "杭州健康码"),
            *("--profile", str(registry_cli.PROFILE), "--keys", str(hangzhou_key.jwks)),
            *("--signing-key", str(hangzhou_key.pem)),
        ),
        "register-issuer hangzhou",
    )
    hangzhou = hangzhou_key.code()
    assert resident_id() == NUMBER  # the Hangzhou code's holder
    decision = _recognise(hub, codes["GREEN"], hangzhou)
    assert (decision["status"], decision["reason"], decision["colour"]) == (
        "DECIDED",
        "RECOGNISED",
        "GREEN",
    )
    assert decision["subject"] == verdicts[0]["subject"]
    assert [c["verdict"]["region"] for c in decision["codes"]] == [REGION, "330100"]

    # The check can fail: a link hash made with another key links to someone else.
    stranger = issuer.Xiamen(xiamen.key, xiamen.kid, bytes(32)).mint(NUMBER, "GREEN", now)
    assert _verify(hub, stranger)[0]["status"] == "VALID"
    mismatch = _recognise(hub, stranger, hangzhou)
    assert (mismatch["status"], mismatch["reason"]) == ("REFUSED", "SUBJECT_MISMATCH")
