"""The Registry service over real mutual TLS on loopback: what regional operators, the hub
administrator and auditors see.

Every hub here runs the real regional issuers (aiohttp), the real gateway (grpc.aio, TLS) and a
real SQLite registry file; operators call it with the certificates of a development PKI.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from gateway import crypto, trustlist, wire
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import registry_pb2_grpc, verifier_pb2_grpc
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway.clients import TlsCredentials, new_request_id
from gateway.crypto import Algorithm, PrivateKey, pki
from gateway.errors import ConfigurationInvalid
from gateway.hub import open_hub
from gateway.model import Colour, ProfileId, Reason, Status, Verdict
from gateway.registry.admission import KeyOffer, offers_from_file, pop_message, prove
from gateway.registry.authority import Actor, Role
from gateway.registry.commands import AddKey, RegisterIssuer
from gateway.server.app import GatewayServer, open_gateway
from gateway.wire import verdict_from_pb
from regions.common.spec import Holder, Secrets
from regions.hangzhou import SPEC as HANGZHOU
from regions.hangzhou import Hangzhou
from tests.conftest import resident_id
from tests.integration.cli import huren
from tests.integration.conftest import GATEWAY_LIMITS, Hub, MutableClock, new_state, running_hub
from tests.integration.rpc import refused, unanswered

pytestmark = pytest.mark.asyncio

HZ = "330100"  # Hangzhou
SH = "310000"  # Shanghai
HOLDER = Holder(resident_id(), "王芳")


@pytest_asyncio.fixture
async def hub(tmp_path: Path, clock: MutableClock) -> AsyncIterator[Hub]:
    """Hangzhou (signed JWS codes) and Shanghai, each registered by its own operator."""
    async with running_hub(tmp_path, clock, names=("hangzhou", "shanghai")) as started:
        yield started


# ------------------------------------------------------------------ helpers


def mint(key: PrivateKey, kid: str, at: datetime, state: str = "绿码") -> str:
    """A Hangzhou code signed by ``key``, exactly as the Hangzhou service writes them."""
    return Hangzhou().issue(HOLDER, state, at, Secrets(key, kid), "test").code


def es256_offer(issuer: str, kid: str, request_id: str) -> tuple[PrivateKey, rpb.KeySubmission]:
    key = PrivateKey.generate(Algorithm.ES256)
    submission = rpb.KeySubmission(
        kid=kid,
        key=json.dumps(key.public_key().jwk()).encode(),
        proof=prove(key, issuer, kid, request_id),
    )
    return key, submission


def hangzhou_key(kid: str, key: PrivateKey | None = None) -> tuple[PrivateKey, rpb.AddKeyRequest]:
    """An AddKey request for Hangzhou (a fresh ES256 key unless given), proven for its own
    fresh request id."""
    key = key or PrivateKey.generate(Algorithm.ES256)
    request_id = new_request_id()
    submission = rpb.KeySubmission(
        kid=kid,
        key=json.dumps(key.public_key().jwk()).encode(),
        proof=prove(key, "hangzhou", kid, request_id),
    )
    return key, rpb.AddKeyRequest(request_id=request_id, issuer_id="hangzhou", key=submission)


async def trust_version(hub: Hub) -> int:
    answer = await hub.registry(None).ListIssuers(rpb.ListIssuersRequest())
    return answer.trust_version


async def audit(hub: Hub) -> list[rpb.AuditEntry]:
    answer = await hub.registry("hub-admin").ListAudit(rpb.ListAuditRequest())
    return list(answer.entries)


def channel_as(
    hub: Hub, certificate: bytes, key: bytes
) -> registry_pb2_grpc.RegistryServiceAsyncStub:
    credentials = TlsCredentials((hub.pki / "ca.pem").read_bytes(), certificate, key)
    channel = grpc.aio.secure_channel(hub.registry_address, credentials.channel())
    hub._channels.append(channel)
    return registry_pb2_grpc.RegistryServiceStub(channel)


def profile_text(version: int = 1) -> str:
    text = HANGZHOU.profile_text()
    assert "\nversion = 1\n" in text
    return text.replace("\nversion = 1\n", f"\nversion = {version}\n", 1)


def spki_pem(public: Any) -> bytes:
    return bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


# ------------------------------------------------------------------ authorisation


async def test_every_mutating_rpc_across_regions_is_denied_audited_and_changes_nothing(
    hub: Hub,
) -> None:
    code = await hub.regions["hangzhou"].issue()
    hz_kid = hub.regions["hangzhou"].kid
    before = await trust_version(hub)
    seen = len(await audit(hub))
    shanghai = hub.registry("shanghai-ops")
    key_id, request_id = "sh-into-hz", new_request_id()
    _, submission = es256_offer("hangzhou", key_id, request_id)
    _, stranger = es256_offer("hz-second", "k1", "r")
    attempts: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        (
            "register-issuer",
            lambda: shanghai.RegisterIssuer(
                rpb.RegisterIssuerRequest(
                    request_id=new_request_id(),
                    issuer_id="hz-second",
                    region=HZ,
                    name="假杭州码",
                    profile_toml=profile_text(),
                    keys=[stranger],
                )
            ),
        ),
        (
            "add-key",
            lambda: shanghai.AddKey(
                rpb.AddKeyRequest(request_id=request_id, issuer_id="hangzhou", key=submission)
            ),
        ),
        (
            "retire-key",
            lambda: shanghai.RetireKey(
                rpb.RetireKeyRequest(request_id=new_request_id(), issuer_id="hangzhou", kid=hz_kid)
            ),
        ),
        (
            "revoke-key",
            lambda: shanghai.RevokeKey(
                rpb.RevokeKeyRequest(request_id=new_request_id(), issuer_id="hangzhou", kid=hz_kid)
            ),
        ),
        (
            "update-profile",
            lambda: shanghai.UpdateProfile(
                rpb.UpdateProfileRequest(
                    request_id=new_request_id(), issuer_id="hangzhou", profile_toml=profile_text(2)
                )
            ),
        ),
    ]
    for _, call in attempts:
        error = await refused(call(), grpc.StatusCode.PERMISSION_DENIED)
        assert f"operator of {SH} cannot act on issuers of {HZ}" in (error.details() or "")

    assert await trust_version(hub) == before
    entries = (await audit(hub))[seen:]
    assert [(e.action, e.outcome, e.actor) for e in entries] == [
        (action, rpb.AUDIT_OUTCOME_DENIED, f"operator:{SH}:shanghai-ops") for action, _ in attempts
    ]
    assert entries[1].target == f"hangzhou/{key_id}"
    verdict = await hub.verify(code)
    assert verdict.colour is Colour.GREEN
    assert verdict.provenance.kid == hz_kid
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hangzhou"))).issuer
    assert [(k.kid, k.status) for k in record.keys] == [(hz_kid, rpb.KEY_STATUS_ACTIVE)]
    assert record.profile_version == 1


async def test_operators_cannot_administer_and_the_administrator_cannot_touch_issuers(
    hub: Hub,
) -> None:
    before = await trust_version(hub)
    operator = hub.registry("hangzhou-ops")
    certificate = (hub.pki / "operators" / "shanghai-ops.pem").read_bytes()
    for call in (
        operator.CreateRegion(
            rpb.CreateRegionRequest(request_id=new_request_id(), region="440100", name="广州")
        ),
        operator.CreateOperator(
            rpb.CreateOperatorRequest(
                request_id=new_request_id(), name="mallory", region=HZ, certificate_pem=certificate
            )
        ),
        operator.RemoveOperator(
            rpb.RemoveOperatorRequest(request_id=new_request_id(), name="shanghai-ops")
        ),
    ):
        error = await refused(call, grpc.StatusCode.PERMISSION_DENIED)
        assert "only the hub administrator" in (error.details() or "")
    admin = hub.registry("hub-admin")
    error = await refused(
        admin.RevokeKey(
            rpb.RevokeKeyRequest(
                request_id=new_request_id(), issuer_id="hangzhou", kid=hub.regions["hangzhou"].kid
            )
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "does not change issuers" in (error.details() or "")
    assert await trust_version(hub) == before
    outcomes = [(e.actor, e.outcome) for e in (await audit(hub))[-4:]]
    assert outcomes == [(f"operator:{HZ}:hangzhou-ops", rpb.AUDIT_OUTCOME_DENIED)] * 3 + [
        ("admin:hub-admin", rpb.AUDIT_OUTCOME_DENIED)
    ]


async def test_an_operator_cannot_take_over_another_regions_issuer_id(hub: Hub) -> None:
    """Registering an issuer id that Shanghai already holds, in one's own region, is refused
    and leaves Shanghai's issuer untouched."""
    request_id = new_request_id()
    _, submission = es256_offer("shanghai", "takeover", request_id)
    request = rpb.RegisterIssuerRequest(
        request_id=request_id,
        issuer_id="shanghai",
        region=HZ,
        name="上海随申码",
        profile_toml=profile_text(),
        keys=[submission],
    )
    error = await refused(
        hub.registry("hangzhou-ops").RegisterIssuer(request),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert f"cannot act on issuers of {SH}" in (error.details() or "")
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="shanghai"))).issuer
    assert record.region == SH
    assert "takeover" not in [k.kid for k in record.keys]


