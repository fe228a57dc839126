"""Issuers abroad over the real gateway: a SMART Health Cards issuer registered over mutual TLS
with its iss URL and revocation list, and an EU DCC issuer whose signer certificates are
imported from a trust list on the gateway's host while it runs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway.clients import new_request_id
from gateway.codecs import compression, cose, jws, strictjson, textform
from gateway.crypto import Algorithm, PrivateKey, certificate_kid, pki
from gateway.model import Colour, Reason, Status, Verdict
from gateway.registry.admission import prove
from tests.conftest import REPO
from tests.integration.cli import huren
from tests.integration.conftest import Hub, MutableClock, running_hub
from tests.integration.rpc import refused

pytestmark = pytest.mark.asyncio

FORMATS = REPO / "gateway" / "profiles" / "formats"
ISS = "https://shc.example/issuer"


@pytest_asyncio.fixture
async def hub(tmp_path: Path, clock: MutableClock) -> Any:
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as started:
        yield started


async def _abroad(hub: Hub, country: str, operator: str) -> None:
    """What the hub administrator does for an issuer abroad: its country and its operator."""
    admin = hub.registry("hub-admin")
    await admin.CreateRegion(
        rpb.CreateRegionRequest(request_id=new_request_id(), region=country, name=country)
    )
    ca = pki.Issued((hub.pki / "ca.pem").read_bytes(), (hub.pki / "ca.key").read_bytes())
    issued = pki.issue_operator(ca, operator, country)
    folder = hub.pki / "operators"
    (folder / f"{operator}.pem").write_bytes(issued.certificate_pem)
    (folder / f"{operator}.key").write_bytes(issued.key_pem)
    await admin.CreateOperator(
        rpb.CreateOperatorRequest(
            request_id=new_request_id(),
            name=operator,
            region=country,
            certificate_pem=issued.certificate_pem,
        )
    )


# ------------------------------------------------------------------ SMART Health Cards


def _card(key: PrivateKey, issued: float, rid: str, immunizations: int, iss: str = ISS) -> str:
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": "resource:0",
            "resource": {
                "resourceType": "Patient",
                "name": [{"family": "Anyperson", "given": ["John", "B."]}],
                "birthDate": "1951-01-20",
            },
        }
    ]
    for i in range(immunizations):
        entries.append(
            {
                "fullUrl": f"resource:{i + 1}",
                "resource": {"resourceType": "Immunization", "status": "completed"},
            }
        )
    payload = {
        "iss": iss,
        "nbf": issued,
        "vc": {
            "type": ["https://smarthealth.cards#health-card"],
            "rid": rid,
            "credentialSubject": {"fhirVersion": "4.0.1", "fhirBundle": {"entry": entries}},
        },
    }
    body = compression.deflate(strictjson.dumps(payload), wbits=compression.RAW)
    header = {"zip": "DEF", "alg": "ES256", "kid": key.public_key().thumbprint()}
    return textform.encode_numeric("shc:/", jws.sign(header, body, key))


async def test_a_smart_health_cards_issuer_is_registered_verified_and_revoked(
    hub: Hub, clock: MutableClock
) -> None:
    await _abroad(hub, "US", "us-ops")
    operator = hub.registry("us-ops")
    key = PrivateKey.generate(Algorithm.ES256)
    kid, rid = key.public_key().thumbprint(), new_request_id()
    jwk = json.dumps({**key.public_key().jwk(), "kid": kid}).encode()
    await operator.RegisterIssuer(
        rpb.RegisterIssuerRequest(
            request_id=rid,
            issuer_id="shc-test",
            region="US",
            name="SHC test issuer",
            profile_toml=(FORMATS / "smart-health-card.toml").read_text(),
            keys=[rpb.KeySubmission(kid=kid, key=jwk, proof=prove(key, "shc-test", kid, rid))],
            code_name=ISS,
        )
    )
    issued = clock().timestamp() - 3600.5  # a NumericDate with a fraction
    card = _card(key, issued, "rid-1", 2)
    verdict = await hub.verify(card)
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN)
    assert verdict.code is not None
    assert verdict.code.masked_identity == "A*** J***, 1951"
    assert verdict.code.local_state == "two or more completed immunizations"
    assert (await hub.verify(_card(key, issued, "rid-2", 1))).colour is Colour.YELLOW
    # A card naming another issuer is not verified with this issuer's key.
    stranger = await hub.verify(_card(key, issued, "rid-3", 2, iss="https://other.example"))
    assert stranger.reason is Reason.ERR_ISSUER_UNKNOWN

    # The issuer's revocation list: rid-1 revoked outright, rid-2 only for cards issued before.
    crl = {"kid": kid, "method": "rid", "ctr": 1, "rids": ["rid-1", f"rid-2.{int(issued) - 10}"]}
    change = (
        await operator.SetRevocations(
            rpb.SetRevocationsRequest(
                request_id=new_request_id(),
                issuer_id="shc-test",
                kid=kid,
                revocation_list=json.dumps(crl).encode(),
            )
        )
    ).change
    assert change.audit.action == "set-revocations"
    revoked = await hub.verify(card)
    assert (revoked.status, revoked.reason) == (Status.REJECTED, Reason.ERR_REVOKED)
    assert revoked.provenance.trust_version == change.trust_version
    later = await hub.verify(_card(key, issued, "rid-2", 2))
    assert later.colour is Colour.GREEN  # issued after rid-2's cut-off

    stale = {**crl, "ctr": 1}
    await refused(
        operator.SetRevocations(
            rpb.SetRevocationsRequest(
                request_id=new_request_id(),
                issuer_id="shc-test",
                kid=kid,
                revocation_list=json.dumps(stale).encode(),
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        Reason.ERR_VERSION,
    )
    await refused(
        hub.registry("hangzhou-ops").SetRevocations(
            rpb.SetRevocationsRequest(
                request_id=new_request_id(),
                issuer_id="shc-test",
                kid=kid,
                revocation_list=json.dumps({**crl, "ctr": 2}).encode(),
            )
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    record = (await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="shc-test"))).issuer
    assert record.code_name == ISS
    assert (record.keys[0].revoked_ids, record.keys[0].revocation_counter) == (2, 1)

    # A key whose id is not its thumbprint is refused for this profile.
    other, rid = PrivateKey.generate(Algorithm.ES256), new_request_id()
    await refused(
        operator.AddKey(
            rpb.AddKeyRequest(
                request_id=rid,
                issuer_id="shc-test",
                key=rpb.KeySubmission(
                    kid="not-a-thumbprint",
                    key=json.dumps(other.public_key().jwk()).encode(),
                    proof=prove(other, "shc-test", "not-a-thumbprint", rid),
                ),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        Reason.ERR_IDENTIFIER,
    )


# ------------------------------------------------------------------ EU DCC


def _dsc(
    now: Any, usage: str | None, algorithm: Algorithm = Algorithm.ES256
) -> tuple[PrivateKey, bytes]:
    """A signer certificate (PEM) restricted to one kind of certificate, or to none."""
    key = PrivateKey.generate(algorithm)
    raw = serialization.load_pem_private_key(key.pem(), None)
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    usages = (
        None
        if usage is None
        else [ObjectIdentifier(f"1.3.6.1.4.1.1847.2021.1.{usage}"), ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    certificate = pki.self_signed(
        raw,
        "DSC XX",
        not_before=now - timedelta(days=30),
        not_after=now + timedelta(days=300),
        extended_key_usage=usages,
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def _dcc(
    key: PrivateKey, certificate: bytes, now: Any, entry: dict[str, Any], country: str = "XX"
) -> str:
    kid = _sha(certificate)[:8]
    hcert = {"ver": "1.3.0", "nam": {"fnt": "MUSTER", "gnt": "ERIKA"}, "dob": "1964-08-12", **entry}
    payload = {
        1: country,
        4: int(now.timestamp()) + 86400,
        6: int(now.timestamp()) - 60,
        -260: {1: hcert},
    }
    return textform.encode("HC1:", cose.sign(cbor2.dumps(payload), key, kid))


async def _eu_dcc_issuer(hub: Hub, country: str) -> None:
    """A country abroad, its operator, and its EU DCC issuer ``eu-dcc-<cc>`` with no keys yet."""
    operator = f"{country.lower()}-ops"
    await _abroad(hub, country, operator)
    await hub.registry(operator).RegisterIssuer(
        rpb.RegisterIssuerRequest(
            request_id=new_request_id(),
            issuer_id=f"eu-dcc-{country.lower()}",
            region=country,
            name=f"EU DCC {country}",
            profile_toml=(FORMATS / "eu-dcc.toml").read_text(),
        )
    )


async def test_eu_dcc_signer_certificates_are_imported_while_the_gateway_runs(
    hub: Hub, clock: MutableClock, tmp_path: Path
) -> None:
    await _eu_dcc_issuer(hub, "XX")
    now = clock()
    vaccination_key, vaccination_dsc = _dsc(now, "2")
    any_key, any_dsc = _dsc(now, None)
    bundle = tmp_path / "trust-list.pem"
    bundle.write_bytes(vaccination_dsc + any_dsc)
    vaccinated = {"v": [{"dn": 2, "sd": 2, "dt": "2021-05-29", "tg": "840539006"}]}
    tested = {"t": [{"tr": "260415000", "sc": (now - timedelta(hours=5)).isoformat()}]}
    codes = {
        "vaccination by the vaccination DSC": _dcc(
            vaccination_key, vaccination_dsc, now, vaccinated
        ),
        "test by the vaccination DSC": _dcc(vaccination_key, vaccination_dsc, now, tested),
        "test by the unrestricted DSC": _dcc(any_key, any_dsc, now, tested),
    }
    before = await hub.verify(codes["test by the unrestricted DSC"])
    assert before.reason is Reason.ERR_KEY_UNKNOWN

    first = await _import(hub, "eu-dcc-xx", bundle)
    assert first.returncode == 0, first.stderr
    kids = [certificate_kid(_sha(vaccination_dsc)), certificate_kid(_sha(any_dsc))]
    *lines, summary = first.stdout.splitlines()
    for kid, line in zip(kids, lines, strict=True):
        assert line.startswith(kid)
    # Both in one audited change: one new trust version, not one per certificate.
    assert len({line.rsplit(" ", 1)[1] for line in lines}) == 1
    assert summary == "2 imported, 0 already held, 0 refused"
    assert "signs vaccination" in first.stdout
    assert "signs any kind" in first.stdout
    again = await _import(hub, "eu-dcc-xx", bundle)  # the same list again: nothing changes
    assert again.returncode == 0, again.stderr
    assert again.stdout == "0 imported, 2 already held, 0 refused\n"
    der = tmp_path / "vaccination-dsc.der"  # the same certificate in another encoding
    der.write_bytes(
        x509.load_pem_x509_certificate(vaccination_dsc).public_bytes(serialization.Encoding.DER)
    )
    as_der = await _import(hub, "eu-dcc-xx", der)
    assert as_der.returncode == 0, as_der.stderr
    assert as_der.stdout == "0 imported, 1 already held, 0 refused\n"

    # The running gateway picks the import up (refresh), without a restart.
    for _ in range(100):
        verdict = await hub.verify(codes["test by the unrestricted DSC"])
        if verdict.status is Status.VALID:
            break
        await asyncio.sleep(0.05)
    assert verdict.colour is Colour.GREEN
    assert verdict.code is not None
    assert verdict.code.local_state == "negative test within 72 h"
    assert (await hub.verify(codes["vaccination by the vaccination DSC"])).colour is Colour.GREEN
    wrong = await hub.verify(codes["test by the vaccination DSC"])
    assert (wrong.status, wrong.reason) == (Status.REJECTED, Reason.ERR_KEY_USAGE)

    record = (
        await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="eu-dcc-xx"))
    ).issuer
    by_kid = {k.kid: k for k in record.keys}
    assert (by_kid[kids[0]].restricted, list(by_kid[kids[0]].usage)) == (True, ["vaccination"])
    assert (by_kid[kids[1]].restricted, list(by_kid[kids[1]].usage)) == (False, [])
    assert by_kid[kids[0]].certificate_sha256 == _sha(vaccination_dsc).hex()


async def test_a_signer_certificate_belongs_to_one_issuer_and_moves_only_after_revocation(
    hub: Hub, clock: MutableClock, tmp_path: Path
) -> None:
    """Issue 11, 11: importing the certificate already held by another country's issuer used to
    print "imported" and change nothing (the request id was the certificate's alone), and a
    certificate imported into the wrong country could never be corrected."""
    await _eu_dcc_issuer(hub, "XA")
    await _eu_dcc_issuer(hub, "XB")
    now = clock()
    key, dsc = _dsc(now, None)
    path = tmp_path / "dsc.pem"
    path.write_bytes(dsc)
    kid = certificate_kid(_sha(dsc))
    assert (await _import(hub, "eu-dcc-xa", path)).returncode == 0  # the wrong country
    moved = await _import(hub, "eu-dcc-xb", path)
    assert moved.returncode == 1
    assert f"the certificate is already issuer eu-dcc-xa's key {kid}" in moved.stderr
    assert moved.stdout == "0 imported, 0 already held, 1 refused\n"
    code = _dcc(key, dsc, now, {"t": [{"tr": "260415000", "sc": now.isoformat()}]}, "XB")
    wrong = await _settled(hub, code, "XA")  # XB's certificate, its codes say so: refused
    assert (wrong.status, wrong.reason) == (Status.REJECTED, Reason.ERR_ISSUER_MISMATCH)
    # The way to correct it: revoke it where it does not belong (audited), then import it.
    await hub.registry("xa-ops").RevokeKey(
        rpb.RevokeKeyRequest(
            request_id=new_request_id(), issuer_id="eu-dcc-xa", kid=kid, reason="wrong country"
        )
    )
    again = await _import(hub, "eu-dcc-xb", path)
    assert again.returncode == 0, again.stderr
    assert (await _settled(hub, code, "XB")).status is Status.VALID


async def _settled(hub: Hub, code: str, region: str) -> Verdict:
    """The code's verdict once the running gateway has picked up a change another process
    made (it looks every second), attributed to ``region``."""
    for _ in range(100):
        verdict = await hub.verify(code)
        if verdict.provenance.region == region:
            return verdict
        await asyncio.sleep(0.05)
    raise AssertionError(f"the code was never attributed to {region}: {verdict}")


async def _import(hub: Hub, issuer: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    """``huren registry import-certificates`` on the gateway's host, as a separate process."""
    state = str(hub.files.directory)
    return await asyncio.to_thread(
        huren,
        "registry",
        "import-certificates",
        "--state-dir",
        state,
        "--issuer",
        issuer,
        *map(str, paths),
    )


def _sha(pem: bytes) -> bytes:
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).digest()


