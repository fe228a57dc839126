"""EU DCC (``HC1:``) and SMART Health Cards (``shc:/``) end to end through ``verify_code``.

Every code here is minted in the test itself, independently of the gateway's own issuer helpers:
keys and self-signed X.509 signer certificates with ``cryptography``, COSE_Sign1/CWT with cbor2,
zlib + base45, compact JWS ES256 with raw DEFLATE and the numeric ``shc:/`` form. The keys are
registered as operators register them (``certificate_key`` for EU DCC signer certificates,
``read_keys`` for a JWKS, ``read_revocation_list`` for a CRL) and every verdict is taken at an
injected ``now``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.codecs import textform
from gateway.crypto import pki
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.model import Colour, IssuerId, KeyId, Reason, RegionCode, Status, Verdict
from gateway.profiles import load_profile
from gateway.registry import Issuer, IssuerKey, TrustSnapshot, TrustState
from gateway.registry.admission import certificate_key
from gateway.registry.keyfiles import certificate_kid, read_keys, read_revocation_list
from gateway.verify import _candidate_issuers, open_envelope, verify_code
from tests.conftest import LINK_KEY, NOW, REPO, SUBJECT_SECRET, add_issuer

FORMATS = REPO / "gateway" / "profiles" / "formats"
EU_PROFILE = load_profile((FORMATS / "eu-dcc.toml").read_text("utf-8"))
SHC_PROFILE = load_profile((FORMATS / "smart-health-card.toml").read_text("utf-8"))
IDENTITIES = IdentityKeys(SUBJECT_SECRET, LINK_KEY)
LIMITS = Limits()
DAY = timedelta(days=1)

# What the holder's documents say; none of it may appear in any verdict.
EU_RAW = ("Musterfrau", "MUSTERFRAU", "Erika", "ERIKA", "1964-08-12")
SHC_RAW = ("Anyperson", "Johnathan", "1951-01-20")

ES256, ES384, EDDSA, PS256 = -7, -35, -8, -37
HCERT = "1.3.6.1.4.1.1847.2021.1."
HCERT_LONG = "1.3.6.1.4.1.0.1847.2021.1."

_Private = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


# ------------------------------------------------------------------ verdict checks


def verify(
    code: str, trust: TrustSnapshot, *, now: datetime = NOW, limits: Limits = LIMITS
) -> Verdict:
    return verify_code(code, trust=trust, now=now, limits=limits, identities=IDENTITIES)


def _no_raw_identity(verdict: Verdict) -> None:
    text = f"{verdict!r} {verdict.detail}"
    for raw in (*EU_RAW, *SHC_RAW):
        assert raw not in text


def accepted(verdict: Verdict, colour: Colour = Colour.GREEN) -> Verdict:
    assert verdict.status is Status.VALID, (verdict.reason, verdict.detail)
    assert verdict.reason is Reason.OK
    assert verdict.colour is colour
    _no_raw_identity(verdict)
    return verdict


def refused(verdict: Verdict, reason: Reason) -> None:
    """Fail closed: not VALID, GREY, no canonical code, and a stated reason."""
    assert verdict.reason is reason, (verdict.reason, verdict.detail)
    assert verdict.status is not Status.VALID
    assert verdict.colour is Colour.GREY
    assert verdict.code is None
    assert verdict.detail
    _no_raw_identity(verdict)


# ------------------------------------------------------------------ keys and certificates


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(
    private: _Private,
    *,
    ekus: Iterable[str] | None = None,
    not_before: datetime = NOW - 365 * DAY,
    not_after: datetime = NOW + 365 * DAY,
    name: str = "DSC test",
) -> bytes:
    certificate = pki.self_signed(
        private,
        name,
        not_before=not_before,
        not_after=not_after,
        extended_key_usage=None if ekus is None else [x509.ObjectIdentifier(o) for o in ekus],
        country="DE",
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def _raw_ecdsa(private: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    size = (private.curve.key_size + 7) // 8
    digest: hashes.HashAlgorithm = hashes.SHA256() if size == 32 else hashes.SHA384()
    r, s = decode_dss_signature(private.sign(message, ec.ECDSA(digest)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


@dataclass(frozen=True)
class Dsc:
    """An EU DCC document signer: its private key, COSE algorithm and certificate (DER)."""

    private: _Private
    alg: int
    der: bytes

    @property
    def kid(self) -> bytes:
        return hashlib.sha256(self.der).digest()[:8]

    def sign(self, message: bytes) -> bytes:
        key = self.private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return _raw_ecdsa(key, message)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return key.sign(message, pss, hashes.SHA256())


def dsc(private: _Private | None = None, *, ekus: Iterable[str] | None = None, **cert: Any) -> Dsc:
    key = private if private is not None else p256()
    if isinstance(key, rsa.RSAPrivateKey):
        alg = PS256
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = EDDSA
    else:
        alg = ES256 if key.curve.key_size == 256 else ES384
    return Dsc(key, alg, _certificate(key, ekus=ekus, **cert))


# ------------------------------------------------------------------ EU DCC codes

_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def b45encode(data: bytes) -> str:
    out: list[int] = []
    for i in range(0, len(data), 2):
        chunk = data[i : i + 2]
        if len(chunk) == 2:
            n = chunk[0] * 256 + chunk[1]
            out += [n % 45, n // 45 % 45, n // 2025]
        else:
            out += [chunk[0] % 45, chunk[0] // 45]
    return "".join(_B45[x] for x in out)


def _vaccination() -> dict[str, Any]:
    return {
        "tg": "840539006",
        "vp": "1119349007",
        "mp": "EU/1/20/1528",
        "ma": "ORG-100030215",
        "dn": 2,
        "sd": 2,
        "dt": "2026-06-01",
        "co": "DE",
        "is": "Robert Koch-Institut",
        "ci": "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W",
    }


def _test(sample: object = None) -> dict[str, Any]:
    return {
        "tg": "840539006",
        "tt": "LP6464-4",
        "nm": "Roche LightCycler qPCR",
        "sc": (NOW - DAY).strftime("%Y-%m-%dT%H:%M:%SZ") if sample is None else sample,
        "tr": "260415000",
        "tc": "Testzentrum Köln Hbf",
        "co": "DE",
        "is": "Robert Koch-Institut",
        "ci": "URN:UVCI:01DE/IBMT102/18Q12HTUJ7NBQV9AQ6VUDYCHZO#U",
    }


def _recovery() -> dict[str, Any]:
    return {
        "tg": "840539006",
        "fr": (NOW - 30 * DAY).strftime("%Y-%m-%d"),
        "co": "DE",
        "is": "Robert Koch-Institut",
        "df": (NOW - 19 * DAY).strftime("%Y-%m-%d"),
        "du": (NOW + 150 * DAY).strftime("%Y-%m-%d"),
        "ci": "URN:UVCI:01DE/5CWLU12RNOB9RXSEOP6FG8#W",
    }


ENTRIES = {"v": _vaccination, "t": _test, "r": _recovery}
KIND_KEYS = {"test": "t", "vaccination": "v", "recovery": "r"}


def dcc(
    kind: str = "v",
    *,
    iat: datetime | float = NOW - DAY,
    exp: datetime | float = NOW + 300 * DAY,
    entry: Mapping[str, Any] | None = None,
    iss: object = "DE",
) -> dict[int, Any]:
    """A CWT carrying one health certificate of ``kind`` (``v``, ``t`` or ``r``), issued in
    ``iss`` (claim 1, the country)."""
    hcert: dict[str, Any] = {
        "ver": "1.3.0",
        "nam": {"fn": "Musterfrau", "fnt": "MUSTERFRAU", "gn": "Erika", "gnt": "ERIKA"},
        "dob": "1964-08-12",
        kind: [dict(entry) if entry is not None else ENTRIES[kind]()],
    }

    def seconds(t: datetime | float) -> int | float:
        return int(t.timestamp()) if isinstance(t, datetime) else t

    return {1: iss, 4: seconds(exp), 6: seconds(iat), -260: {1: hcert}}


def hc1(
    signer: Dsc,
    claims: Mapping[int, Any] | None = None,
    *,
    protected: Mapping[int, Any] | None = None,
    unprotected: Mapping[int, Any] | None = None,
    wrap: str = "tag18",
    signed_claims: Mapping[int, Any] | None = None,
) -> str:
    """``HC1:`` + base45(zlib(COSE_Sign1)), signed by ``signer``; the header names the signer's
    algorithm and key id in the protected bucket unless told otherwise. With ``signed_claims``
    the signature is over those, not over the claims the code carries (a tampered code)."""
    header = {1: signer.alg, 4: signer.kid} if protected is None else dict(protected)
    protected_raw = cbor2.dumps(header) if header else b""
    payload = cbor2.dumps(dict(claims if claims is not None else dcc()))
    signed = payload if signed_claims is None else cbor2.dumps(dict(signed_claims))
    signature = signer.sign(cbor2.dumps(["Signature1", protected_raw, b"", signed]))
    message = [protected_raw, dict(unprotected or {}), payload, signature]
    if wrap == "untagged":
        data = cbor2.dumps(message)
    elif wrap == "tag18":
        data = cbor2.dumps(cbor2.CBORTag(18, message))
    else:
        data = cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(18, message)))
    return "HC1:" + b45encode(zlib.compress(data, 9))


def eu_trust(keys: Mapping[str, Iterable[Dsc | IssuerKey]]) -> TrustSnapshot:
    """One issuer per country (``eu-dcc-xx``) with the eu-dcc profile, its signer certificates
    imported as ``huren registry import-certificates`` does."""
    state = TrustState()
    state.add_profile(EU_PROFILE)
    for issuer_id, items in keys.items():
        region = issuer_id.rsplit("-", 1)[1].upper()
        add_issuer(
            state,
            Issuer(
                IssuerId(issuer_id),
                RegionCode(region),
                f"EU DCC {region}",
                EU_PROFILE.id,
                EU_PROFILE.version,
            ),
        )
        for item in items:
            key = (
                item
                if isinstance(item, IssuerKey)
                else certificate_key(IssuerId(issuer_id), item.der)
            )
            state.add_key(key)
    return state.snapshot()


def _b64(kid: bytes) -> str:
    return base64.b64encode(kid).decode("ascii")


# ------------------------------------------------------------------ EU DCC: algorithms


@pytest.mark.parametrize("algorithm", ["ES256", "PS256"])
def test_eu_dcc_es256_and_ps256_signers_are_green(algorithm, rsa2048):
    signer = dsc(rsa2048 if algorithm == "PS256" else p256())
    trust = eu_trust({"eu-dcc-de": [signer]})
    verdict = accepted(verify(hc1(signer), trust))
    assert verdict.code is not None
    assert (verdict.code.region, verdict.code.issuer) == ("DE", "eu-dcc-de")
    assert verdict.code.masked_identity == "M*** E***, 1964"
    assert (
        verdict.provenance.kid
        == _b64(signer.kid)
        == certificate_kid(hashlib.sha256(signer.der).digest())
    )
    assert (
        trust.keys[(IssuerId("eu-dcc-de"), KeyId(_b64(signer.kid)))].public_key.algorithm.value
        == algorithm
    )


@pytest.mark.parametrize("curve", ["ES384", "EdDSA"])
def test_eu_dcc_refuses_algorithms_outside_es256_and_ps256(curve):
    """The eu-dcc profile allows ES256 and PS256 only: a signer certificate with another key is
    refused at import, with the reason and both algorithms named, so no code of it verifies."""
    private: _Private = (
        ec.generate_private_key(ec.SECP384R1())
        if curve == "ES384"
        else ed25519.Ed25519PrivateKey.generate()
    )
    signer = dsc(private)
    with pytest.raises(ConfigurationInvalid) as refused:
        eu_trust({"eu-dcc-de": [signer]})
    assert refused.value.reason is Reason.ERR_ALG_NOT_ALLOWED
    assert "ES256, PS256" in str(refused.value)
    assert curve in str(refused.value)
    verdict = verify(hc1(signer), eu_trust({"eu-dcc-de": []}))
    assert verdict.reason is Reason.ERR_KEY_UNKNOWN
    assert verdict.colour is Colour.GREY


@pytest.mark.parametrize("wrap", ["untagged", "tag18", "cwt61"])
def test_eu_dcc_tagged_and_untagged_cose_sign1_are_accepted(wrap):
    signer = dsc()
    accepted(verify(hc1(signer, wrap=wrap), eu_trust({"eu-dcc-de": [signer]})))


def test_eu_dcc_kid_only_in_the_unprotected_header_is_accepted():
    signer = dsc()
    code = hc1(signer, protected={1: ES256}, unprotected={4: signer.kid})
    accepted(verify(code, eu_trust({"eu-dcc-de": [signer]})))


def test_eu_dcc_alg_and_kid_both_unprotected_is_accepted():
    signer = dsc()
    code = hc1(signer, protected={}, unprotected={1: ES256, 4: signer.kid})
    accepted(verify(code, eu_trust({"eu-dcc-de": [signer]})))


def test_eu_dcc_protected_kid_wins_over_a_different_unprotected_kid():
    signer, other = dsc(), dsc()
    trust = eu_trust({"eu-dcc-de": [signer, other]})
    good = hc1(signer, protected={1: ES256, 4: signer.kid}, unprotected={4: other.kid})
    verdict = accepted(verify(good, trust))
    assert verdict.provenance.kid == _b64(signer.kid)
    # The protected kid names the other key: the unprotected (right) one is ignored.
    wrong = hc1(signer, protected={1: ES256, 4: other.kid}, unprotected={4: signer.kid})
    refused(verify(wrong, trust), Reason.ERR_SIGNATURE)
    unknown = hc1(signer, protected={1: ES256, 4: b"\x00" * 8}, unprotected={4: signer.kid})
    refused(verify(unknown, trust), Reason.ERR_KEY_UNKNOWN)


def test_eu_dcc_candidates_are_found_by_key_id_not_by_trying_every_country():
    """Issue 14: on a route whose payloads name no issuer, the code's key id selects the
    issuers to check; the cost of a verification does not grow with the number of countries."""
    signers = {f"eu-dcc-{a}{b}": dsc() for a in "abcdef" for b in "ghijk"}  # 30 countries
    trust = eu_trust({issuer: [signer] for issuer, signer in signers.items()})
    route = trust.route_for(hc1(signers["eu-dcc-bh"]))
    assert route is not None
    assert len(route.issuers) == 30
    for issuer, signer in list(signers.items())[::7]:
        country = issuer.rsplit("-", 1)[1].upper()
        code = hc1(signer, dcc(iss=country))
        verdict = accepted(verify(code, trust))
        assert verdict.provenance.issuer == issuer
        opened = open_envelope(code, route.envelope, LIMITS)
        assert [i.id for i in _candidate_issuers(route, opened)] == [issuer]
        assert [i.id for i in route.holders[KeyId(_b64(signer.kid))]] == [issuer]
    # A key id no country holds: no candidate, and no issuer named in the verdict.
    stranger = verify(hc1(dsc()), trust)
    refused(stranger, Reason.ERR_KEY_UNKNOWN)
    assert stranger.provenance.issuer is None


@pytest.mark.parametrize(
    ("key", "named"),
    [("ES256", PS256), ("ES256", ES384), ("ES256", EDDSA), ("PS256", ES256)],
    ids=["p256-named-ps256", "p256-named-es384", "p256-named-eddsa", "rsa-named-es256"],
)
def test_eu_dcc_the_registered_algorithm_wins_over_the_header(key, named, rsa2048):
    signer = dsc(rsa2048 if key == "PS256" else p256())
    # Signed correctly with the signer's own key, but the header names another algorithm.
    code = hc1(signer, protected={1: named, 4: signer.kid})
    refused(verify(code, eu_trust({"eu-dcc-de": [signer]})), Reason.ERR_ALG_NOT_ALLOWED)


def test_eu_dcc_tampered_or_foreign_signature_is_refused():
    signer = dsc()
    trust = eu_trust({"eu-dcc-de": [signer]})
    # A recovery certificate carrying the signature of the genuine vaccination certificate.
    tampered = hc1(signer, dcc("r"), signed_claims=dcc("v"))
    refused(verify(tampered, trust), Reason.ERR_SIGNATURE)
    # Signed by another key that names this key's kid.
    foreign = hc1(dsc(), protected={1: ES256, 4: signer.kid})
    refused(verify(foreign, trust), Reason.ERR_SIGNATURE)


# ------------------------------------------------------------------ EU DCC: times


def test_eu_dcc_times():
    signer = dsc()
    trust = eu_trust({"eu-dcc-de": [signer]})
    exp = NOW + DAY
    # Expiry is inclusive (EU DCC reference verifiers): valid at exp, expired a second later.
    accepted(verify(hc1(signer, dcc(exp=exp)), trust, now=exp))
    refused(
        verify(hc1(signer, dcc(exp=exp)), trust, now=exp + timedelta(seconds=1)), Reason.ERR_EXPIRED
    )
    refused(verify(hc1(signer, dcc(exp=NOW - timedelta(seconds=1))), trust), Reason.ERR_EXPIRED)
    # Not yet valid: issued beyond the leeway in the future.
    refused(
        verify(hc1(signer, dcc(iat=NOW + LIMITS.leeway + timedelta(seconds=5))), trust),
        Reason.ERR_NOT_YET_VALID,
    )
    accepted(verify(hc1(signer, dcc(iat=NOW + LIMITS.leeway)), trust))


@pytest.mark.parametrize(
    ("nbf", "reason"),
    [
        pytest.param(NOW - DAY, None, id="past"),
        pytest.param(NOW + LIMITS.leeway, None, id="within-the-leeway"),
        pytest.param(NOW + 30 * DAY, Reason.ERR_NOT_YET_VALID, id="future"),
        pytest.param(NOW + 300 * DAY, Reason.ERR_CLAIMS, id="at-expiry-never-valid"),
        pytest.param("2026-12-01", Reason.ERR_CLAIMS, id="text"),
        pytest.param(True, Reason.ERR_CLAIMS, id="boolean"),
    ],
)
def test_eu_dcc_cwt_not_before_is_honoured_when_present(nbf, reason):
    """CWT ``nbf`` (claim 5) is rarely set in EU DCCs, but a code that says it is not valid yet
    is not valid yet (threats G33); a malformed or impossible one is refused."""
    signer = dsc()
    claims = dcc()
    claims[5] = int(nbf.timestamp()) if isinstance(nbf, datetime) else nbf
    verdict = verify(hc1(signer, claims), eu_trust({"eu-dcc-de": [signer]}))
    if reason is None:
        accepted(verdict)
    else:
        refused(verdict, reason)


def test_eu_dcc_numeric_dates_may_be_floats():
    signer = dsc()
    claims = dcc(iat=(NOW - DAY).timestamp() + 0.5, exp=(NOW + DAY).timestamp() + 0.25)
    accepted(verify(hc1(signer, claims), eu_trust({"eu-dcc-de": [signer]})))


def test_eu_dcc_code_issued_outside_the_certificate_validity_is_refused():
    signer = dsc(not_before=NOW - 100 * DAY, not_after=NOW - 10 * DAY)
    trust = eu_trust({"eu-dcc-de": [signer]})  # an expired certificate is still imported
    refused(verify(hc1(signer, dcc(iat=NOW - DAY)), trust), Reason.ERR_KEY_NOT_VALID)
    # What it signed while it was valid still verifies.
    accepted(verify(hc1(signer, dcc(iat=NOW - 20 * DAY)), trust))


# ------------------------------------------------------------------ EU DCC: CBOR date tags


def test_eu_dcc_sample_time_under_tag_0_is_read():
    signer = dsc()
    sample = cbor2.CBORTag(0, (NOW - DAY).strftime("%Y-%m-%dT%H:%M:%SZ"))
    verdict = accepted(
        verify(hc1(signer, dcc("t", entry=_test(sample))), eu_trust({"eu-dcc-de": [signer]}))
    )
    assert verdict.code is not None


def test_eu_dcc_sample_time_under_tag_1_is_read():
    signer = dsc()
    sample = cbor2.CBORTag(1, int((NOW - DAY).timestamp()))
    accepted(verify(hc1(signer, dcc("t", entry=_test(sample))), eu_trust({"eu-dcc-de": [signer]})))


@pytest.mark.parametrize(
    "value",
    [
        cbor2.CBORTag(32, "https://example.org"),
        cbor2.CBORTag(0, 1700000000),
        cbor2.CBORTag(1, "2026-11-22"),
    ],
    ids=["uri-tag", "tag0-number", "tag1-text"],
)
def test_eu_dcc_other_tags_and_ill_typed_date_tags_are_refused(value):
    signer = dsc()
    code = hc1(signer, dcc("t", entry=_test(value)))
    refused(verify(code, eu_trust({"eu-dcc-de": [signer]})), Reason.ERR_CBOR_TAG)


# ------------------------------------------------------------------ EU DCC: key usage

_USAGE_CASES = [
    # (extended key usages or None for no extension, kinds it may sign)
    (None, {"test", "vaccination", "recovery"}),
    ([HCERT + "1"], {"test"}),
    ([HCERT + "2"], {"vaccination"}),
    ([HCERT + "3"], {"recovery"}),
    ([HCERT_LONG + "1"], {"test"}),
    ([HCERT_LONG + "2"], {"vaccination"}),
    ([HCERT_LONG + "3"], {"recovery"}),
    ([HCERT + "1", HCERT_LONG + "2"], {"test", "vaccination"}),
    ([HCERT + "3", ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string], {"recovery"}),
    ([ExtendedKeyUsageOID.SERVER_AUTH.dotted_string], set()),  # other usages only: none
]


@pytest.mark.parametrize(
    ("ekus", "may_sign"),
    _USAGE_CASES,
    ids=[
        "none",
        "t",
        "v",
        "r",
        "t-long",
        "v-long",
        "r-long",
        "t+v",
        "r+clientAuth",
        "serverAuth-only",
    ],
)
@pytest.mark.parametrize("kind", ["test", "vaccination", "recovery"])
def test_eu_dcc_extended_key_usage_restricts_what_a_key_may_sign(ekus, may_sign, kind):
    signer = dsc(ekus=ekus)
    trust = eu_trust({"eu-dcc-de": [signer]})
    verdict = verify(hc1(signer, dcc(KIND_KEYS[kind])), trust)
    if kind in may_sign:
        accepted(verdict)
    else:
        refused(verdict, Reason.ERR_KEY_USAGE)
        assert kind in verdict.detail


# ------------------------------------------------------------------ EU DCC: key id collisions


def _colliding(issuer: str, signer: Dsc, kid_of: Dsc) -> IssuerKey:
    """``signer``'s key registered as if its certificate's SHA-256 began with the same 8 bytes as
    ``kid_of``'s: a 64-bit collision cannot be found in a test, and the registry compares only
    those 8 bytes with the key id."""
    key = certificate_key(IssuerId(issuer), signer.der)
    digest = hashlib.sha256(kid_of.der).digest()[:8] + hashlib.sha256(signer.der).digest()[8:]
    return replace(key, kid=certificate_kid(digest), certificate_sha256=digest)


def test_eu_dcc_kid_collision_across_countries_tries_every_key():
    first, second = dsc(name="AT DSC"), dsc(name="DE DSC")
    trust = eu_trust({"eu-dcc-at": [first], "eu-dcc-de": [_colliding("eu-dcc-de", second, first)]})
    assert trust.keys[(IssuerId("eu-dcc-de"), KeyId(_b64(first.kid)))].public_key != (
        trust.keys[(IssuerId("eu-dcc-at"), KeyId(_b64(first.kid)))].public_key
    )
    # Signed by the key tried second (issuers are tried in id order): still accepted.
    by_second = hc1(second, protected={1: ES256, 4: first.kid})
    verdict = accepted(verify(by_second, trust))
    assert verdict.provenance.issuer == "eu-dcc-de"
    assert verdict.code is not None
    assert verdict.code.region == "DE"
    by_first = accepted(verify(hc1(first, dcc(iss="AT")), trust))
    assert by_first.provenance.issuer == "eu-dcc-at"
    # A third key under the same kid verifies with neither.
    intruder = dsc(name="intruder")
    refused(verify(hc1(intruder, protected={1: ES256, 4: first.kid}), trust), Reason.ERR_SIGNATURE)


def test_eu_dcc_kid_collision_between_rsa_keys_of_different_sizes(rsa2048, rsa3072):
    big, small = dsc(rsa3072, name="AT DSC"), dsc(rsa2048, name="DE DSC")
    trust = eu_trust({"eu-dcc-at": [big], "eu-dcc-de": [_colliding("eu-dcc-de", small, big)]})
    verdict = verify(hc1(small, protected={1: PS256, 4: big.kid}), trust)
    accepted(verdict)
    assert verdict.provenance.issuer == "eu-dcc-de"


def test_eu_dcc_kid_collision_between_rsa_keys_when_the_signer_is_tried_first(rsa2048, rsa3072):
    # The same pair the other way round: the signer's key comes first and verifies.
    small, big = dsc(rsa2048, name="AT DSC"), dsc(rsa3072, name="DE DSC")
    trust = eu_trust({"eu-dcc-at": [small], "eu-dcc-de": [_colliding("eu-dcc-de", big, small)]})
    assert accepted(verify(hc1(small, dcc(iss="AT")), trust)).provenance.issuer == "eu-dcc-at"


def test_eu_dcc_kid_collision_between_algorithms_picks_by_the_header(rsa2048):
    ec_signer, rsa_signer = dsc(name="AT DSC"), dsc(rsa2048, name="DE DSC")
    trust = eu_trust(
        {"eu-dcc-at": [ec_signer], "eu-dcc-de": [_colliding("eu-dcc-de", rsa_signer, ec_signer)]}
    )
    by_rsa = hc1(rsa_signer, protected={1: PS256, 4: ec_signer.kid})
    assert accepted(verify(by_rsa, trust)).provenance.issuer == "eu-dcc-de"
    assert accepted(verify(hc1(ec_signer, dcc(iss="AT")), trust)).provenance.issuer == "eu-dcc-at"


def test_eu_dcc_kid_collision_within_one_country_is_refused_at_import():
    # One issuer holds one key per kid: a second certificate with the same kid is refused
    # (loudly, leaving the first key in place) rather than silently replacing it.
    first, second = dsc(), dsc()
    state = TrustState()
    state.add_profile(EU_PROFILE)
    add_issuer(
        state,
        Issuer(
            IssuerId("eu-dcc-de"), RegionCode("DE"), "EU DCC DE", EU_PROFILE.id, EU_PROFILE.version
        ),
    )
    state.add_key(certificate_key(IssuerId("eu-dcc-de"), first.der))
    with pytest.raises(ConfigurationInvalid) as refusal:
        state.add_key(_colliding("eu-dcc-de", second, first))
    assert refusal.value.reason is Reason.ERR_IDENTIFIER
    trust = state.snapshot()
    accepted(verify(hc1(first), trust))
    refused(verify(hc1(second, protected={1: ES256, 4: first.kid}), trust), Reason.ERR_SIGNATURE)


# ------------------------------------------------------------------ EU DCC: the issuer's country

_ABSENT = object()


def test_eu_dcc_iss_must_be_the_signers_country():
    """The eu-dcc profile reads iss (claim 1) as the issuing country and requires the signer's
    registered region: a DSC imported for DE vouches for German certificates only."""
    signer = dsc()
    trust = eu_trust({"eu-dcc-de": [signer]})
    accepted(verify(hc1(signer, dcc(iss="DE")), trust))
    verdict = verify(hc1(signer, dcc(iss="AT")), trust)
    refused(verdict, Reason.ERR_ISSUER_MISMATCH)
    assert verdict.status is Status.REJECTED
    assert verdict.provenance.issuer == "eu-dcc-de"  # the key verified; the claim did not match
    assert "(DE)" in verdict.detail
    # A payload of the wrong shape is refused for its shape first, whatever its iss.
    shapeless = dcc(iss="AT")
    del shapeless[-260]
    refused(verify(hc1(signer, shapeless), trust), Reason.ERR_SCHEMA)


@pytest.mark.parametrize(
    ("iss", "reason"),
    [
        ("de", Reason.ERR_ISSUER_MISMATCH),
        ("DE ", Reason.ERR_ISSUER_MISMATCH),
        ("ＤＥ", Reason.ERR_ISSUER_MISMATCH),
        ("D\u0395", Reason.ERR_ISSUER_MISMATCH),
        ("D\u200bE", Reason.ERR_ISSUER_MISMATCH),
        ("DEU", Reason.ERR_ISSUER_MISMATCH),
        ("", Reason.ERR_ISSUER_MISMATCH),
        (_ABSENT, Reason.ERR_SCHEMA),
        (None, Reason.ERR_SCHEMA),
        (276, Reason.ERR_SCHEMA),
        (b"DE", Reason.ERR_SCHEMA),
        (["DE"], Reason.ERR_SCHEMA),
    ],
    ids=[
        "lower-case",
        "trailing-space",
        "full-width",
        "greek-epsilon",
        "zero-width-space",
        "alpha-3",
        "empty",
        "absent",
        "null",
        "numeric-code",
        "bytes",
        "list",
    ],
)
def test_eu_dcc_iss_is_compared_exactly_and_required(iss, reason):
    """No case folding, trimming or normalisation (threats.md G37); a code that does not say
    which country issued it, or says it in something other than text, is refused (fail closed)."""
    signer = dsc()
    claims = dcc(iss=iss)
    if iss is _ABSENT:
        del claims[1]
    refused(verify(hc1(signer, claims), eu_trust({"eu-dcc-de": [signer]})), reason)


def test_eu_dcc_a_code_naming_another_country_is_not_rescued_by_that_countrys_key_id():
    """AT and DE share a key id. A code signed by DE's key that says AT is DE's code (the key,
    not the claim, decides the issuer) and is refused; AT's own codes still verify."""
    first, second = dsc(name="AT DSC"), dsc(name="DE DSC")
    trust = eu_trust({"eu-dcc-at": [first], "eu-dcc-de": [_colliding("eu-dcc-de", second, first)]})
    posing = verify(hc1(second, dcc(iss="AT"), protected={1: ES256, 4: first.kid}), trust)
    refused(posing, Reason.ERR_ISSUER_MISMATCH)
    assert posing.provenance.issuer == "eu-dcc-de"
    assert accepted(verify(hc1(first, dcc(iss="AT")), trust)).provenance.issuer == "eu-dcc-at"


