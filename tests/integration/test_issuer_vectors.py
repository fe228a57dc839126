"""docs/issuers.md and docs/issuer-vectors.json cannot drift from the gateway.

``scripts/issuer_vectors.py --check`` must pass (and does fail when a file differs), and every
vector, read from the JSON file alone, is verified again by a real gateway: a registry file in
``tmp_path`` whose issuers are registered through the Registrar with proofs of possession, a
``grpc.aio`` server on 127.0.0.1 port 0, and ``Verify`` calls over the wire. The online vector's
signed answer goes through the same pipeline from the step where the edge hands it over.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.codecs import base64url
from gateway.crypto import Algorithm, PrivateKey
from gateway.hub import initialise, open_hub
from gateway.limits import Limits
from gateway.model import Verdict
from gateway.online import OnlineAnswer, request_body, request_signature
from gateway.registry import OnlineEndpoint
from gateway.registry.admission import KeyOffer, prove
from gateway.registry.authority import Actor, Role
from gateway.registry.commands import CreateRegion, RegisterIssuer
from gateway.report import verdict_json
from gateway.server.app import Gateway, GatewayServer, open_gateway
from gateway.storage.files import StateFiles
from gateway.verify import Question, begin, finish_online
from gateway.wire import verdict_from_pb
from tests.conftest import REPO
from tests.integration.conftest import MutableClock

SCRIPT = REPO / "scripts" / "issuer_vectors.py"
VECTORS_FILE = REPO / "docs" / "issuer-vectors.json"
DATA: dict[str, Any] = json.loads(VECTORS_FILE.read_text("utf-8"))
LOCAL = Actor(Role.LOCAL, "vectors")
BY_TIME = sorted(DATA["vectors"], key=lambda v: v["now"])


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _script(*args: str, script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_checked_in_vectors_are_what_the_script_generates():
    result = _script("--check")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


def test_check_mode_names_a_file_that_differs_and_a_run_repairs_it(tmp_path):
    """In a copy of the script and its files, so the real ones are never touched."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "docs").mkdir()
    script = tmp_path / "scripts" / SCRIPT.name
    shutil.copy(SCRIPT, script)
    for name in ("issuers.md", "issuer-vectors.json"):
        shutil.copy(REPO / "docs" / name, tmp_path / "docs" / name)
    shutil.copytree(REPO / "docs" / "issuer-vectors", tmp_path / "docs" / "issuer-vectors")
    assert _script("--check", script=script).returncode == 0
    vectors = tmp_path / "docs" / "issuer-vectors.json"
    vectors.write_text(vectors.read_text("utf-8").replace("VALID", "VALlD", 1), "utf-8")
    doc = tmp_path / "docs" / "issuers.md"
    first = DATA["vectors"][0]["code"]
    doc.write_text(doc.read_text("utf-8").replace(first, first[:-1], 1), "utf-8")
    stale = _script("--check", script=script)
    assert stale.returncode == 1
    assert stale.stderr.splitlines() == [
        f"{name} is not what scripts/issuer_vectors.py generates: run it and commit the result"
        for name in ("docs/issuer-vectors.json", "docs/issuers.md")
    ]
    assert _script(script=script).returncode == 0
    assert vectors.read_text("utf-8") == VECTORS_FILE.read_text("utf-8")
    assert _script("--check", script=script).returncode == 0


def test_the_document_holds_the_generated_tables_once():
    doc = (REPO / "docs" / "issuers.md").read_text("utf-8")
    assert doc.count("<!-- BEGIN GENERATED") == doc.count("<!-- END GENERATED -->") == 1
    for vector in DATA["vectors"]:
        assert f"`{vector['id']}`" in doc
        assert vector["code"] in doc


def _key(algorithm: str) -> dict[str, Any]:
    found: dict[str, Any] = next(k for k in DATA["keys"] if k["algorithm"] == algorithm)
    return found


def _registration(issuer: dict[str, Any], request_id: str) -> RegisterIssuer:
    """What the vector issuer's operator sends: profile, key (JWK with the registered kid) and
    proof of possession, and the pseudonym key or online credentials."""
    key = _key(issuer["algorithm"])
    algorithm = Algorithm.from_name(key["algorithm"])
    assert algorithm is not None
    private = PrivateKey.from_pem(key["private_pem"].encode(), algorithm)
    jwk = {**key["public_jwk"], "kid": issuer["kid"]}
    offer = KeyOffer(
        kid=issuer["kid"],
        key=json.dumps(jwk).encode(),
        proof=prove(private, issuer["id"], issuer["kid"], request_id),
        algorithm=issuer["algorithm"],
    )
    secrets = DATA["secrets"]
    online = None
    if issuer["online"] is not None:
        online = OnlineEndpoint(
            issuer["online"]["code_prefix"],
            issuer["online"]["verify_url"],
            issuer["online"]["client_id"],
            bytes.fromhex(secrets["online_client_secret_hex"]),
        )
    return RegisterIssuer(
        issuer_id=issuer["id"],
        region=DATA["region"],
        name=f"vectors {issuer['id']}",
        profile_toml=issuer["profile"],
        keys=(offer,),
        online=online,
        pseudonym_key=bytes.fromhex(secrets["pseudonym_key_hex"])
        if issuer["pseudonym_key"]
        else None,
    )