async def test_certificates_cannot_be_imported_for_a_profile_that_needs_proof(
    hub: Hub, tmp_path: Path, clock: MutableClock
) -> None:
    _, certificate = _dsc(clock(), None)
    path = tmp_path / "dsc.pem"
    path.write_bytes(certificate)
    result = await _import(hub, "hangzhou", path)
    assert result.returncode == 2
    assert "ERR_POP" in result.stderr
    assert "proof of possession" in result.stderr


async def test_a_trust_list_import_skips_and_reports_the_certificates_it_refuses(
    hub: Hub, clock: MutableClock, tmp_path: Path
) -> None:
    """EU DCC allows ES256 and PS256 only: in a trust list holding a P-384 certificate between
    two good ones, the P-384 one is refused with its reason, the others are imported, and the
    exit status says that something was refused."""
    await _eu_dcc_issuer(hub, "YY")
    now = clock()
    _, first = _dsc(now, None)
    _, p384 = _dsc(now, None, Algorithm.ES384)
    _, last = _dsc(now, "1")
    bundle = tmp_path / "trust-list.pem"
    bundle.write_bytes(first + p384 + last)
    # A JWKS is not a certificate: the import refuses it and goes on (it once crashed here).
    jwks = tmp_path / "keys.jwks"
    jwks.write_text(
        json.dumps(
            {"keys": [{**PrivateKey.generate(Algorithm.ES256).public_key().jwk(), "kid": "a"}] * 2}
        )
    )
    result = await _import(hub, "eu-dcc-yy", bundle, jwks)
    assert result.returncode == 1
    assert "trust-list.pem certificate 2" in result.stderr
    assert "ERR_ALG_NOT_ALLOWED" in result.stderr
    assert "ES384" in result.stderr
    assert "keys.jwks certificate 1" in result.stderr
    assert "not a valid X.509 certificate" in result.stderr
    assert "Traceback" not in result.stderr
    *lines, summary = result.stdout.splitlines()
    imported = [line.split(" ")[0] for line in lines]
    assert imported == [certificate_kid(_sha(first)), certificate_kid(_sha(last))]
    assert summary == "2 imported, 0 already held, 2 refused"
    # The running gateway picks the import up on its next refresh.
    for _ in range(100):
        record = (
            await hub.registry(None).GetIssuer(rpb.GetIssuerRequest(issuer_id="eu-dcc-yy"))
        ).issuer
        if record.keys:
            break
        await asyncio.sleep(0.05)
    assert sorted(k.kid for k in record.keys) == sorted(imported)