# ------------------------------------------------------------------ SMART Health Cards

ISS = "https://shc.example.org/issuer"
SHC_ISSUER = IssuerId("shc-example")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_of(private: ec.EllipticCurvePrivateKey, **extra: Any) -> dict[str, Any]:
    numbers = private.public_key().public_numbers()
    jwk: dict[str, Any] = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64u(numbers.x.to_bytes(32, "big")),
        "y": b64u(numbers.y.to_bytes(32, "big")),
    }
    jwk.update(extra)
    return jwk


def thumbprint(private: ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace."""
    jwk = jwk_of(private)
    canonical = f'{{"crv":"{jwk["crv"]}","kty":"{jwk["kty"]}","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    return b64u(hashlib.sha256(canonical.encode("ascii")).digest())


def shc_jwk(private: ec.EllipticCurvePrivateKey, **extra: Any) -> dict[str, Any]:
    base = {"kid": thumbprint(private), "use": "sig", "alg": "ES256"}
    base.update(extra)
    return jwk_of(private, **base)


def _patient() -> dict[str, Any]:
    return {
        "fullUrl": "resource:0",
        "resource": {
            "resourceType": "Patient",
            "name": [{"family": "Anyperson", "given": ["Johnathan", "B."]}],
            "birthDate": "1951-01-20",
        },
    }


def _immunization(n: int) -> dict[str, Any]:
    return {
        "fullUrl": f"resource:{n}",
        "resource": {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "207"}]},
            "patient": {"reference": "resource:0"},
            "occurrenceDateTime": f"2026-0{n}-01",
            "performer": [{"actor": {"display": "ABC General Hospital"}}],
            "lotNumber": f"000000{n}",
        },
    }


def card_claims(
    *,
    iss: str | None = ISS,
    nbf: datetime | float = NOW - DAY,
    exp: datetime | None = None,
    rid: str | None = None,
    doses: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    vc: dict[str, Any] = {
        "type": ["https://smarthealth.cards#health-card", "https://smarthealth.cards#immunization"],
        "credentialSubject": {
            "fhirVersion": "4.0.1",
            "fhirBundle": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [_patient(), *(_immunization(n + 1) for n in range(doses))],
            },
        },
    }
    if rid is not None:
        vc["rid"] = rid
    claims: dict[str, Any] = {
        "nbf": nbf.timestamp() if isinstance(nbf, datetime) else nbf,
        "vc": vc,
    }
    if iss is not None:
        claims["iss"] = iss
    if exp is not None:
        claims["exp"] = int(exp.timestamp())
    claims.update(extra)
    return claims


def payload_bytes(claims: Mapping[str, Any]) -> bytes:
    return json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_NO_ZIP = object()


def compact_jws(
    private: ec.EllipticCurvePrivateKey,
    payload: bytes,
    *,
    kid: str | None = None,
    zip_header: object = "DEF",
    deflate: bool = True,
) -> str:
    header: dict[str, Any] = {"zip": zip_header} if zip_header is not _NO_ZIP else {}
    header |= {"alg": "ES256", "kid": kid if kid is not None else thumbprint(private)}
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw DEFLATE (RFC 1951)
    deflated = deflater.compress(payload) + deflater.flush() if deflate else payload
    signing_input = b64u(json.dumps(header, separators=(",", ":")).encode()) + "." + b64u(deflated)
    return signing_input + "." + b64u(_raw_ecdsa(private, signing_input.encode("ascii")))


def numeric(compact: str) -> str:
    return "shc:/" + "".join(f"{ord(c) - 45:02d}" for c in compact)


def card(
    private: ec.EllipticCurvePrivateKey, claims: Mapping[str, Any] | None = None, **kw: Any
) -> str:
    return numeric(
        compact_jws(private, payload_bytes(claims if claims is not None else card_claims()), **kw)
    )


def shc_state(*jwks: Mapping[str, Any]) -> TrustState:
    """The issuer registered with its iss URL as its name in codes, and its JWKS."""
    state = TrustState()
    state.add_profile(SHC_PROFILE)
    add_issuer(
        state,
        Issuer(
            SHC_ISSUER,
            RegionCode("US"),
            "SHC example issuer",
            SHC_PROFILE.id,
            SHC_PROFILE.version,
            code_name=ISS,
        ),
    )
    for entry in read_keys(json.dumps({"keys": list(jwks)}).encode()):
        state.add_key(
            IssuerKey(
                SHC_ISSUER, entry.kid, entry.public_key, certificate_sha256=entry.certificate_sha256
            )
        )
    return state


@pytest.fixture(scope="module")
def shc_key() -> ec.EllipticCurvePrivateKey:
    return p256()


@pytest.fixture(scope="module")
def shc_trust(shc_key) -> TrustSnapshot:
    return shc_state(shc_jwk(shc_key)).snapshot()


# ------------------------------------------------------------------ SHC: the numeric text


def test_shc_numeric_card_round_trips_to_green(shc_key, shc_trust):
    compact = compact_jws(shc_key, payload_bytes(card_claims()))
    text = numeric(compact)
    assert text[5:].isdigit()
    assert textform.decode_numeric(text, "shc:/", LIMITS.max_numeric_jws_chars) == compact
    verdict = accepted(verify(text, shc_trust))
    assert verdict.code is not None
    assert (verdict.code.region, verdict.code.issuer) == ("US", "shc-example")
    assert verdict.code.masked_identity == "A*** J***, 1951"
    assert verdict.provenance.kid == thumbprint(shc_key)
    assert verdict.code.issued_at.timestamp() == (NOW - DAY).timestamp()
    assert verdict.code.expires_at.timestamp() == (NOW - DAY + 365 * DAY).timestamp()


def test_shc_numeric_pairs_cover_dash_to_z():
    # ord('-') - 45 = 00 ... ord('z') - 45 = 77: both ends are characters of a compact JWS.
    assert textform.decode_numeric("shc:/0077", "shc:/", LIMITS.max_numeric_jws_chars) == "-z"
    assert (
        textform.decode_numeric(
            "shc:/" + "".join(f"{ord(c) - 45:02d}" for c in "eyJ.-_"),
            "shc:/",
            LIMITS.max_numeric_jws_chars,
        )
        == "eyJ.-_"
    )


def _tamper(text: str, how: str) -> str:
    digits = text[5:]
    if how == "odd":
        return text[:-1]
    if how == "pair-78":
        return "shc:/78" + digits[2:]
    if how == "pair-99":
        return "shc:/" + digits[:10] + "99" + digits[12:]
    if how == "letter":
        return "shc:/" + digits[:10] + "5a" + digits[12:]
    if how == "space":
        return "shc:/" + digits[:10] + " 5" + digits[12:]
    if how == "sign":
        return "shc:/+" + digits[1:]
    if how == "empty":
        return "shc:/"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["odd", "pair-78", "pair-99", "letter", "space", "sign", "empty"])
def test_shc_malformed_numeric_text_is_refused(how, shc_key, shc_trust):
    refused(verify(_tamper(card(shc_key), how), shc_trust), Reason.ERR_NUMERIC)


@pytest.mark.parametrize("chunks", ["1/2/", "2/2/", "1/1/"])
def test_shc_chunked_numeric_codes_are_refused_as_deprecated(chunks, shc_key, shc_trust):
    text = card(shc_key)
    refused(verify("shc:/" + chunks + text[5:], shc_trust), Reason.ERR_CHUNKS)


# ------------------------------------------------------------------ SHC: claims


def test_shc_one_dose_is_yellow(shc_key, shc_trust):
    accepted(verify(card(shc_key, card_claims(doses=1)), shc_trust), Colour.YELLOW)


def test_shc_issuer_is_matched_by_its_code_name_exactly(shc_key, shc_trust):
    for iss in ("https://shc.example.org/other", ISS + "/", ISS.upper(), "shc-example"):
        refused(verify(card(shc_key, card_claims(iss=iss)), shc_trust), Reason.ERR_ISSUER_UNKNOWN)
    refused(verify(card(shc_key, card_claims(iss=None)), shc_trust), Reason.ERR_SCHEMA)


def test_shc_times(shc_key, shc_trust):
    # nbf in the future (beyond the leeway) is not yet valid.
    refused(
        verify(card(shc_key, card_claims(nbf=NOW + 2 * LIMITS.leeway)), shc_trust),
        Reason.ERR_NOT_YET_VALID,
    )
    # exp in the past, and exp exactly now (RFC 7519: exclusive), are expired.
    refused(
        verify(card(shc_key, card_claims(exp=NOW - timedelta(seconds=1))), shc_trust),
        Reason.ERR_EXPIRED,
    )
    refused(verify(card(shc_key, card_claims(exp=NOW)), shc_trust), Reason.ERR_EXPIRED)
    accepted(verify(card(shc_key, card_claims(exp=NOW + timedelta(seconds=1))), shc_trust))
    # Without exp a card is valid for 365 days from nbf.
    accepted(verify(card(shc_key, card_claims(nbf=NOW - 364 * DAY)), shc_trust))
    refused(verify(card(shc_key, card_claims(nbf=NOW - 366 * DAY)), shc_trust), Reason.ERR_EXPIRED)
    # nbf as a float NumericDate (as real cards write it).
    accepted(verify(card(shc_key, card_claims(nbf=(NOW - DAY).timestamp() + 0.123)), shc_trust))


def test_shc_card_signed_by_an_unregistered_key_is_refused(shc_key, shc_trust):
    stranger = p256()
    refused(verify(card(stranger), shc_trust), Reason.ERR_KEY_UNKNOWN)
    refused(verify(card(stranger, kid=thumbprint(shc_key)), shc_trust), Reason.ERR_SIGNATURE)


def test_shc_decompressed_size_over_the_cap_is_refused(shc_key, shc_trust):
    big = card_claims(pad=" " * (LIMITS.max_decompressed_bytes + 1))
    refused(verify(card(shc_key, big), shc_trust), Reason.ERR_DECOMPRESSED_TOO_LARGE)


def test_shc_decompressed_size_cap_is_exact(shc_key, shc_trust):
    payload = payload_bytes(card_claims(pad="x" * 1500))
    text = numeric(compact_jws(shc_key, payload))
    accepted(verify(text, shc_trust, limits=Limits(max_decompressed_bytes=len(payload))))
    refused(
        verify(text, shc_trust, limits=Limits(max_decompressed_bytes=len(payload) - 1)),
        Reason.ERR_DECOMPRESSED_TOO_LARGE,
    )


# ------------------------------------------------------------------ SHC: keys


def test_shc_key_ids_are_rfc7638_thumbprints(shc_key):
    (entry,) = read_keys(json.dumps({"keys": [shc_jwk(shc_key)]}).encode())
    assert entry.kid == thumbprint(shc_key) == entry.public_key.thumbprint()
    # A key registered under any other id is refused by the profile's key-id rule.
    state = shc_state(shc_jwk(shc_key))
    other = p256()
    (wrong,) = read_keys(json.dumps(shc_jwk(other, kid="my-key-1")).encode())
    with pytest.raises(ConfigurationInvalid) as refusal:
        state.add_key(IssuerKey(SHC_ISSUER, wrong.kid, wrong.public_key))
    assert refusal.value.reason is Reason.ERR_IDENTIFIER


@pytest.mark.parametrize(
    "key_ops",
    [["sign"], [], ["encrypt", "wrapKey"], "verify", None],
    ids=["sign", "empty", "other", "not-a-list", "null"],
)
def test_shc_jwk_whose_key_ops_do_not_allow_verify_is_refused(key_ops, shc_key):
    with pytest.raises(ConfigurationInvalid) as refusal:
        read_keys(json.dumps({"keys": [shc_jwk(shc_key, key_ops=key_ops)]}).encode())
    assert refusal.value.reason is Reason.ERR_KEY_WEAK


def test_shc_jwk_with_key_ops_verify_is_admitted(shc_key):
    jwk = shc_jwk(shc_key, key_ops=["verify"])
    accepted(verify(card(shc_key), shc_state(jwk).snapshot()))


def _x5c(der: bytes) -> list[str]:
    return [base64.b64encode(der).decode("ascii")]


def test_shc_jwk_with_an_x5c_of_another_key_is_refused(shc_key):
    other = p256()
    jwk = shc_jwk(shc_key, x5c=_x5c(_certificate(other)))
    with pytest.raises(ConfigurationInvalid) as refusal:
        read_keys(json.dumps({"keys": [jwk]}).encode())
    assert refusal.value.reason is Reason.ERR_KEY_WEAK


def test_shc_jwk_with_a_matching_x5c_is_admitted_even_if_the_certificate_expired(shc_key):
    der = _certificate(shc_key, not_before=NOW - 800 * DAY, not_after=NOW - 400 * DAY)
    jwk = shc_jwk(shc_key, x5c=_x5c(der))
    (entry,) = read_keys(json.dumps({"keys": [jwk]}).encode())
    assert entry.certificate_sha256 == hashlib.sha256(der).digest()
    assert entry.not_before is None
    assert entry.not_after is None
    accepted(verify(card(shc_key), shc_state(jwk).snapshot()))


# ------------------------------------------------------------------ SHC: revocation


def crl(kid: str, ctr: int, rids: Iterable[str]) -> bytes:
    return json.dumps({"kid": kid, "method": "rid", "ctr": ctr, "rids": list(rids)}).encode()


def test_shc_revocation_list_with_and_without_a_cut_off(shc_key):
    kid = thumbprint(shc_key)
    cut_off = NOW - 10 * DAY
    listed_kid, revocations = read_revocation_list(
        crl(kid, 1, ["all-of-them", f"before-cut.{int(cut_off.timestamp())}"])
    )
    assert listed_kid == kid
    assert revocations.counter == 1
    assert revocations.ids == {"all-of-them": None, "before-cut": cut_off}
    state = shc_state(shc_jwk(shc_key))
    state.set_revocations(SHC_ISSUER, listed_kid, revocations)
    trust = state.snapshot()

    def at(rid: str | None, nbf: datetime) -> Verdict:
        return verify(card(shc_key, card_claims(rid=rid, nbf=nbf)), trust)

    refused(at("all-of-them", NOW - DAY), Reason.ERR_REVOKED)
    refused(at("all-of-them", NOW - 100 * DAY), Reason.ERR_REVOKED)
    refused(at("before-cut", cut_off - timedelta(seconds=1)), Reason.ERR_REVOKED)
    accepted(at("before-cut", cut_off))  # issued at the cut-off: not before it
    accepted(at("before-cut", cut_off + DAY))
    accepted(at("someone-else", NOW - DAY))
    accepted(at(None, NOW - DAY))


def test_shc_revocation_list_applies_to_its_own_key_only(shc_key):
    second = p256()
    state = shc_state(shc_jwk(shc_key), shc_jwk(second))
    state.set_revocations(SHC_ISSUER, *read_revocation_list(crl(thumbprint(shc_key), 1, ["r1"])))
    trust = state.snapshot()
    refused(verify(card(shc_key, card_claims(rid="r1")), trust), Reason.ERR_REVOKED)
    accepted(verify(card(second, card_claims(rid="r1")), trust))


def test_shc_revocation_counter_must_grow(shc_key):
    kid = thumbprint(shc_key)
    state = shc_state(shc_jwk(shc_key))
    state.set_revocations(SHC_ISSUER, *read_revocation_list(crl(kid, 5, ["r1"])))
    revoked = card(shc_key, card_claims(rid="r1"))
    # The same or a lower counter is refused, and the registered list stays in force.
    for ctr in (5, 4, 0):
        with pytest.raises(ConfigurationInvalid) as refusal:
            state.set_revocations(SHC_ISSUER, *read_revocation_list(crl(kid, ctr, [])))
        assert refusal.value.reason is Reason.ERR_VERSION
    refused(verify(revoked, state.snapshot()), Reason.ERR_REVOKED)
    # A newer list replaces the old one entirely (here: r1 is no longer listed).
    state.set_revocations(SHC_ISSUER, *read_revocation_list(crl(kid, 6, ["r2"])))
    trust = state.snapshot()
    assert trust.revocations[(SHC_ISSUER, KeyId(kid))].counter == 6
    accepted(verify(revoked, trust))
    refused(verify(card(shc_key, card_claims(rid="r2")), trust), Reason.ERR_REVOKED)


def test_shc_revocation_list_for_an_unregistered_key_is_refused(shc_key):
    state = shc_state(shc_jwk(shc_key))
    with pytest.raises(ConfigurationInvalid) as refusal:
        state.set_revocations(SHC_ISSUER, *read_revocation_list(crl(thumbprint(p256()), 1, ["r1"])))
    assert refusal.value.reason is Reason.ERR_IDENTIFIER


@pytest.mark.parametrize(
    "document",
    [
        {"kid": "k", "method": "other", "ctr": 1, "rids": []},
        {"kid": "k", "ctr": 1, "rids": []},
        {"kid": "", "method": "rid", "ctr": 1, "rids": []},
        {"kid": "k", "method": "rid", "ctr": -1, "rids": []},
        {"kid": "k", "method": "rid", "ctr": True, "rids": []},
        {"kid": "k", "method": "rid", "ctr": 1.5, "rids": []},
        {"kid": "k", "method": "rid", "ctr": 1, "rids": "r1"},
        {"kid": "k", "method": "rid", "ctr": 1, "rids": [1]},
        {"kid": "k", "method": "rid", "ctr": 1, "rids": [""]},
        {"kid": "k", "method": "rid", "ctr": 1, "rids": ["r1.12x"]},
        {"kid": "k", "method": "rid", "ctr": 1, "rids": ["r1.-5"]},
        {"kid": "k", "method": "rid", "ctr": 1, "rids": [".1700000000"]},
    ],
    ids=[
        "method",
        "no-method",
        "empty-kid",
        "negative-ctr",
        "bool-ctr",
        "float-ctr",
        "rids-text",
        "rid-number",
        "rid-empty",
        "stamp-letters",
        "stamp-negative",
        "stamp-without-rid",
    ],
)
def test_shc_malformed_revocation_lists_are_refused(document):
    with pytest.raises(ConfigurationInvalid) as refusal:
        read_revocation_list(json.dumps(document).encode())
    assert refusal.value.reason is Reason.ERR_IDENTIFIER


# ------------------------------------------------------------------ EU DCC: what a trust list holds


@pytest.mark.parametrize("form", ["jwk-with-x5c", "jwks-with-x5c", "public-key-pem"])
def test_eu_dcc_signer_keys_come_only_from_certificates(form):
    """A DSC wrapped in a JWK (with the certificate in x5c) or given as a bare public key would
    lose what the certificate says: its validity window and the kinds it may sign. Only the
    X.509 certificate itself is imported."""
    signer = dsc(ekus=[f"{HCERT}1"], not_before=NOW - 100 * DAY, not_after=NOW - 10 * DAY)
    assert isinstance(signer.private, ec.EllipticCurvePrivateKey)
    jwk = jwk_of(signer.private, kid=_b64(signer.kid), use="sig", x5c=_x5c(signer.der))
    data = {
        "jwk-with-x5c": json.dumps(jwk).encode(),
        "jwks-with-x5c": json.dumps({"keys": [jwk, jwk_of(p256(), kid="other")]}).encode(),
        "public-key-pem": signer.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }[form]
    with pytest.raises(ConfigurationInvalid) as refused:
        certificate_key(IssuerId("eu-dcc-de"), data)
    assert refused.value.reason is Reason.ERR_KEY_WEAK
    assert "X.509 certificate" in str(refused.value)
    imported = certificate_key(IssuerId("eu-dcc-de"), signer.der)
    assert imported.usage == frozenset({"test"})
    assert imported.not_after == NOW - 10 * DAY


@pytest.mark.parametrize(
    ("zip_header", "deflate"),
    [
        pytest.param(_NO_ZIP, True, id="deflated-without-zip"),
        pytest.param(_NO_ZIP, False, id="plain-without-zip"),
        pytest.param("def", True, id="lower-case"),
        pytest.param("GZIP", True, id="gzip"),
        pytest.param(None, True, id="null"),
    ],
)
def test_shc_payload_must_say_zip_def(zip_header, deflate, shc_key):
    """The profile says compression = "DEF": a card whose header does not say exactly that is
    refused before its payload is read, whatever the payload holds."""
    code = card(shc_key, card_claims(doses=0), zip_header=zip_header, deflate=deflate)
    refused(verify(code, shc_state(shc_jwk(shc_key)).snapshot()), Reason.ERR_HEADER)


def test_shc_numeric_code_holds_at_most_one_qr_codes_worth(shc_key):
    """A single-QR card's JWS is at most 1,195 characters: the numeric text of exactly that
    many decodes, one more is ERR_TOO_LARGE before any digit is read; a real card padded with
    incompressible data past the bound is refused the same way."""
    cap = LIMITS.max_numeric_jws_chars
    assert len(textform.decode_numeric("shc:/" + "56" * cap, "shc:/", cap)) == cap
    with pytest.raises(CodeRejected) as too_long:
        textform.decode_numeric("shc:/" + "56" * (cap + 1), "shc:/", cap)
    assert too_long.value.reason is Reason.ERR_TOO_LARGE
    padded = card(shc_key, card_claims(note=base64.b64encode(os.urandom(900)).decode()))
    assert len(padded) > len("shc:/") + 2 * cap
    refused(verify(padded, shc_state(shc_jwk(shc_key)).snapshot()), Reason.ERR_TOO_LARGE)