def _vector_hub(directory: Path) -> StateFiles:
    """A state directory whose identity secrets are the vectors' and whose registry holds every
    vector issuer, registered the day before the vectors' "now"."""
    directory.mkdir(mode=0o700)
    secrets = DATA["secrets"]
    for name, value in (("subject.key", "subject_secret_hex"), ("link.key", "link_key_hex")):
        path = directory / name
        path.write_text(secrets[value] + "\n")
        path.chmod(0o600)
    registered = MutableClock(_instant(DATA["now"]) - timedelta(days=1))
    files = initialise(directory, LOCAL, registered)
    with open_hub(directory, clock=registered) as hub:
        hub.registrar.submit(LOCAL, "region", CreateRegion(DATA["region"], "vectors"))
        for issuer in DATA["issuers"]:
            request_id = f"register-{issuer['id']}"
            hub.registrar.submit(LOCAL, request_id, _registration(issuer, request_id))
    return files


@contextlib.asynccontextmanager
async def _served(directory: Path) -> AsyncIterator[tuple[Gateway, MutableClock, str]]:
    """The vectors' registry served on 127.0.0.1 (plaintext: only Verify is called)."""
    files = _vector_hub(directory)
    clock = MutableClock(_instant(DATA["now"]))
    gateway = open_gateway(files.directory, Limits(), clock)
    server = GatewayServer(gateway, "127.0.0.1:0", registry_listen=None)
    port = await server.start()
    try:
        yield gateway, clock, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        gateway.hub.close()


def _facts(verdict: Verdict, names: dict[str, Any]) -> dict[str, Any]:
    """The members ``names`` of the verdict as ``huren verify --json`` prints it."""
    every = verdict_json(verdict)
    return {name: every[name] for name in names}


@pytest.mark.asyncio
async def test_a_real_gateway_gives_every_vector_its_verdict(tmp_path):
    """Over gRPC for every offline code (in the order of their instants: the gateway's clock
    only moves forward); the online vector through the same registry's trust snapshot."""
    checked = []
    async with (
        _served(tmp_path / "state") as (gateway, clock, address),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = verifier_pb2_grpc.VerifierServiceStub(channel)
        for vector in BY_TIME:
            clock.now = _instant(vector["now"])
            if "online" in vector:
                verdict = _online(gateway, vector, clock.now)
            else:
                response = await stub.Verify(pb.VerifyRequest(code=vector["code"]))
                verdict = verdict_from_pb(response.verdict)
            assert _facts(verdict, vector["expected"]) == vector["expected"], vector["id"]
            checked.append(vector["id"])
    assert len(checked) == len(DATA["vectors"]) >= 13


def _online(gateway: Gateway, vector: dict[str, Any], now: datetime) -> Verdict:
    online = vector["online"]
    secret = bytes.fromhex(DATA["secrets"]["online_client_secret_hex"])
    # The hub's question, byte for byte, as its online client sends it.
    body = request_body(online["token"], online["nonce"], now)
    assert body.decode() == online["request_body"]
    assert request_signature(secret, body) == online["request_signature"]
    trust, limits = gateway.service.trust.current, Limits()
    identities = gateway.hub.identities
    question = begin(vector["code"], trust=trust, now=now, limits=limits, identities=identities)
    assert isinstance(question, Question)
    assert question.token == online["token"]
    answer = OnlineAnswer(online["nonce"], text=online["answer"])
    return finish_online(
        question, answer, trust=trust, now=now, limits=limits, identities=identities
    )


@pytest.mark.parametrize("vector", DATA["vectors"], ids=[v["id"] for v in DATA["vectors"]])
def test_each_vector_shows_the_bytes_its_code_is_made_of(vector):
    """The parts a reader compares with are the parts of the code: signing input, signature,
    payload (ES256 vectors: the fixed signature is the one in the code)."""
    signing_input = bytes.fromhex(vector["signing_input_hex"])
    signature = bytes.fromhex(vector["signature_hex"])
    payload = bytes.fromhex(vector["payload_hex"])
    code = vector["code"]
    if "header" in vector and "online" not in vector:
        compact = vector.get("compact_jws", code)
        assert compact == signing_input.decode() + "." + base64url.encode(signature)
        head, body = signing_input.decode().split(".")
        assert base64url.decode(head) == vector["header"].encode()
        if "compact_jws" not in vector:
            assert base64url.decode(body) == payload
    elif "online" in vector:
        answer = vector["online"]["answer"]
        assert answer == signing_input.decode() + "." + base64url.encode(signature)
    elif "protected_hex" in vector:
        message = bytes.fromhex(vector["cose_sign1_hex"])
        assert signature in message
        assert payload in signing_input
        assert bytes.fromhex(vector["protected_hex"]) in signing_input
    else:  # delimited: the signature follows the last delimiter
        assert code in {
            signing_input.decode() + delimiter + base64url.encode(signature) for delimiter in "~|"
        }
    expected_length = {"EdDSA": 64, "ES256": 64, "ES384": 96, "PS256": 256}
    issuer = next(i for i in DATA["issuers"] if i["id"] == vector["issuer"])
    assert len(signature) == expected_length[issuer["algorithm"]]