async def test_a_national_list_is_imported_in_changes_of_at_most_a_thousand_certificates(
    hub: Hub, clock: MutableClock, tmp_path: Path
) -> None:
    """A country's list of 1,001 signer certificates, one of them refused, becomes two audited
    changes (not 1,000 trust versions); importing it again changes nothing."""
    await _eu_dcc_issuer(hub, "XC")
    now = clock()
    certificates = [_dsc(now, None)[1] for _ in range(1001)]
    certificates.insert(500, _dsc(now, None, Algorithm.ES384)[1])
    bundle = tmp_path / "national-list.pem"
    bundle.write_bytes(b"".join(certificates))
    result = await _import(hub, "eu-dcc-xc", bundle)
    assert result.returncode == 1
    assert "national-list.pem certificate 501 refused: ERR_ALG_NOT_ALLOWED" in result.stderr
    *lines, summary = result.stdout.splitlines()
    assert summary == "1001 imported, 0 already held, 1 refused"
    versions = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert len(versions) == 1001
    assert len(set(versions)) == 2
    again = await _import(hub, "eu-dcc-xc", bundle)
    assert again.returncode == 1  # the ES384 certificate is still refused
    assert again.stdout == "0 imported, 1001 already held, 1 refused\n"


async def test_a_list_with_many_bad_certificates_is_sorted_out_before_anything_is_submitted(
    hub: Hub, clock: MutableClock, tmp_path: Path
) -> None:
    """40 refused certificates among 5 good ones (more than the denial budget of 30 refused
    changes in a row): every bad one is reported with its reason, the good ones are imported in
    one change, and the import after it is still decided (not answered "retry later")."""
    await _eu_dcc_issuer(hub, "XD")
    now = clock()
    good = [_dsc(now, None)[1] for _ in range(5)]
    bad = [_dsc(now, None, Algorithm.ES384)[1] for _ in range(40)]
    bundle = tmp_path / "mixed.pem"
    bundle.write_bytes(b"".join(good[:2] + bad + good[2:]))
    result = await _import(hub, "eu-dcc-xd", bundle)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "retry later" not in result.stderr
    for number in range(3, 43):
        assert f"mixed.pem certificate {number} refused: ERR_ALG_NOT_ALLOWED" in result.stderr
    *lines, summary = result.stdout.splitlines()
    assert summary == "5 imported, 0 already held, 40 refused"
    assert len({line.rsplit(" ", 1)[1] for line in lines}) == 1  # one change, one version
    later = tmp_path / "later.pem"
    later.write_bytes(_dsc(now, "1")[1])
    again = await _import(hub, "eu-dcc-xd", later)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (
        0,
        "1 imported, 0 already held, 0 refused",
    )
