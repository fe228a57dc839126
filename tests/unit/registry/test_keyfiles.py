"""gateway.registry.keyfiles.read_keys: JWKS, JWK, PEM and X.509 key files (threats.md H39).

Also runs the key sets of Wycheproof's ``json_web_key_test.json`` through ``read_keys``: every
``private`` set (all of them hold private or symmetric key material) must be refused, and each
``public`` set must be admitted exactly when all of its group's tests are ``valid``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import crypto
from gateway.crypto import Algorithm, PrivateKey, pki
from gateway.errors import ConfigurationInvalid
from gateway.model import Reason
from gateway.registry.keyfiles import MAX_KEY_FILE_BYTES, MAX_KEYS_PER_FILE, read_keys
from tests.conftest import CONFORMANCE, conformance


def _jwk(algorithm: Algorithm, kid: str | None, **extra: Any) -> dict[str, Any]:
    key = PrivateKey.generate(algorithm).public_key()
    out: dict[str, Any] = key.jwk()
    if kid is not None:
        out["kid"] = kid
    out.update(extra)
    return out


def _bytes(document: object) -> bytes:
    return json.dumps(document).encode("utf-8")


def _refused(reason: Reason, data: bytes, **kwargs: Any) -> None:
    with pytest.raises(ConfigurationInvalid) as e:
        read_keys(data, **kwargs)
    assert e.value.reason is reason, str(e.value)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(private: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return pki.self_signed(
        private,
        "issuer signer",
        not_before=datetime(2026, 1, 1, tzinfo=UTC),
        not_after=datetime(2027, 6, 30, 12, tzinfo=UTC),
    )


def _public_pem(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ------------------------------------------------------------------ accepted files


def test_jwks_with_two_keys() -> None:
    first, second = _jwk(Algorithm.ES256, "k1"), _jwk(Algorithm.EDDSA, "k2", use="sig")
    entries = read_keys(_bytes({"keys": [first, second]}))
    assert [e.kid for e in entries] == ["k1", "k2"]
    assert entries[0].public_key == crypto.load_jwk(first)
    assert entries[1].public_key == crypto.load_jwk({k: second[k] for k in ("kty", "crv", "x")})
    assert [e.public_key.algorithm for e in entries] == [Algorithm.ES256, Algorithm.EDDSA]
    assert all(e.not_before is None and e.not_after is None for e in entries)


def test_jwks_with_leading_whitespace_and_extra_members() -> None:
    jwk = _jwk(Algorithm.ES384, "k1", alg="ES384", key_ops=["verify"])
    entries = read_keys(b"\n  " + _bytes({"keys": [jwk], "issuer": "hangzhou"}))
    assert entries[0].public_key.algorithm is Algorithm.ES384


def test_single_jwk() -> None:
    jwk = _jwk(Algorithm.ES256, "only")
    (entry,) = read_keys(_bytes(jwk))
    assert entry.kid == "only"
    assert entry.public_key == crypto.load_jwk(jwk)


def test_single_jwk_without_kid_refused() -> None:
    _refused(Reason.ERR_IDENTIFIER, _bytes(_jwk(Algorithm.ES256, None)))


def test_rsa_jwk_needs_an_algorithm() -> None:
    jwk = _jwk(Algorithm.PS256, "rsa")
    _refused(Reason.ERR_KEY_WEAK, _bytes({"keys": [jwk]}))
    (entry,) = read_keys(_bytes({"keys": [jwk]}), algorithm=Algorithm.PS256)
    assert entry.public_key.algorithm is Algorithm.PS256
    (entry,) = read_keys(_bytes({"keys": [{**jwk, "alg": "PS256"}]}))
    assert entry.public_key.algorithm is Algorithm.PS256


def test_requested_algorithm_applies_to_every_key() -> None:
    keys = [_jwk(Algorithm.ES256, "a"), _jwk(Algorithm.ES384, "b")]
    _refused(Reason.ERR_KEY_WEAK, _bytes({"keys": keys}), algorithm=Algorithm.ES256)


def test_pem_with_kid(ec_key: ec.EllipticCurvePrivateKey) -> None:
    (entry,) = read_keys(_public_pem(ec_key), kid="pem-1")
    assert entry.kid == "pem-1"
    assert entry.public_key == crypto.load_pem(_public_pem(ec_key))
    assert entry.not_before is None
    assert entry.not_after is None
    (entry,) = read_keys(b"\r\n" + _public_pem(ec_key), kid="pem-1", algorithm=Algorithm.ES256)
    assert entry.public_key.algorithm is Algorithm.ES256
    _refused(Reason.ERR_KEY_WEAK, _public_pem(ec_key), kid="pem-1", algorithm=Algorithm.ES384)


def test_pem_without_kid_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    _refused(Reason.ERR_IDENTIFIER, _public_pem(ec_key))


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_x509_with_kid_copies_validity(
    ec_key: ec.EllipticCurvePrivateKey, encoding: serialization.Encoding
) -> None:
    data = _certificate(ec_key).public_bytes(encoding)
    (entry,) = read_keys(data, kid="dsc-1")
    assert entry.kid == "dsc-1"
    assert entry.public_key == crypto.load_pem(_public_pem(ec_key))
    assert entry.not_before == datetime(2026, 1, 1, tzinfo=UTC)
    assert entry.not_after == datetime(2027, 6, 30, 12, tzinfo=UTC)


def test_x509_without_kid_gets_the_eu_dcc_key_id(ec_key: ec.EllipticCurvePrivateKey) -> None:
    certificate = _certificate(ec_key)
    der = certificate.public_bytes(serialization.Encoding.DER)
    (entry,) = read_keys(certificate.public_bytes(serialization.Encoding.PEM))
    digest = hashlib.sha256(der).digest()
    assert entry.kid == base64.b64encode(digest[:8]).decode()
    assert entry.certificate_sha256 == digest
    assert entry.usage is None  # no EU DCC key usage: every kind


def test_a_pem_public_key_without_kid_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _refused(Reason.ERR_IDENTIFIER, pem)


def test_max_keys_per_file_accepted() -> None:
    keys = [_jwk(Algorithm.EDDSA, f"k{i}") for i in range(MAX_KEYS_PER_FILE)]
    assert len(read_keys(_bytes({"keys": keys}))) == MAX_KEYS_PER_FILE == 64


# ------------------------------------------------------------------ refused files


@pytest.mark.parametrize(
    "kid",
    [None, "", 7, ["k"], True],
    ids=["missing", "empty", "int", "list", "bool"],
)
def test_jwks_entry_without_usable_kid_refused(kid: object) -> None:
    bad = _jwk(Algorithm.ES256, None)
    if kid is not None:
        bad["kid"] = kid
    _refused(Reason.ERR_IDENTIFIER, _bytes({"keys": [_jwk(Algorithm.ES256, "ok"), bad]}))


def test_duplicate_kid_refused() -> None:
    keys = [_jwk(Algorithm.ES256, "same"), _jwk(Algorithm.EDDSA, "same")]
    _refused(Reason.ERR_IDENTIFIER, _bytes({"keys": keys}))


def test_duplicate_kid_of_the_same_key_refused() -> None:
    jwk = _jwk(Algorithm.ES256, "same")
    _refused(Reason.ERR_IDENTIFIER, _bytes({"keys": [jwk, dict(jwk)]}))


@pytest.mark.parametrize(
    "use", ["enc", "SIG", "", 1, ["sig"]], ids=["enc", "SIG", "empty", "int", "list"]
)
def test_use_other_than_sig_refused(use: object) -> None:
    _refused(Reason.ERR_KEY_WEAK, _bytes({"keys": [_jwk(Algorithm.ES256, "k", use=use)]}))


def test_more_than_max_keys_refused() -> None:
    keys = [_jwk(Algorithm.EDDSA, f"k{i}") for i in range(MAX_KEYS_PER_FILE + 1)]
    _refused(Reason.ERR_KEY_WEAK, _bytes({"keys": keys}))


@pytest.mark.parametrize(
    "document",
    [{"keys": []}, {"keys": {}}, {"keys": "k"}, {"keys": None}, {"keys": ["not an object"]}],
    ids=["empty_list", "object", "string", "null", "entry_not_object"],
)
def test_malformed_jwks_refused(document: object) -> None:
    _refused(Reason.ERR_KEY_WEAK, _bytes(document))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", Reason.ERR_KEY_WEAK),
        (b'{"keys": [}', Reason.ERR_KEY_WEAK),
        (b'{"keys": [], "keys": []}', Reason.ERR_KEY_WEAK),  # duplicate member
        (b'{"a": NaN}', Reason.ERR_KEY_WEAK),
        (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", Reason.ERR_KEY_WEAK),  # too deep
        (b'{"keys": [{"kid": "a", "kty": "EC"}]} trailing', Reason.ERR_KEY_WEAK),
        (b'{"kid": "\xff"}', Reason.ERR_KEY_WEAK),  # not UTF-8
        (b"{}", Reason.ERR_IDENTIFIER),  # a JWK without kid
        (b"\xef\xbb\xbf{}", Reason.ERR_KEY_WEAK),  # BOM: not JSON, and not a certificate
    ],
    ids=[
        "truncated",
        "bad_array",
        "duplicate_member",
        "nan",
        "deep",
        "trailing",
        "not_utf8",
        "empty_object",
        "bom",
    ],
)
def test_non_json_garbage_refused(data: bytes, reason: Reason) -> None:
    _refused(reason, data)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x00\x01\x02", b"[1, 2]", b"-----BEGIN CERTIFICATE-----\nAA==\n"],
    ids=["empty", "text", "binary", "json_array", "bad_certificate"],
)
def test_non_key_garbage_refused(data: bytes) -> None:
    _refused(Reason.ERR_KEY_WEAK, data)  # not a certificate (whose key id could be derived)
    _refused(Reason.ERR_KEY_WEAK, data, kid="k")


def test_too_large_file_refused() -> None:
    padding = " " * (MAX_KEY_FILE_BYTES + 1)
    _refused(Reason.ERR_KEY_WEAK, _bytes({"keys": [_jwk(Algorithm.ES256, "k")]}) + padding.encode())


@pytest.mark.parametrize("member", ["d", "k", "p"])
def test_jwks_with_a_private_key_refused(member: str) -> None:
    private = _jwk(Algorithm.ES256, "priv", **{member: "AQAB"})
    keys = [_jwk(Algorithm.ES256, "pub"), private]
    _refused(Reason.ERR_KEY_PRIVATE, _bytes({"keys": keys}))
    _refused(Reason.ERR_KEY_PRIVATE, _bytes(private))


def test_private_pem_refused() -> None:
    pem = PrivateKey.generate(Algorithm.ES256).pem()
    _refused(Reason.ERR_KEY_PRIVATE, pem, kid="k")


def test_certificate_bundled_with_private_key_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = _certificate(ec_key).public_bytes(serialization.Encoding.PEM) + ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _refused(Reason.ERR_KEY_PRIVATE, bundle, kid="k")


def test_weak_key_in_jwks_refused() -> None:
    identity = {"kty": "OKP", "crv": "Ed25519", "x": "AQ" + "A" * 41, "kid": "id"}
    _refused(Reason.ERR_KEY_WEAK, _bytes({"keys": [_jwk(Algorithm.EDDSA, "ok"), identity]}))


@pytest.mark.parametrize("case", ["use_enc", "no_kid", "duplicate_kid"])
def test_private_key_reason_is_not_masked(case: str) -> None:
    """H39: a JWK containing d is ERR_KEY_PRIVATE, whatever else is wrong with the file (the
    operator must learn that a private key left their hands)."""
    private = _jwk(Algorithm.ES256, "k", d="AQAB")
    if case == "use_enc":
        data = _bytes({"keys": [{**private, "use": "enc"}]})
    elif case == "no_kid":
        data = _bytes({"keys": [{k: v for k, v in private.items() if k != "kid"}]})
    else:
        data = _bytes({"keys": [_jwk(Algorithm.ES256, "k"), private]})
    with pytest.raises(ConfigurationInvalid) as e:
        read_keys(data)
    assert e.value.reason is Reason.ERR_KEY_PRIVATE, str(e.value)


# ------------------------------------------------------------------ Wycheproof JWK sets

JWK_FILE = "json_web_key_test.json"


def _jwk_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = json.loads(
        (CONFORMANCE / "wycheproof" / JWK_FILE).read_text("utf-8")
    )["testGroups"]
    return groups


def _jwk_params(which: str) -> list[Any]:
    if not (CONFORMANCE / "wycheproof" / JWK_FILE).is_file():
        return [pytest.param(None, id="wycheproof-data-absent")]
    params = []
    for group in _jwk_groups():
        if which not in group:
            continue
        first = group["tests"][0]["tcId"]
        params.append(pytest.param(group, id=f"tc{first}-{group['comment']}"))
    return params


@pytest.mark.parametrize("group", _jwk_params("private"))
def test_wycheproof_private_jwks_refused(group: dict[str, Any] | None) -> None:
    """Every private set holds private or symmetric material (d, k, ...): refused as private."""
    conformance("wycheproof", JWK_FILE)
    assert group is not None
    keyset = group["private"]
    assert any(set(k) & {"d", "k"} for k in keyset["keys"])
    with pytest.raises(ConfigurationInvalid) as e:
        read_keys(_bytes(keyset))
    assert e.value.reason is Reason.ERR_KEY_PRIVATE, str(e.value)
    with pytest.raises(ConfigurationInvalid) as e:
        read_keys(_bytes(keyset), algorithm=Algorithm.ES256)
    assert e.value.reason is Reason.ERR_KEY_PRIVATE, str(e.value)


@pytest.mark.parametrize("group", _jwk_params("public"))
def test_wycheproof_public_jwks(group: dict[str, Any] | None) -> None:
    """A public set is admitted exactly when its group's tests are all valid."""
    conformance("wycheproof", JWK_FILE)
    assert group is not None
    valid = all(t["result"] == "valid" for t in group["tests"])
    data = _bytes(group["public"])
    if valid:
        entries = read_keys(data)
        assert [e.kid for e in entries] == [k["kid"] for k in group["public"]["keys"]]
    else:
        with pytest.raises(ConfigurationInvalid) as e:
            read_keys(data)
        assert e.value.reason is Reason.ERR_KEY_WEAK, str(e.value)


def test_wycheproof_jwk_file_has_the_flagged_sets() -> None:
    """The MixedKeySet and DuplicateKid sets exist and are among the refused private sets."""
    conformance("wycheproof", JWK_FILE)
    groups = _jwk_groups()
    flags = {f for g in groups for t in g["tests"] for f in t["flags"]}
    assert {"MixedKeySet", "DuplicateKid"} <= flags
    duplicate = [g for g in groups if "DuplicateKid" in g["tests"][0]["flags"]]
    assert duplicate
    for group in duplicate:
        kids = [k["kid"] for k in group["private"]["keys"]]
        assert len(set(kids)) < len(kids)
        with pytest.raises(ConfigurationInvalid):
            read_keys(_bytes(group["private"]))