# ------------------------------------------------------------------ who is calling


async def test_callers_without_a_pinned_certificate_are_turned_away(hub: Hub) -> None:
    request = rpb.CreateRegionRequest(request_id=new_request_id(), region="440100", name="广州")
    # On the verification port (server-side TLS only) nobody is identified.
    anonymous = hub.registry(None)
    await refused(anonymous.CreateRegion(request), grpc.StatusCode.UNAUTHENTICATED)
    await refused(anonymous.ListAudit(rpb.ListAuditRequest()), grpc.StatusCode.UNAUTHENTICATED)

    # A certificate from the right CA naming a real operator, but with a key nobody pinned.
    ca = pki.Issued((hub.pki / "ca.pem").read_bytes(), (hub.pki / "ca.key").read_bytes())
    forged = pki.issue_operator(ca, "hub-admin", None)
    error = await refused(
        channel_as(hub, forged.certificate_pem, forged.key_pem).CreateRegion(request),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "not a registered operator" in (error.details() or "")

    # A certificate from another CA does not get through the TLS handshake.
    rogue_ca = pki.new_ca("rogue CA")
    rogue = pki.issue_operator(rogue_ca, "hub-admin", None)
    await unanswered(
        channel_as(hub, rogue.certificate_pem, rogue.key_pem).CreateRegion(request),
        grpc.StatusCode.UNAVAILABLE,
    )
    # Without a client certificate the mutual TLS port refuses the handshake too.
    bare = grpc.aio.secure_channel(hub.registry_address, TlsCredentials.from_pki(hub.pki).channel())
    hub._channels.append(bare)
    await unanswered(
        registry_pb2_grpc.RegistryServiceStub(bare).CreateRegion(request),
        grpc.StatusCode.UNAVAILABLE,
    )
    listed = await hub.registry("hub-admin").ListIssuers(rpb.ListIssuersRequest(region="440100"))
    assert list(listed.issuers) == []
    assert all(e.target != "440100" for e in await audit(hub))


async def test_a_removed_operator_is_refused_at_once_and_others_carry_on(hub: Hub) -> None:
    shanghai = hub.registry("shanghai-ops")
    kid = hub.regions["shanghai"].kid
    await shanghai.ListAudit(rpb.ListAuditRequest(limit=1))  # works on an open channel
    removed = (
        await hub.registry("hub-admin").RemoveOperator(
            rpb.RemoveOperatorRequest(request_id=new_request_id(), name="shanghai-ops")
        )
    ).change
    assert removed.audit.action == "remove-operator"
    assert removed.audit.actor == "admin:hub-admin"
    error = await refused(
        shanghai.RevokeKey(
            rpb.RevokeKeyRequest(request_id=new_request_id(), issuer_id="shanghai", kid=kid)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "not a registered operator" in (error.details() or "")
    await refused(
        shanghai.ListAudit(rpb.ListAuditRequest(limit=1)), grpc.StatusCode.UNAUTHENTICATED
    )
    # Hangzhou's operator is unaffected.
    await hub.registry("hangzhou-ops").ListAudit(rpb.ListAuditRequest(limit=1))


async def test_a_gateway_without_tls_refuses_every_change(tmp_path: Path, clock) -> None:
    files = new_state(tmp_path / "plain")
    gateway = open_gateway(files.directory, GATEWAY_LIMITS, clock)
    server = GatewayServer(gateway, "127.0.0.1:0", registry_listen=None)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            error = await refused(
                stub.CreateRegion(
                    rpb.CreateRegionRequest(request_id="r1", region="440100", name="广州")
                ),
                grpc.StatusCode.PERMISSION_DENIED,
            )
            assert "--insecure" in (error.details() or "")
            listed = await stub.ListIssuers(rpb.ListIssuersRequest())
            assert listed.trust_version == gateway.hub.store.state.version
            verifier = verifier_pb2_grpc.VerifierServiceStub(channel)
            answer = await verifier.Verify(pb.VerifyRequest(code="HC1:x"))
            assert verdict_from_pb(answer.verdict).status is not Status.VALID
    finally:
        await server.stop(0)
        gateway.hub.close()


# ------------------------------------------------------------------ key admission


async def test_registration_without_proof_of_possession_is_refused(hub: Hub) -> None:
    operator = hub.registry("hangzhou-ops")
    request_id = new_request_id()
    held = PrivateKey.generate(Algorithm.ES256)
    other = PrivateKey.generate(Algorithm.ES256)
    jwk = json.dumps(held.public_key().jwk()).encode()

    def register(proof: bytes, rid: str = request_id) -> Awaitable[rpb.RegisterIssuerResponse]:
        return operator.RegisterIssuer(
            rpb.RegisterIssuerRequest(
                request_id=rid,
                issuer_id="hz-district",
                region=HZ,
                name="杭州区码",
                profile_toml=profile_text(),
                keys=[rpb.KeySubmission(kid="d1", key=jwk, proof=proof)],
            )
        )

    before = await trust_version(hub)
    cases = {
        "no proof": b"",
        "signed by another key": prove(other, "hz-district", "d1", request_id),
        "replayed from another request": prove(held, "hz-district", "d1", "an-earlier-request"),
        "for another issuer": prove(held, "hangzhou", "d1", request_id),
        "for another kid": prove(held, "hz-district", "d2", request_id),
        "garbage": b"\x00" * 64,
    }
    for name, proof in cases.items():
        error = await refused(
            register(proof, new_request_id()),
            grpc.StatusCode.INVALID_ARGUMENT,
            Reason.ERR_POP,
        )
        assert error.details(), name
    assert await trust_version(hub) == before
    refusals = [e for e in await audit(hub) if e.target == "hz-district"]
    assert len(refusals) == len(cases)
    assert all(e.outcome == rpb.AUDIT_OUTCOME_REFUSED and "ERR_POP" in e.detail for e in refusals)

    # The genuine proof, bound to this very request, is accepted.
    change = (await register(prove(held, "hz-district", "d1", request_id))).change
    assert change.trust_version > before
    assert change.audit.outcome == rpb.AUDIT_OUTCOME_OK
    record = (
        await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hz-district"))
    ).issuer
    assert [k.kid for k in record.keys] == ["d1"]


def _rsa_offer(bits: int, exponent: int, issuer: str, kid: str, rid: str) -> rpb.KeySubmission:
    private = rsa.generate_private_key(public_exponent=exponent, key_size=bits)
    proof = private.sign(
        pop_message(issuer, kid, rid),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    return rpb.KeySubmission(
        kid=kid, key=spki_pem(private.public_key()), algorithm=rpb.ALGORITHM_PS256, proof=proof
    )


def _ec_offer(curve: ec.EllipticCurve, issuer: str, kid: str, rid: str) -> rpb.KeySubmission:
    private = ec.generate_private_key(curve)
    proof = private.sign(pop_message(issuer, kid, rid), ec.ECDSA(hashes.SHA256()))
    return rpb.KeySubmission(kid=kid, key=spki_pem(private.public_key()), proof=proof)


def self_signed(key: PrivateKey, not_before: datetime, not_after: datetime) -> x509.Certificate:
    """A self-signed certificate for an ES256 signing key, valid in the window given."""
    raw = serialization.load_pem_private_key(key.pem(), None)
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    return pki.self_signed(raw, "杭州健康码签名", not_before=not_before, not_after=not_after)


def _expired_certificate_offer(now: datetime, issuer: str, kid: str, rid: str) -> rpb.KeySubmission:
    key = PrivateKey.generate(Algorithm.ES256)
    certificate = self_signed(key, now - timedelta(days=400), now - timedelta(days=35))
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return rpb.KeySubmission(kid=kid, key=pem, proof=prove(key, issuer, kid, rid))


def _unsafe_offers(
    hub: Hub, now: datetime, rid: str
) -> dict[str, tuple[rpb.KeySubmission, Reason]]:
    issuer = "hangzhou"
    identity = bytes.fromhex("01" + "00" * 31)
    # With the identity point as public key, identity || 0^32 "verifies" for every message.
    forged = identity + bytes(32)
    small_order = {"kty": "OKP", "crv": "Ed25519", "x": b64(identity)}
    non_canonical_y = (2**255 - 19 + 3).to_bytes(32, "little")  # y = p + 3
    private_jwk = dict(PrivateKey.generate(Algorithm.EDDSA).public_key().jwk())
    private_jwk["d"] = b64(ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    existing = hub.regions["hangzhou"]
    duplicate = existing.running.secrets.key
    return {
        "rsa-1024": (_rsa_offer(1024, 65537, issuer, "rsa1024", rid), Reason.ERR_KEY_WEAK),
        "rsa-e3": (_rsa_offer(2048, 3, issuer, "rsae3", rid), Reason.ERR_KEY_WEAK),
        "p-521": (_ec_offer(ec.SECP521R1(), issuer, "p521", rid), Reason.ERR_KEY_WEAK),
        "secp256k1": (_ec_offer(ec.SECP256K1(), issuer, "k1", rid), Reason.ERR_KEY_WEAK),
        "ed25519-small-order": (
            rpb.KeySubmission(kid="ed0", key=json.dumps(small_order).encode(), proof=forged),
            Reason.ERR_KEY_WEAK,
        ),
        "ed25519-non-canonical": (
            rpb.KeySubmission(
                kid="ed1",
                key=json.dumps({**small_order, "x": b64(non_canonical_y)}).encode(),
                proof=forged,
            ),
            Reason.ERR_KEY_WEAK,
        ),
        "jwk-with-private-key": (
            rpb.KeySubmission(kid="edd", key=json.dumps(private_jwk).encode(), proof=b"x" * 64),
            Reason.ERR_KEY_PRIVATE,
        ),
        "duplicate-kid": (
            rpb.KeySubmission(
                kid=existing.kid,
                key=json.dumps(duplicate.public_key().jwk()).encode(),
                proof=prove(duplicate, issuer, existing.kid, rid),
            ),
            Reason.ERR_IDENTIFIER,
        ),
        "expired-certificate": (
            _expired_certificate_offer(now, issuer, "x509old", rid),
            Reason.ERR_KEY_WEAK,
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "rsa-1024",
        "rsa-e3",
        "p-521",
        "secp256k1",
        "ed25519-small-order",
        "ed25519-non-canonical",
        "jwk-with-private-key",
        "duplicate-kid",
        "expired-certificate",
    ],
)
async def test_each_unsafe_key_class_is_refused_with_its_reason(
    hub: Hub, clock: MutableClock, case: str
) -> None:
    rid = new_request_id()
    submission, reason = _unsafe_offers(hub, clock(), rid)[case]
    before = await trust_version(hub)
    error = await refused(
        hub.registry("hangzhou-ops").AddKey(
            rpb.AddKeyRequest(request_id=rid, issuer_id="hangzhou", key=submission)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    assert len(error.details() or "") < 300  # a reason, not a dump
    assert await trust_version(hub) == before
    last = (await audit(hub))[-1]
    assert (last.action, last.outcome) == ("add-key", rpb.AUDIT_OUTCOME_REFUSED)
    assert last.detail.startswith(reason.value)
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hangzhou"))).issuer
    assert len(record.keys) == 1
    if case == "ed25519-small-order":
        # The forged "signature" would verify under a naive library: make sure no code does here.
        code = await hub.regions["hangzhou"].issue()
        assert (await hub.verify(code)).provenance.kid == hub.regions["hangzhou"].kid


async def test_a_safe_x509_certificate_is_admitted_with_its_validity(
    hub: Hub, clock: MutableClock
) -> None:
    now = clock()
    key = PrivateKey.generate(Algorithm.ES256)
    not_after = (now + timedelta(days=90)).replace(microsecond=0)
    certificate = self_signed(key, now - timedelta(days=1), not_after)
    rid = new_request_id()
    submission = rpb.KeySubmission(
        kid="hz-x509",
        key=certificate.public_bytes(serialization.Encoding.DER),
        proof=prove(key, "hangzhou", "hz-x509", rid),
    )
    await hub.registry("hangzhou-ops").AddKey(
        rpb.AddKeyRequest(request_id=rid, issuer_id="hangzhou", key=submission)
    )

    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hangzhou"))).issuer
    added = next(k for k in record.keys if k.kid == "hz-x509")
    assert added.algorithm == rpb.ALGORITHM_ES256
    assert added.not_after.ToDatetime(UTC) == not_after
    assert (await hub.verify(mint(key, "hz-x509", now))).colour is Colour.GREEN


# ------------------------------------------------------------------ live trust


async def test_a_revoked_key_rejects_the_very_next_verification(hub: Hub) -> None:
    hangzhou = hub.regions["hangzhou"]
    code = await hangzhou.issue()
    first = await hub.verify(code)
    assert first.colour is Colour.GREEN
    change = (
        await hub.registry("hangzhou-ops").RevokeKey(
            rpb.RevokeKeyRequest(
                request_id=new_request_id(),
                issuer_id="hangzhou",
                kid=hangzhou.kid,
                reason="signing server compromised",
            )
        )
    ).change
    assert change.trust_version > (first.provenance.trust_version or 0)
    assert change.audit.detail.endswith("signing server compromised")
    after = await hub.verify(code)
    assert after.status is Status.REJECTED
    assert after.reason is Reason.ERR_KEY_REVOKED
    assert after.colour is not Colour.GREEN
    assert after.provenance.trust_version == change.trust_version
    # A revoked key id stays burnt: it can be neither retired nor added again.
    await refused(
        hub.registry("hangzhou-ops").RetireKey(
            rpb.RetireKeyRequest(
                request_id=new_request_id(), issuer_id="hangzhou", kid=hangzhou.kid
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        Reason.ERR_REVOKED_KID,
    )
    _, again = hangzhou_key(hangzhou.kid, hangzhou.running.secrets.key)
    await refused(
        hub.registry("hangzhou-ops").AddKey(again),
        grpc.StatusCode.FAILED_PRECONDITION,
        Reason.ERR_REVOKED_KID,
    )


async def test_a_rotation_under_continuous_traffic_gives_no_wrong_verdict(
    hub: Hub, clock: MutableClock
) -> None:
    """Verifiers keep checking codes while Hangzhou adds a key and retires the old one; every
    verdict must be right for the trust version it names."""
    hangzhou = hub.regions["hangzhou"]
    old_key, old_kid = hangzhou.running.secrets.key, hangzhou.kid
    issued_before = clock()
    old_code = mint(old_key, old_kid, issued_before)
    new_key, new_kid = PrivateKey.generate(Algorithm.ES256), "hz-2026-11"
    new_code = mint(new_key, new_kid, issued_before)
    operator = hub.registry("hangzhou-ops")
    verdicts: list[tuple[str, Verdict]] = []
    codes = {"old": old_code, "new": new_code}
    stop = asyncio.Event()

    async def traffic(lane: int) -> None:
        while not stop.is_set():
            for name, code in list(codes.items()):
                if lane % 2:
                    verdicts.append((name, await hub.verify(code)))
                else:
                    answer = await hub.stub.VerifyBatch(pb.VerifyBatchRequest(codes=[code] * 3))
                    verdicts.extend((name, verdict_from_pb(v)) for v in answer.verdicts)

    lanes = [asyncio.create_task(traffic(i)) for i in range(4)]
    try:
        await asyncio.sleep(0.3)
        added = (await operator.AddKey(hangzhou_key(new_kid, new_key)[1])).change
        await asyncio.sleep(0.3)
        clock.advance(timedelta(minutes=5))
        retired = (
            await operator.RetireKey(
                rpb.RetireKeyRequest(request_id=new_request_id(), issuer_id="hangzhou", kid=old_kid)
            )
        ).change
        clock.advance(timedelta(minutes=5))
        codes["late"] = mint(old_key, old_kid, clock())  # signed after the retirement
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*lanes)

    by_code: dict[str, list[Verdict]] = {}
    for name, verdict in verdicts:
        by_code.setdefault(name, []).append(verdict)
        version = verdict.provenance.trust_version
        assert version is not None
        if name == "old":
            assert verdict.colour is Colour.GREEN, verdict  # issued before the retirement
        elif name == "new" and version < added.trust_version:
            assert verdict.reason is Reason.ERR_KEY_UNKNOWN, verdict
        elif name == "new":
            assert verdict.colour is Colour.GREEN, verdict
        else:
            assert version >= retired.trust_version
            assert verdict.reason is Reason.ERR_KEY_NOT_VALID, verdict
    new_versions = {v.provenance.trust_version or 0 for v in by_code["new"]}
    assert min(new_versions) < added.trust_version <= max(new_versions)  # both sides observed
    assert len(by_code["late"]) > 0
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hangzhou"))).issuer
    assert {k.kid: k.status for k in record.keys} == {
        old_kid: rpb.KEY_STATUS_RETIRED,
        new_kid: rpb.KEY_STATUS_ACTIVE,
    }


async def test_a_change_written_by_another_process_reaches_the_running_gateway(
    hub: Hub, clock: MutableClock
) -> None:
    """Offline administration on the gateway's host (another connection to the same file) is
    picked up by the running gateway's refresh, without a restart."""
    key = PrivateKey.generate(Algorithm.ES256)
    code = mint(key, "offline-1", clock())
    assert (await hub.verify(code)).reason is Reason.ERR_KEY_UNKNOWN
    jwk = json.dumps({**key.public_key().jwk(), "kid": "offline-1"}).encode()
    (offer,) = offers_from_file(jwk, [key], issuer="hangzhou", request_id="offline-add")
    with open_hub(hub.files.directory) as other:
        change = other.registrar.submit(
            Actor(Role.LOCAL, "ops-oncall"), "offline-add", AddKey("hangzhou", offer)
        )
    for _ in range(100):
        verdict = await hub.verify(code)
        if verdict.colour is Colour.GREEN:
            break
        await asyncio.sleep(0.05)
    assert verdict.colour is Colour.GREEN
    assert verdict.provenance.trust_version == change.trust_version
    entry = (await audit(hub))[-1]
    assert (entry.actor, entry.action, entry.outcome) == (
        "local:ops-oncall",
        "add-key",
        rpb.AUDIT_OUTCOME_OK,
    )


async def test_processes_taking_turns_on_the_registry_each_see_the_others_changes(
    hub: Hub,
) -> None:
    """The host's CLI and the running gateway write the same file in turn. Each sees the
    other's changes, and nothing the gateway acknowledged is lost to the next process. (The
    gateway once read the file's header with a descriptor of its own; closing it dropped the
    locks SQLite held, the CLI then removed the WAL the gateway was still writing, and the
    gateway's later commits reached no other process.)"""
    state = str(hub.files.directory)
    for turn, code in enumerate(("350000", "360000", "370000")):
        made = await asyncio.to_thread(
            huren,
            *("registry", "create-region", "--state-dir", state, "--region", code),
            *("--name", f"region {turn}"),
        )
        assert made.returncode == 0, made.stderr
        for _ in range(100):
            if (await audit(hub))[-1].target == code:
                break
            await asyncio.sleep(0.05)
        assert (await audit(hub))[-1].target == code, "the gateway did not see the CLI's change"
        change = (await hub.registry("hangzhou-ops").AddKey(hangzhou_key(f"turn-{turn}")[1])).change
        checked = await asyncio.to_thread(huren, "audit", "verify", "--state-dir", state)
        assert checked.returncode == 0, checked.stderr + checked.stdout
        assert checked.stdout.startswith(f"audit chain intact: {change.audit.seq} entries, ")
        assert checked.stdout.split("head ")[1].strip() == change.audit.entry_hash[:16]


# ------------------------------------------------------------------ idempotence and deadlines


async def test_a_retried_request_returns_the_first_result(hub: Hub) -> None:
    operator = hub.registry("hangzhou-ops")
    _, request = hangzhou_key("hz-retry")
    rid = request.request_id
    first = (await operator.AddKey(request)).change
    again = (await operator.AddKey(request)).change
    assert again == first
    assert await trust_version(hub) == first.trust_version
    assert [e.seq for e in await audit(hub) if e.target == "hangzhou/hz-retry"] == [first.audit.seq]
    # The same id with different content is a conflict, not a second change.
    changed = rpb.AddKeyRequest()
    changed.CopyFrom(request)
    changed.key.not_after.FromDatetime(datetime(2030, 1, 1, tzinfo=UTC))
    error = await refused(operator.AddKey(changed), grpc.StatusCode.ALREADY_EXISTS)
    assert rid in (error.details() or "")
    revoke = rpb.RevokeKeyRequest(request_id=rid, issuer_id="hangzhou", kid="hz-retry")
    await refused(operator.RevokeKey(revoke), grpc.StatusCode.ALREADY_EXISTS)
    # Request ids belong to their caller: Shanghai may use the same one for its own change.
    shanghai = (
        await hub.registry("shanghai-ops").RetireKey(
            rpb.RetireKeyRequest(
                request_id=rid, issuer_id="shanghai", kid=hub.regions["shanghai"].kid
            )
        )
    ).change
    assert shanghai.trust_version == first.trust_version + 1
    # Malformed request ids are refused before anything else.
    for bad in ("", "x" * 129, "中文", "tab\there"):
        await refused(
            operator.RevokeKey(
                rpb.RevokeKeyRequest(request_id=bad, issuer_id="hangzhou", kid="hz-retry")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )


async def test_requests_that_outlive_their_deadline_are_safe_to_retry(hub: Hub) -> None:
    """A client that gave up cannot know whether its change landed; retrying with the same id
    must settle it exactly once."""
    operator = hub.registry("hangzhou-ops")
    requests = [hangzhou_key(f"hz-late-{i}")[1] for i in range(8)]
    outcomes = await asyncio.gather(
        *(operator.AddKey(r, timeout=0.0005) for r in requests), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            assert outcome.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            assert isinstance(outcome, rpb.RegistryChange)
    settled = [(await operator.AddKey(r, timeout=10)).change for r in requests]
    for outcome, final in zip(outcomes, settled, strict=True):
        if isinstance(outcome, rpb.RegistryChange):
            assert final == outcome
    entries = [
        e for e in await audit(hub) if e.action == "add-key" and e.outcome == rpb.AUDIT_OUTCOME_OK
    ]
    assert sorted(e.target for e in entries) == sorted(f"hangzhou/hz-late-{i}" for i in range(8))
    assert len({s.audit.seq for s in settled}) == 8


async def test_a_change_whose_deadline_passes_while_it_waits_is_not_committed(
    hub: Hub,
) -> None:
    """Another process holds the registry's write lock; the operator's call gives up after 1 s.
    When the lock is released the gateway must not commit what nobody is waiting for, and
    verification keeps answering throughout."""
    code = await hub.regions["hangzhou"].issue()
    operator = hub.registry("hangzhou-ops")
    _, request = hangzhou_key("hz-waited")
    before = await trust_version(hub)
    other = sqlite3.connect(hub.files.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        call = operator.AddKey(request, timeout=1.0)
        verdict = await asyncio.wait_for(hub.verify(code), timeout=0.5)
        assert verdict.colour is Colour.GREEN  # the event loop is not stuck behind SQLite
        await unanswered(call, grpc.StatusCode.DEADLINE_EXCEEDED)
        await asyncio.sleep(0.3)
    finally:
        other.execute("ROLLBACK")
        other.close()
    entries = await audit(hub)  # queued behind the abandoned change: it has finished
    assert [e for e in entries if e.target == "hangzhou/hz-waited"] == []
    assert await trust_version(hub) == before
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hangzhou"))).issuer
    assert "hz-waited" not in [k.kid for k in record.keys]
    # The operator retries with the same id and it lands, once.
    change = (await operator.AddKey(request, timeout=10)).change
    assert change.trust_version == before + 1
    assert (await operator.AddKey(request, timeout=10)).change == change


# ------------------------------------------------------------------ profiles


async def test_a_profile_update_is_versioned_and_the_old_version_stays_readable(
    hub: Hub,
) -> None:
    code = await hub.regions["hangzhou"].issue()
    operator = hub.registry("hangzhou-ops")
    skipped = rpb.UpdateProfileRequest(
        request_id=new_request_id(), issuer_id="hangzhou", profile_toml=profile_text(3)
    )
    await refused(
        operator.UpdateProfile(skipped), grpc.StatusCode.FAILED_PRECONDITION, Reason.ERR_VERSION
    )
    broken = rpb.UpdateProfileRequest(
        request_id=new_request_id(),
        issuer_id="hangzhou",
        profile_toml=profile_text(2).replace('state = "hc"', 'state = ""'),
    )
    await refused(operator.UpdateProfile(broken), grpc.StatusCode.INVALID_ARGUMENT)
    v2 = profile_text(2).replace(
        'description = "', 'description = "v2 (same meaning, re-issued): ', 1
    )
    change = (
        await operator.UpdateProfile(
            rpb.UpdateProfileRequest(
                request_id=new_request_id(), issuer_id="hangzhou", profile_toml=v2
            )
        )
    ).change
    assert change.audit.action == "update-profile"
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hangzhou"))).issuer
    assert record.profile_version == 2
    assert [p.version for p in record.profiles] == [1, 2]
    assert record.profiles[0].profile_toml == profile_text(1)
    assert record.profiles[1].profile_toml == v2
    verdict = await hub.verify(code)
    assert verdict.colour is Colour.GREEN
    assert (verdict.provenance.profile_id, verdict.provenance.profile_version) == (
        ProfileId("hangzhou"),
        2,
    )


async def test_resending_the_current_profile_version_succeeds_and_changes_nothing(
    hub: Hub,
) -> None:
    """Issue 11, item 8: a deployment script that re-applies the profile already in place, or an
    operator retrying after a lost answer with a new request id, gets the current trust version
    and an audit entry that says nothing changed; other content under the same version number is
    still FAILED_PRECONDITION ERR_VERSION."""
    code = await hub.regions["hangzhou"].issue()
    operator = hub.registry("hangzhou-ops")

    def update(text: str) -> Awaitable[rpb.UpdateProfileResponse]:
        return operator.UpdateProfile(
            rpb.UpdateProfileRequest(
                request_id=new_request_id(), issuer_id="hangzhou", profile_toml=text
            )
        )

    v2 = profile_text(2)
    first = (await update(v2)).change
    assert first.audit.detail.startswith("profile hangzhou@2 (")
    version = await trust_version(hub)
    assert first.trust_version == version
    # The same bytes, then the same data written otherwise (comments, spacing, quoting).
    reformatted = "# re-applied by the deployment script\n" + v2.replace(
        '"绿码" = "GREEN"', "'绿码'  =  'GREEN'   # green"
    )
    assert reformatted != v2
    for text in (v2, reformatted):
        again = (await update(text)).change
        assert again.trust_version == version
        assert (again.audit.action, again.audit.target, again.audit.outcome) == (
            "update-profile",
            "hangzhou",
            rpb.AUDIT_OUTCOME_OK,
        )
        assert again.audit.detail == (
            "profile hangzhou@2 unchanged: it is already the current version"
        )
        assert again.audit.seq > first.audit.seq
        assert again.audit.state_digest != ""
    assert await trust_version(hub) == version
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="hangzhou"))).issuer
    assert [p.version for p in record.profiles] == [1, 2]
    assert record.profiles[1].profile_toml == v2  # the first text stays

    other = v2.replace('max = "24h"', 'max = "12h"')
    await refused(update(other), grpc.StatusCode.FAILED_PRECONDITION, Reason.ERR_VERSION)
    await refused(update(profile_text(1)), grpc.StatusCode.FAILED_PRECONDITION, Reason.ERR_VERSION)
    assert await trust_version(hub) == version
    verdict = await hub.verify(code)
    assert (verdict.colour, verdict.provenance.profile_version) == (Colour.GREEN, 2)


# ------------------------------------------------------------------ reading


async def test_the_trust_list_is_signed_monotonic_and_holds_no_secrets(
    tmp_path: Path, clock: MutableClock
) -> None:
    async with running_hub(tmp_path, clock, names=("hangzhou", "beijing", "zhejiang")) as hub:
        anonymous = hub.registry(None)
        first = await anonymous.GetTrustList(rpb.GetTrustListRequest())
        key = crypto.load_jwk(json.loads(hub.files.trust_list_public.read_text()))
        content = trustlist.verify(first.jws, key)
        assert content["version"] == first.version == await trust_version(hub)
        issuers = {i["id"]: i for i in content["issuers"]}
        assert set(issuers) == {"hangzhou", "beijing", "zhejiang"}
        assert issuers["hangzhou"]["keys"][0]["kid"] == hub.regions["hangzhou"].kid
        assert issuers["beijing"]["pseudonymous"] is True
        text = json.dumps(content)
        beijing = hub.regions["beijing"].running.secrets
        assert beijing.pseudonym_key is not None
        zhejiang_client = json.loads(
            (hub.regions["zhejiang"].running.state_dir / "hub-client.json").read_text()
        )
        for secret in (beijing.pseudonym_key.hex(), b64(beijing.pseudonym_key)):
            assert secret not in text
            assert secret not in first.jws
        assert zhejiang_client["secret"] not in text
        assert b64(bytes.fromhex(zhejiang_client["secret"])) not in text

        await hub.registry("hangzhou-ops").RevokeKey(
            rpb.RevokeKeyRequest(
                request_id=new_request_id(),
                issuer_id="hangzhou",
                kid=hub.regions["hangzhou"].kid,
            )
        )
        second = await anonymous.GetTrustList(rpb.GetTrustListRequest())
        later = trustlist.verify(second.jws, key)
        assert second.version > first.version
        hz = next(i for i in later["issuers"] if i["id"] == "hangzhou")
        assert hz["keys"][0]["status"] == "revoked"

        # Another gateway's key does not verify it; a changed byte does not either.
        stranger = PrivateKey.generate(Algorithm.ES256).public_key()
        with pytest.raises(ConfigurationInvalid) as other_key:
            trustlist.verify(second.jws, stranger)
        assert other_key.value.reason is Reason.ERR_KEY_UNKNOWN
        head, payload, signature = second.jws.split(".")
        flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
        with pytest.raises(ConfigurationInvalid) as changed:
            trustlist.verify(f"{head}.{flipped}.{signature}", key)
        assert changed.value.reason is Reason.ERR_SIGNATURE


async def test_listing_issuers_and_the_audit_log(hub: Hub) -> None:
    anonymous = hub.registry(None)
    everything = await anonymous.ListIssuers(rpb.ListIssuersRequest())
    assert [i.issuer_id for i in everything.issuers] == ["hangzhou", "shanghai"]
    only = await anonymous.ListIssuers(rpb.ListIssuersRequest(region=HZ))
    assert [i.issuer_id for i in only.issuers] == ["hangzhou"]
    await refused(
        anonymous.GetIssuer(rpb.GetIssuerRequest(issuer_id="nowhere")), grpc.StatusCode.NOT_FOUND
    )
    operator = hub.registry("hangzhou-ops")
    entries = list((await operator.ListAudit(rpb.ListAuditRequest())).entries)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].previous_hash == "0" * 64
    for earlier, later in itertools.pairwise(entries):
        assert later.previous_hash == earlier.entry_hash
    registered = [e for e in entries if e.action == "register-issuer"]
    assert [(e.actor, e.target) for e in registered] == [
        (f"operator:{HZ}:hangzhou-ops", "hangzhou"),
        (f"operator:{SH}:shanghai-ops", "shanghai"),
    ]
    page = await operator.ListAudit(rpb.ListAuditRequest(after=2, limit=2))
    assert [e.seq for e in page.entries] == [3, 4]
    await refused(
        operator.ListAudit(rpb.ListAuditRequest(limit=1001)), grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_an_issuer_registered_over_the_rpc_verifies_at_once(
    hub: Hub, clock: MutableClock
) -> None:
    """A second Hangzhou issuer (a district service) registered with the operator tools'
    request builder; its first code verifies without a restart."""
    rid = new_request_id()
    key = PrivateKey.generate(Algorithm.ES256)
    offer = KeyOffer(
        kid="xh-1",
        key=json.dumps(key.public_key().jwk()).encode(),
        proof=prove(key, "hz-xihu", "xh-1", rid),
    )
    command = RegisterIssuer("hz-xihu", HZ, "西湖区健康码", profile_text(), (offer,))
    request = wire.request(rid, command)
    assert isinstance(request, rpb.RegisterIssuerRequest)
    change = (await hub.registry("hangzhou-ops").RegisterIssuer(request)).change
    assert change.audit.target == "hz-xihu"
    code = Hangzhou().issue(HOLDER, "绿码", clock(), Secrets(key, "xh-1"), "t").code
    # The Hangzhou payload names its issuer ("iss": "hangzhou"): a key of hz-xihu must not
    # verify a code that claims to be Hangzhou's.
    verdict = await hub.verify(code)
    assert verdict.colour is not Colour.GREEN
    assert verdict.status is Status.REJECTED


async def test_a_locked_registry_answers_unavailable_verification_goes_on_and_a_retry_lands(
    hub: Hub,
) -> None:
    """Another process holds the registry's write lock (a backup, an offline command): a
    registry change waits for it, then answers UNAVAILABLE without changing anything, while
    codes keep verifying; the same request retried once the lock is gone lands."""
    code = await hub.regions["hangzhou"].issue()
    admin = hub.registry("hub-admin")
    request = rpb.CreateRegionRequest(request_id=new_request_id(), region="440100", name="广州")
    before = await trust_version(hub)
    holder = sqlite3.connect(hub.files.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        change = asyncio.ensure_future(admin.CreateRegion(request))
        await asyncio.sleep(0.1)  # the change is now waiting for the lock
        verdict = await hub.verify(code)
        assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN)
        error = await refused(change, grpc.StatusCode.UNAVAILABLE)
        assert "retry later" in (error.details() or "")
        assert await trust_version(hub) == before
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    landed = (await admin.CreateRegion(request)).change
    assert landed.trust_version > before
