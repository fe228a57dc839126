"""Key admission (threats.md H39, "Ed25519 key admission check") and signing in gateway.crypto.

Admission refuses anything unsafe with ``ConfigurationInvalid`` and a stable reason; signing and
verification round-trip for every algorithm, and verification never repairs a signature
(F30: wrong length or DER is ``ERR_SIG_ENCODING``), accepts ECDSA high-S (pitfall 3), rejects
Ed25519 ``S + L`` (F31) and PSS/PKCS#1 parameter mismatches (F32).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway import crypto
from gateway.codecs import base64url
from gateway.crypto import Algorithm, PrivateKey, pki
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.model import Reason

# ------------------------------------------------------------------ helpers

P_ED25519 = 2**255 - 19
L_ED25519 = 2**252 + 27742317777372353535851937790883648493
N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
N_P384 = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
    "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    16,
)
ORDERS = {Algorithm.ES256: (N_P256, 32), Algorithm.ES384: (N_P384, 48)}


def _spki_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _spki_pem(key: Any) -> str:
    pem: bytes = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def _b64(value: bytes) -> str:
    return base64url.encode(value)


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _rsa_public(bits: int, e: int = 65537) -> rsa.RSAPublicKey:
    """An RSA public key with an odd ``bits``-bit modulus (not a product of primes: admission
    looks only at size and exponent, and this is much faster than generating a key)."""
    n = (1 << (bits - 1)) | secrets.randbits(bits - 1) | 1
    return rsa.RSAPublicNumbers(e, n).public_key()


def _refused(reason: Reason, call: Any, *args: Any) -> None:
    with pytest.raises(ConfigurationInvalid) as e:
        call(*args)
    assert e.value.reason is reason, str(e.value)


@pytest.fixture(scope="module")
def keys() -> dict[Algorithm, PrivateKey]:
    return {alg: PrivateKey.generate(alg) for alg in Algorithm}


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# ------------------------------------------------------------------ Ed25519 admission

# The eight points of order dividing 8 ("Taming the many EdDSAs", Chalkias et al. 2020), as
# canonical little-endian encodings (y, with the sign of x in the top bit).
SMALL_ORDER = {
    "identity": "0100000000000000000000000000000000000000000000000000000000000000",
    "order2_y=-1": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "order4_all_zero": "0000000000000000000000000000000000000000000000000000000000000000",
    "order4_x_neg": "0000000000000000000000000000000000000000000000000000000000000080",
    "order8_a": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "order8_a_neg": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "order8_b": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "order8_b_neg": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
}
_SIGN = 1 << 255
# Non-canonical encodings of small-order points: x = 0 with the sign bit set, and y >= p.
NON_CANONICAL = {
    "identity_sign_set": (1 | _SIGN).to_bytes(32, "little").hex(),
    "order2_sign_set": ((P_ED25519 - 1) | _SIGN).to_bytes(32, "little").hex(),
    "y=p": P_ED25519.to_bytes(32, "little").hex(),
    "y=p_sign_set": (P_ED25519 | _SIGN).to_bytes(32, "little").hex(),
    "y=p+1": (P_ED25519 + 1).to_bytes(32, "little").hex(),
    "y=p+1_sign_set": ((P_ED25519 + 1) | _SIGN).to_bytes(32, "little").hex(),
    # y = 3 is a point of large order; y = p + 3 is its non-canonical encoding
    "y=p+3": (P_ED25519 + 3).to_bytes(32, "little").hex(),
    "y=p+3_sign_set": ((P_ED25519 + 3) | _SIGN).to_bytes(32, "little").hex(),
}
WEAK_ED25519 = {**SMALL_ORDER, **NON_CANONICAL}


def test_small_order_encodings_are_distinct() -> None:
    assert len(set(SMALL_ORDER.values())) == 8
    assert not set(SMALL_ORDER.values()) & set(NON_CANONICAL.values())


@pytest.mark.parametrize("encoded", SMALL_ORDER.values(), ids=SMALL_ORDER.keys())
def test_small_order_points_found_by_the_multiply_by_8_check(encoded: str) -> None:
    """The literature's list and the module's Edwards arithmetic agree on every point."""
    with pytest.raises(ConfigurationInvalid, match="small-order point"):
        crypto.check_ed25519_point(bytes.fromhex(encoded))


def test_large_order_point_with_y_3_admitted() -> None:
    for sign in (0, _SIGN):
        crypto.check_ed25519_point((3 | sign).to_bytes(32, "little"))


@pytest.mark.parametrize("encoded", WEAK_ED25519.values(), ids=WEAK_ED25519.keys())
def test_weak_ed25519_point_refused(encoded: str) -> None:
    raw = bytes.fromhex(encoded)
    _refused(Reason.ERR_KEY_WEAK, crypto.check_ed25519_point, raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk, Algorithm.EDDSA)


@pytest.mark.parametrize("encoded", WEAK_ED25519.values(), ids=WEAK_ED25519.keys())
def test_weak_ed25519_point_loads_in_cryptography_but_not_here(encoded: str) -> None:
    """cryptography accepts every one of these keys; the SPKI and PEM paths still refuse."""
    key = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(encoded))
    _refused(Reason.ERR_KEY_WEAK, crypto.load_spki_der, _spki_der(key))
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key))
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key), Algorithm.EDDSA)


@pytest.mark.parametrize(
    "raw",
    [
        bytes(31),
        bytes(33),
        b"",
        (2).to_bytes(32, "little"),  # y = 2 is not the y of any curve point
    ],
    ids=["31_bytes", "33_bytes", "empty", "not_on_curve_y=2"],
)
def test_malformed_ed25519_point_refused(raw: bytes) -> None:
    _refused(Reason.ERR_KEY_WEAK, crypto.check_ed25519_point, raw)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)})


def test_fresh_ed25519_keys_admitted() -> None:
    for _ in range(16):
        key = ed25519.Ed25519PrivateKey.generate().public_key()
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        crypto.check_ed25519_point(raw)
        admitted = crypto.load_jwk({"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)})
        assert admitted.algorithm is Algorithm.EDDSA
        assert admitted == crypto.load_spki_der(_spki_der(key))
        assert admitted == crypto.load_pem(_spki_pem(key), Algorithm.EDDSA)


def test_identity_key_forges_with_cryptography_and_is_refused_here() -> None:
    """Why admission matters (threats.md pitfall 2): with the identity point as public key, the
    64-byte "signature" identity || 0^32 verifies for any message in cryptography itself."""
    identity = bytes.fromhex(SMALL_ORDER["identity"])
    forged = identity + bytes(32)
    raw_key = ed25519.Ed25519PublicKey.from_public_bytes(identity)
    for _ in range(32):
        raw_key.verify(forged, secrets.token_bytes(40))  # does not raise: forgery accepted
    with pytest.raises(InvalidSignature):  # an honest key does not fall for it
        ed25519.Ed25519PrivateKey.generate().public_key().verify(forged, b"message")

    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(identity)}
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk, Algorithm.EDDSA)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_spki_der, _spki_der(raw_key))


# ------------------------------------------------------------------ RSA admission


@pytest.mark.parametrize(
    ("bits", "e"),
    [
        (1024, 65537),
        (2047, 65537),
        (4097, 65537),
        (5000, 65537),
        (8192, 65537),
        (2048, 3),
        (2048, 17),
        (2048, 2**32 + 15),
    ],
    ids=["1024", "2047", "4097", "5000", "8192", "e=3", "e=17", "e=2^32+15"],
)
def test_weak_rsa_refused(bits: int, e: int) -> None:
    key = _rsa_public(bits, e)
    numbers = key.public_numbers()
    jwk = {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    for alg in (Algorithm.PS256, Algorithm.RS256):
        _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key), alg)
        _refused(Reason.ERR_KEY_WEAK, crypto.load_spki_der, _spki_der(key), alg)
        _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk, alg)


@pytest.mark.parametrize("bits", [2048, 3072, 4096], ids=["2048", "3072", "4096"])
def test_rsa_sizes_admitted_for_ps256(bits: int) -> None:
    key = _rsa_public(bits)
    admitted = crypto.load_pem(_spki_pem(key), Algorithm.PS256)
    assert admitted.algorithm is Algorithm.PS256
    assert admitted == crypto.load_spki_der(_spki_der(key), Algorithm.PS256)
    numbers = key.public_numbers()
    jwk = {"kty": "RSA", "n": _int_b64(numbers.n), "e": "AQAB"}
    assert crypto.load_jwk(jwk, Algorithm.PS256) == admitted


def test_real_3072_bit_key_signs_and_verifies() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    public = crypto.load_pem(_spki_pem(private.public_key()), Algorithm.PS256)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    assert public.verify(b"msg", private.sign(b"msg", pss, hashes.SHA256()))


def test_rsa_without_explicit_algorithm_refused() -> None:
    key = _rsa_public(2048)
    numbers = key.public_numbers()
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key))
    _refused(Reason.ERR_KEY_WEAK, crypto.load_spki_der, _spki_der(key))
    _refused(
        Reason.ERR_KEY_WEAK, crypto.load_jwk, {"kty": "RSA", "n": _int_b64(numbers.n), "e": "AQAB"}
    )


@pytest.mark.parametrize("alg", [Algorithm.ES256, Algorithm.ES384, Algorithm.EDDSA])
def test_rsa_key_for_non_rsa_algorithm_refused(alg: Algorithm) -> None:
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(_rsa_public(2048)), alg)


def test_rs256_is_verifiable_but_not_registrable() -> None:
    assert Algorithm.RS256 not in crypto.ADMISSIBLE
    registrable = {Algorithm.ES256, Algorithm.ES384, Algorithm.EDDSA, Algorithm.PS256}
    assert registrable == crypto.ADMISSIBLE


# ------------------------------------------------------------------ EC admission


@pytest.mark.parametrize(
    "curve",
    [ec.SECP521R1(), ec.SECP256K1(), ec.BrainpoolP256R1(), ec.SECP224R1()],
    ids=["P-521", "secp256k1", "brainpoolP256r1", "P-224"],
)
def test_unsupported_curve_refused(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve).public_key()
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key))
    _refused(Reason.ERR_KEY_WEAK, crypto.load_spki_der, _spki_der(key))
    for alg in Algorithm:
        _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key), alg)


@pytest.mark.parametrize(
    ("curve", "alg"),
    [
        (ec.SECP256R1(), Algorithm.ES384),
        (ec.SECP384R1(), Algorithm.ES256),
        (ec.SECP256R1(), Algorithm.EDDSA),
        (ec.SECP256R1(), Algorithm.PS256),
        (ec.SECP384R1(), Algorithm.RS256),
    ],
    ids=["P-256_as_ES384", "P-384_as_ES256", "P-256_as_EdDSA", "P-256_as_PS256", "P-384_as_RS256"],
)
def test_ec_key_for_wrong_algorithm_refused(curve: ec.EllipticCurve, alg: Algorithm) -> None:
    key = ec.generate_private_key(curve).public_key()
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key), alg)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_spki_der, _spki_der(key), alg)


@pytest.mark.parametrize("alg", [a for a in Algorithm if a is not Algorithm.EDDSA])
def test_ed25519_key_for_wrong_algorithm_refused(alg: Algorithm) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(key), alg)


@pytest.mark.parametrize(
    ("curve", "alg"),
    [(ec.SECP256R1(), Algorithm.ES256), (ec.SECP384R1(), Algorithm.ES384)],
    ids=["P-256", "P-384"],
)
def test_ec_algorithm_inferred_from_curve(curve: ec.EllipticCurve, alg: Algorithm) -> None:
    key = ec.generate_private_key(curve).public_key()
    assert crypto.load_pem(_spki_pem(key)).algorithm is alg
    assert crypto.load_pem(_spki_pem(key), alg).algorithm is alg


# ------------------------------------------------------------------ JWK decoding


def _ec_jwk(curve: ec.EllipticCurve | None = None) -> dict[str, str]:
    curve = curve or ec.SECP256R1()
    numbers = ec.generate_private_key(curve).public_key().public_numbers()
    size = (curve.key_size + 7) // 8
    return {
        "kty": "EC",
        "crv": "P-256" if size == 32 else "P-384",
        "x": _b64(numbers.x.to_bytes(size, "big")),
        "y": _b64(numbers.y.to_bytes(size, "big")),
    }


def _okp_jwk() -> dict[str, str]:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}


def _rsa_jwk() -> dict[str, str]:
    numbers = _rsa_public(2048).public_numbers()
    return {"kty": "RSA", "n": _int_b64(numbers.n), "e": "AQAB"}


PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]


@pytest.mark.parametrize("member", PRIVATE_MEMBERS)
@pytest.mark.parametrize("kind", ["EC", "OKP", "RSA"])
def test_jwk_private_member_refused(kind: str, member: str) -> None:
    jwk: dict[str, Any] = {"EC": _ec_jwk, "OKP": _okp_jwk, "RSA": _rsa_jwk}[kind]()
    jwk[member] = [] if member == "oth" else "AQAB"
    alg = Algorithm.PS256 if kind == "RSA" else None
    _refused(Reason.ERR_KEY_PRIVATE, crypto.load_jwk, jwk, alg)


def test_symmetric_jwk_refused_as_private() -> None:
    jwk = {"kty": "oct", "k": "-ebuDNsVZ2iJtoZ-akfXTSCt4UO2cruLCsbWlBinggE"}
    _refused(Reason.ERR_KEY_PRIVATE, crypto.load_jwk, jwk)


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _alter(value: str, how: str) -> str:
    """A non-canonical spelling of a base64url value (or one that is not base64url at all)."""
    if how == "padding":
        return value + "="
    if how == "trailing_bits":  # 43 chars carry 32 bytes plus 2 spare bits, which must be 0
        last = _B64_ALPHABET.index(value[-1])
        return value[:-1] + _B64_ALPHABET[last ^ 1]
    if how == "standard_alphabet":  # RFC 4648 section 4 "+/" instead of "-_"
        swapped = value.replace("-", "+").replace("_", "/")
        return swapped if swapped != value else "/" + value[1:]
    if how == "whitespace":
        return value[:10] + " " + value[10:]
    if how == "length_1_mod_4":
        return value + "A"
    raise AssertionError(how)


NON_CANONICAL_B64 = [
    "padding",
    "trailing_bits",
    "standard_alphabet",
    "whitespace",
    "length_1_mod_4",
]


@pytest.mark.parametrize("how", NON_CANONICAL_B64)
@pytest.mark.parametrize("member", ["x", "y"])
def test_jwk_non_canonical_ec_coordinate_refused(member: str, how: str) -> None:
    jwk = _ec_jwk()
    jwk[member] = _alter(jwk[member], how)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)


@pytest.mark.parametrize("how", NON_CANONICAL_B64)
def test_jwk_non_canonical_ed25519_refused(how: str) -> None:
    jwk = _okp_jwk()
    jwk["x"] = _alter(jwk["x"], how)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)


@pytest.mark.parametrize("how", ["padding", "standard_alphabet", "whitespace"])
def test_jwk_non_canonical_rsa_modulus_refused(how: str) -> None:
    jwk = _rsa_jwk()
    jwk["n"] = _alter(jwk["n"], how)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk, Algorithm.PS256)


@pytest.mark.parametrize(
    "change",
    ["x_31_bytes", "x_33_bytes", "y_31_bytes", "y_33_bytes", "p384_size_for_p256"],
)
def test_jwk_wrong_coordinate_length_refused(change: str) -> None:
    jwk = _ec_jwk()
    member = change[0]
    if change.endswith("31_bytes"):
        jwk[member] = _b64(base64url.decode(jwk[member])[1:])
    elif change.endswith("33_bytes"):
        jwk[member] = _b64(b"\x00" + base64url.decode(jwk[member]))
    else:
        jwk = _ec_jwk(ec.SECP384R1())
        jwk["crv"] = "P-256"
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)


def test_jwk_p256_coordinate_with_leading_zero_byte_is_kept_full_length() -> None:
    """A coordinate below 2^248 is still encoded on 32 bytes; find such a key and round-trip it."""
    for _ in range(2000):
        private = PrivateKey.generate(Algorithm.ES256)
        jwk = private.public_key().jwk()
        if base64url.decode(jwk["x"])[0] == 0 or base64url.decode(jwk["y"])[0] == 0:
            break
    else:  # pragma: no cover - probability about 2^-11.5 per try
        pytest.fail("no key with a short coordinate found")
    assert len(base64url.decode(jwk["x"])) == len(base64url.decode(jwk["y"])) == 32
    assert crypto.load_jwk(jwk) == private.public_key()


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("n", "leading_zero"),
        ("e", "AAEAAQ"),  # 00 01 00 01
        ("e", ""),
        ("n", ""),
        ("e", "AQ"),  # e = 1
        ("e", "Aw"),  # e = 3
    ],
    ids=["n_leading_zero", "e_leading_zero", "e_empty", "n_empty", "e=1", "e=3"],
)
def test_jwk_rsa_integers_refused(member: str, value: str) -> None:
    jwk = _rsa_jwk()
    if value == "leading_zero":
        jwk["n"] = _b64(b"\x00" + base64url.decode(jwk["n"]))
    else:
        jwk[member] = value
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk, Algorithm.PS256)


def test_rsa_even_modulus_refused() -> None:
    """An even n is not an RSA modulus; admission should refuse it as malformed."""
    key = _rsa_public(2048)
    even = key.public_numbers().n ^ 1
    jwk = {"kty": "RSA", "n": _int_b64(even), "e": "AQAB"}
    even_key = rsa.RSAPublicNumbers(65537, even).public_key()
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, _spki_pem(even_key), Algorithm.PS256)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk, Algorithm.PS256)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct"},
        {"kty": "EC2", "crv": "P-256"},
        {"kty": "ec", "crv": "P-256"},
        {"crv": "P-256"},
        {"kty": 1},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "p-256", "x": "AA", "y": "AA"},
        {"kty": "EC", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed448", "x": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {"kty": "OKP", "x": "AA"},
        {"kty": "EC", "crv": "Ed25519", "x": "AA"},
        {"kty": "OKP", "crv": "P-256", "x": "AA", "y": "AA"},
    ],
    ids=[
        "oct_without_k",
        "EC2",
        "lowercase_ec",
        "missing_kty",
        "kty_int",
        "P-521",
        "secp256k1",
        "lowercase_crv",
        "missing_crv",
        "Ed448",
        "X25519",
        "okp_missing_crv",
        "EC_with_Ed25519",
        "OKP_with_P-256",
    ],
)
def test_jwk_unknown_kty_or_crv_refused(jwk: dict[str, Any]) -> None:
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)


@pytest.mark.parametrize("member", ["x", "y", "missing_x", "missing_y"])
def test_jwk_member_missing_or_not_string_refused(member: str) -> None:
    jwk: dict[str, Any] = _ec_jwk()
    if member.startswith("missing_"):
        del jwk[member[-1]]
    else:
        jwk[member] = int.from_bytes(base64url.decode(jwk[member]), "big")
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)


@pytest.mark.parametrize(
    "change", ["y_plus_1", "x_plus_1", "zero_point", "x_is_p", "y_is_p_plus_y"]
)
def test_jwk_point_not_on_curve_refused(change: str) -> None:
    jwk = _ec_jwk()
    x = int.from_bytes(base64url.decode(jwk["x"]), "big")
    y = int.from_bytes(base64url.decode(jwk["y"]), "big")
    p = 2**256 - 2**224 + 2**192 + 2**96 - 1
    if change == "y_plus_1":
        y = (y + 1) % p
    elif change == "x_plus_1":
        x = (x + 1) % p
    elif change == "zero_point":
        x = y = 0
    elif change == "x_is_p":
        x = p
    elif y + p < 2**256:  # the same point with y not reduced mod p
        y += p
    else:
        y = p + 1
    jwk["x"], jwk["y"] = _b64(x.to_bytes(32, "big")), _b64(y.to_bytes(32, "big"))
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)


@pytest.mark.parametrize(
    ("kind", "named", "requested"),
    [
        ("EC", "ES256", Algorithm.ES384),
        ("EC", "ES384", None),
        ("EC", "ES384", Algorithm.ES256),
        ("EC", "RS256", None),
        ("EC", "PS256", Algorithm.PS256),
        ("EC", "EdDSA", None),
        ("EC", "es256", None),
        ("EC", "none", None),
        ("EC", "HS256", None),
        ("EC", "ES512", None),
        ("OKP", "ES256", None),
        ("OKP", "Ed25519", None),
        ("OKP", "EdDSA", Algorithm.ES256),
        ("RSA", "PS256", Algorithm.RS256),
        ("RSA", "RS256", Algorithm.PS256),
        ("RSA", "PS384", None),
        ("RSA", "ES256", None),
    ],
    ids=lambda v: v.value if isinstance(v, Algorithm) else str(v),
)
def test_jwk_alg_member_disagreeing_refused(
    kind: str, named: str, requested: Algorithm | None
) -> None:
    jwk: dict[str, Any] = {"EC": _ec_jwk, "OKP": _okp_jwk, "RSA": _rsa_jwk}[kind]()
    jwk["alg"] = named
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk, requested)


@pytest.mark.parametrize("value", [1, True, ["ES256"], {"alg": "ES256"}], ids=str)
def test_jwk_alg_member_not_a_string_refused(value: object) -> None:
    jwk: dict[str, Any] = _ec_jwk()
    jwk["alg"] = value
    _refused(Reason.ERR_KEY_WEAK, crypto.load_jwk, jwk)


@pytest.mark.parametrize(
    ("kind", "named", "requested"),
    [
        ("EC", "ES256", None),
        ("EC", "ES256", Algorithm.ES256),
        ("OKP", "EdDSA", None),
        ("RSA", "PS256", None),  # alg supplies the explicit algorithm an RSA key needs
        ("RSA", "PS256", Algorithm.PS256),
    ],
    ids=["EC", "EC_requested", "OKP", "RSA_alg_only", "RSA_requested"],
)
def test_jwk_alg_member_agreeing_admitted(
    kind: str, named: str, requested: Algorithm | None
) -> None:
    jwk: dict[str, Any] = {"EC": _ec_jwk, "OKP": _okp_jwk, "RSA": _rsa_jwk}[kind]()
    jwk["alg"] = named
    assert crypto.load_jwk(jwk, requested).algorithm.value == named


# ------------------------------------------------------------------ PEM and DER


_PKCS8 = serialization.PrivateFormat.PKCS8
_TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL  # "EC/RSA PRIVATE KEY"


@pytest.mark.parametrize(
    ("alg", "fmt"),
    [
        (Algorithm.ES256, _PKCS8),
        (Algorithm.ES256, _TRADITIONAL),
        (Algorithm.PS256, _PKCS8),
        (Algorithm.PS256, _TRADITIONAL),
        (Algorithm.EDDSA, _PKCS8),
    ],
    ids=["ES256-pkcs8", "ES256-traditional", "PS256-pkcs8", "PS256-traditional", "EdDSA-pkcs8"],
)
def test_private_key_pem_refused(
    keys: dict[Algorithm, PrivateKey], alg: Algorithm, fmt: serialization.PrivateFormat
) -> None:
    private: Any = serialization.load_pem_private_key(keys[alg].pem(), password=None)
    pem = private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    assert b"PRIVATE KEY" in pem
    _refused(Reason.ERR_KEY_PRIVATE, crypto.load_pem, pem, alg)
    _refused(Reason.ERR_KEY_PRIVATE, crypto.load_pem, pem.decode("ascii"), alg)
    _refused(Reason.ERR_KEY_PRIVATE, crypto.load_pem, pem)


def test_encrypted_private_key_pem_refused(keys: dict[Algorithm, PrivateKey]) -> None:
    private: Any = serialization.load_pem_private_key(keys[Algorithm.ES256].pem(), password=None)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    assert b"ENCRYPTED PRIVATE KEY" in pem
    _refused(Reason.ERR_KEY_PRIVATE, crypto.load_pem, pem)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
    ids=["empty", "garbage", "bad_body"],
)
def test_unparseable_pem_refused(data: bytes) -> None:
    _refused(Reason.ERR_KEY_WEAK, crypto.load_pem, data)
    _refused(Reason.ERR_KEY_WEAK, crypto.load_spki_der, data)


def test_pem_and_der_round_trip(keys: dict[Algorithm, PrivateKey]) -> None:
    for alg, private in keys.items():
        public = private.public_key()
        assert crypto.load_pem(public.pem(), alg) == public
        assert crypto.load_spki_der(public.spki_der, alg) == public
        assert hash(crypto.load_spki_der(public.spki_der, alg)) == hash(public)


# ------------------------------------------------------------------ X.509


def _certificate(
    private: Any,
    *,
    eku: list[x509.ObjectIdentifier] | None,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    return pki.self_signed(
        private,
        "hangzhou health code signer",
        not_before=not_before,
        not_after=not_after,
        extended_key_usage=eku,
        country="CN",
    )


DSC_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.1")  # EU DCC "test" key usage


def test_load_certificate_pem_and_der() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    not_before = datetime(2026, 1, 1, tzinfo=UTC)
    not_after = datetime(2028, 1, 1, tzinfo=UTC)
    cert = _certificate(
        private,
        eku=[DSC_EKU, ExtendedKeyUsageOID.CODE_SIGNING],
        not_before=not_before,
        not_after=not_after,
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    expected_key = crypto.load_spki_der(_spki_der(private.public_key()))
    for data in (pem, der, b"\n  " + pem):
        loaded = crypto.load_certificate(data)
        assert loaded.der == der
        assert loaded.sha256 == hashlib.sha256(der).digest()
        assert loaded.public_key == expected_key
        assert loaded.public_key.algorithm is Algorithm.ES256
        assert loaded.not_before == not_before
        assert loaded.not_after == not_after
        assert loaded.extended_key_usages == {
            "1.3.6.1.4.1.1847.2021.1.1",
            ExtendedKeyUsageOID.CODE_SIGNING.dotted_string,
        }
        assert "CN=hangzhou health code signer" in loaded.subject
    assert crypto.load_certificate(der, Algorithm.ES256).public_key == expected_key
    _refused(Reason.ERR_KEY_WEAK, crypto.load_certificate, der, Algorithm.ES384)


def test_load_certificate_without_eku() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    now = datetime.now(UTC).replace(microsecond=0)
    cert = _certificate(private, eku=None, not_before=now, not_after=now + timedelta(days=1))
    loaded = crypto.load_certificate(cert.public_bytes(serialization.Encoding.DER))
    assert loaded.extended_key_usages == frozenset()
    assert loaded.public_key.algorithm is Algorithm.EDDSA


def test_load_certificate_with_inadmissible_key_refused() -> None:
    now = datetime.now(UTC)
    cert = _certificate(
        ec.generate_private_key(ec.SECP521R1()), eku=None, not_before=now, not_after=now
    )
    _refused(
        Reason.ERR_KEY_WEAK, crypto.load_certificate, cert.public_bytes(serialization.Encoding.DER)
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"\x30"],
    ids=["empty", "garbage", "bad_pem_body", "truncated_der"],
)
def test_unparseable_certificate_refused(data: bytes) -> None:
    _refused(Reason.ERR_KEY_WEAK, crypto.load_certificate, data)


# ------------------------------------------------------------------ signing and verifying


@pytest.mark.parametrize("alg", list(Algorithm), ids=[a.value for a in Algorithm])
def test_sign_verify_round_trip(keys: dict[Algorithm, PrivateKey], alg: Algorithm) -> None:
    private = keys[alg]
    public = private.public_key()
    assert public.algorithm is alg
    message = b"\xe7\xbb\xbf\xe7\xa0\x81 payload"
    signature = private.sign(message)
    assert public.verify(message, signature)
    assert not public.verify(message + b"!", signature)
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 0x01
    assert not public.verify(message, bytes(tampered))
    if alg not in (Algorithm.PS256, Algorithm.RS256):  # (another RSA key: slow, same code)
        assert not PrivateKey.generate(alg).public_key().verify(message, signature)


@pytest.mark.parametrize("alg", list(Algorithm), ids=[a.value for a in Algorithm])
def test_private_key_pem_round_trip(keys: dict[Algorithm, PrivateKey], alg: Algorithm) -> None:
    private = keys[alg]
    again = PrivateKey.from_pem(private.pem(), alg)
    assert again.public_key() == private.public_key()
    assert private.public_key().verify(b"m", again.sign(b"m"))


def test_private_key_pem_for_wrong_algorithm_refused(keys: dict[Algorithm, PrivateKey]) -> None:
    _refused(Reason.ERR_KEY_WEAK, PrivateKey.from_pem, keys[Algorithm.ES256].pem(), Algorithm.ES384)
    _refused(Reason.ERR_KEY_WEAK, PrivateKey.from_pem, keys[Algorithm.EDDSA].pem(), Algorithm.PS256)


SIZES = {Algorithm.ES256: 64, Algorithm.ES384: 96, Algorithm.EDDSA: 64}


@pytest.mark.parametrize(
    ("alg", "delta"),
    [(a, d) for a in SIZES for d in (-1, +1, -SIZES[a], +SIZES[a])],
    ids=[f"{a.value}{d:+d}" for a in SIZES for d in (-1, +1, -SIZES[a], +SIZES[a])],
)
def test_wrong_length_signature_is_encoding_error(
    keys: dict[Algorithm, PrivateKey], alg: Algorithm, delta: int
) -> None:
    signature = keys[alg].sign(b"m")
    bad = signature[:delta] if delta < 0 else signature + bytes(delta)
    with pytest.raises(CodeRejected) as e:
        keys[alg].public_key().verify(b"m", bad)
    assert e.value.reason is Reason.ERR_SIG_ENCODING


@pytest.mark.parametrize("alg", [Algorithm.PS256, Algorithm.RS256])
@pytest.mark.parametrize("change", ["short", "long", "left_padded", "empty"])
def test_wrong_length_rsa_signature_is_encoding_error(
    keys: dict[Algorithm, PrivateKey], alg: Algorithm, change: str
) -> None:
    signature = keys[alg].sign(b"m")
    bad = {
        "short": signature[1:],
        "long": signature + b"\x00",
        "left_padded": b"\x00" + signature,
        "empty": b"",
    }[change]
    with pytest.raises(CodeRejected) as e:
        keys[alg].public_key().verify(b"m", bad)
    assert e.value.reason is Reason.ERR_SIG_ENCODING


@pytest.mark.parametrize("alg", [Algorithm.ES256, Algorithm.ES384])
def test_der_ecdsa_signature_is_encoding_error(
    keys: dict[Algorithm, PrivateKey], alg: Algorithm
) -> None:
    size = ORDERS[alg][1]
    raw = keys[alg].sign(b"m")
    der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    # DER is 2 * size + 6 bytes at most and 8 at least; it could in principle be exactly
    # 2 * size long (then verify reports a bad signature instead), so skip that rare case.
    if len(der) == 2 * size:  # pragma: no cover
        pytest.skip("DER happens to have the raw length")
    with pytest.raises(CodeRejected) as e:
        keys[alg].public_key().verify(b"m", der)
    assert e.value.reason is Reason.ERR_SIG_ENCODING
    # the explicit conversion is the only way a DER signature is accepted
    assert keys[alg].public_key().verify(b"m", crypto.ecdsa_der_to_raw(der, alg))


@pytest.mark.parametrize("alg", [Algorithm.ES256, Algorithm.ES384])
def test_ecdsa_high_s_still_verifies(keys: dict[Algorithm, PrivateKey], alg: Algorithm) -> None:
    """threats.md pitfall 3 / F31: s -> n - s is a second valid signature; do not reject it."""
    n, size = ORDERS[alg]
    for i in range(8):
        message = b"m%d" % i
        raw = keys[alg].sign(message)
        r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
        flipped = r.to_bytes(size, "big") + (n - s).to_bytes(size, "big")
        assert flipped != raw
        assert keys[alg].public_key().verify(message, flipped)


@pytest.mark.parametrize("change", ["r=0", "s=0", "r=n", "s=n", "r=n+1", "all_ones"])
def test_ecdsa_out_of_range_scalars_rejected(
    keys: dict[Algorithm, PrivateKey], change: str
) -> None:
    n, size = ORDERS[Algorithm.ES256]
    raw = keys[Algorithm.ES256].sign(b"m")
    r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
    if change == "r=0":
        r = 0
    elif change == "s=0":
        s = 0
    elif change == "r=n":
        r = n
    elif change == "s=n":
        s = n
    elif change == "r=n+1":
        r = n + 1
    else:
        r = s = 2**256 - 1
    bad = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    assert keys[Algorithm.ES256].public_key().verify(b"m", bad) is False


def _outcome(public: crypto.PublicKey, message: bytes, signature: bytes) -> bool | Reason:
    """verify's result, or the reason of the CodeRejected it raised."""
    try:
        return public.verify(message, signature)
    except CodeRejected as e:
        return e.reason


def test_ed25519_s_plus_l_rejected(keys: dict[Algorithm, PrivateKey]) -> None:
    """F31: S + L is the same scalar mod L; RFC 8032 requires S < L, so it must not verify."""
    private = keys[Algorithm.EDDSA]
    public = private.public_key()
    for i in range(8):
        message = b"m%d" % i
        signature = private.sign(message)
        s = int.from_bytes(signature[32:], "little")
        malleated = signature[:32] + (s + L_ED25519).to_bytes(32, "little")
        assert malleated != signature
        assert _outcome(public, message, malleated) in (False, Reason.ERR_SIG_ENCODING)
        assert public.verify(message, signature)


@pytest.fixture(scope="module")
def ps256_pair(rsa_private: rsa.RSAPrivateKey) -> tuple[rsa.RSAPrivateKey, crypto.PublicKey]:
    return rsa_private, crypto.load_pem(_spki_pem(rsa_private.public_key()), Algorithm.PS256)


def test_pss_salt_32_verifies(ps256_pair: tuple[rsa.RSAPrivateKey, crypto.PublicKey]) -> None:
    private, public = ps256_pair
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    assert public.verify(b"m", private.sign(b"m", pss, hashes.SHA256()))


@pytest.mark.parametrize(
    "pad",
    [
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=0),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        padding.PSS(mgf=padding.MGF1(hashes.SHA1()), salt_length=32),
        padding.PKCS1v15(),
    ],
    ids=["salt20", "salt0", "salt_max", "mgf1_sha1", "pkcs1v15"],
)
def test_ps256_parameter_mismatch_rejected(
    ps256_pair: tuple[rsa.RSAPrivateKey, crypto.PublicKey], pad: padding.AsymmetricPadding
) -> None:
    """F32: anything but PSS / SHA-256 / MGF1-SHA-256 / salt 32 is invalid under a PS256 key."""
    private, public = ps256_pair
    assert public.verify(b"m", private.sign(b"m", pad, hashes.SHA256())) is False


def test_pss_signature_under_rs256_key_rejected(rsa_private: rsa.RSAPrivateKey) -> None:
    public = crypto.load_pem(_spki_pem(rsa_private.public_key()), Algorithm.RS256)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    assert public.verify(b"m", rsa_private.sign(b"m", pss, hashes.SHA256())) is False
    assert public.verify(b"m", rsa_private.sign(b"m", padding.PKCS1v15(), hashes.SHA256()))


def test_wrong_hash_rejected(ps256_pair: tuple[rsa.RSAPrivateKey, crypto.PublicKey]) -> None:
    private, public = ps256_pair
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=32)
    assert public.verify(b"m", private.sign(b"m", pss, hashes.SHA384())) is False
    p384 = ec.generate_private_key(ec.SECP384R1())
    r, s = decode_dss_signature(p384.sign(b"m", ec.ECDSA(hashes.SHA256())))
    es384 = crypto.load_pem(_spki_pem(p384.public_key()), Algorithm.ES384)
    assert es384.verify(b"m", r.to_bytes(48, "big") + s.to_bytes(48, "big")) is False


# ------------------------------------------------------------------ JWK export and thumbprint


@pytest.mark.parametrize("alg", list(Algorithm), ids=[a.value for a in Algorithm])
def test_jwk_round_trip(keys: dict[Algorithm, PrivateKey], alg: Algorithm) -> None:
    public = keys[alg].public_key()
    jwk = public.jwk()
    required = {
        "EC": {"kty", "crv", "x", "y"},
        "OKP": {"kty", "crv", "x"},
        "RSA": {"kty", "n", "e"},
    }
    assert set(jwk) == required[jwk["kty"]]
    again = crypto.load_jwk(jwk, alg)
    assert again == public
    assert again.algorithm is alg
    assert again.thumbprint() == public.thumbprint()
    assert crypto.load_jwk({**jwk, "alg": alg.value}) == public
    if jwk["kty"] != "RSA":  # RSA needs the algorithm from the caller or from "alg"
        assert crypto.load_jwk(jwk) == public


def test_thumbprint_rfc7638_example() -> None:
    """RFC 7638 section 3.1."""
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    expected = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert crypto.load_jwk(jwk).thumbprint() == expected
    del jwk["alg"]
    assert crypto.load_jwk(jwk, Algorithm.PS256).thumbprint() == expected


def test_thumbprint_is_per_key_not_per_algorithm(keys: dict[Algorithm, PrivateKey]) -> None:
    ps = keys[Algorithm.PS256].public_key()
    rs = crypto.load_spki_der(ps.spki_der, Algorithm.RS256)
    assert ps.thumbprint() == rs.thumbprint()
    assert ps != rs
    assert len({k.public_key().thumbprint() for k in keys.values()}) == len(keys)


# ------------------------------------------------------------------ ecdsa_der_to_raw


def _der_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n])


def _der_int(value: bytes) -> bytes:
    return b"\x02" + _der_len(len(value)) + value


def _der_seq(body: bytes) -> bytes:
    return b"\x30" + _der_len(len(body)) + body


def _minimal(value: int) -> bytes:
    """Minimal two's-complement bytes of a non-negative integer (as DER INTEGER contents)."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def test_ecdsa_der_to_raw_exact_der() -> None:
    r, s = 2**255 + 5, 7  # r needs a leading 00 (high bit set), s is one byte
    der = encode_dss_signature(r, s)
    assert der == _der_seq(_der_int(b"\x00" + r.to_bytes(32, "big")) + _der_int(b"\x07"))
    assert (
        crypto.ecdsa_der_to_raw(der, Algorithm.ES256) == r.to_bytes(32, "big") + bytes(31) + b"\x07"
    )
    raw384 = crypto.ecdsa_der_to_raw(encode_dss_signature(r, s), Algorithm.ES384)
    assert raw384 == r.to_bytes(48, "big") + s.to_bytes(48, "big")


@pytest.mark.parametrize(
    "der",
    [
        # long-form length for the SEQUENCE (0x81 0x06 where 0x06 fits in short form)
        b"\x30\x81\x06" + _der_int(b"\x01") + _der_int(b"\x02"),
        # long-form length for an INTEGER
        _der_seq(b"\x02\x81\x01\x01" + _der_int(b"\x02")),
        # extra leading zero: 00 01 where 01 suffices
        _der_seq(_der_int(b"\x00\x01") + _der_int(b"\x02")),
        # extra leading zero on s
        _der_seq(_der_int(b"\x01") + _der_int(b"\x00\x00\x02")),
        # trailing bytes after the SEQUENCE
        _der_seq(_der_int(b"\x01") + _der_int(b"\x02")) + b"\x00",
        # trailing bytes inside the SEQUENCE
        _der_seq(_der_int(b"\x01") + _der_int(b"\x02") + b"\x05\x00"),
        # indefinite length (BER)
        b"\x30\x80" + _der_int(b"\x01") + _der_int(b"\x02") + b"\x00\x00",
        # negative r
        _der_seq(_der_int(b"\xff") + _der_int(b"\x02")),
        # r is too long for P-256: 2^256
        _der_seq(_der_int(_minimal(2**256)) + _der_int(b"\x02")),
        # s is too long for P-256: 2^257 - 1
        _der_seq(_der_int(b"\x01") + _der_int(_minimal(2**257 - 1))),
        # missing s
        _der_seq(_der_int(b"\x01")),
        # wrong outer tag (SET)
        b"\x31\x06" + _der_int(b"\x01") + _der_int(b"\x02"),
        # empty INTEGER
        _der_seq(b"\x02\x00" + _der_int(b"\x02")),
        # truncated
        _der_seq(_der_int(b"\x01") + _der_int(b"\x02"))[:-1],
        b"",
        # a raw r||s signature
        bytes(range(64)),
    ],
    ids=[
        "long_form_seq_len",
        "long_form_int_len",
        "leading_zero_r",
        "leading_zeros_s",
        "trailing_after_seq",
        "trailing_inside_seq",
        "indefinite_length",
        "negative_r",
        "r_too_long",
        "s_too_long",
        "missing_s",
        "set_not_sequence",
        "empty_integer",
        "truncated",
        "empty",
        "raw_signature",
    ],
)
def test_ecdsa_der_to_raw_refuses_non_der(der: bytes) -> None:
    with pytest.raises(CodeRejected) as e:
        crypto.ecdsa_der_to_raw(der, Algorithm.ES256)
    assert e.value.reason is Reason.ERR_SIG_ENCODING


def test_ecdsa_der_to_raw_size_depends_on_curve() -> None:
    der = _der_seq(_der_int(_minimal(2**256)) + _der_int(b"\x02"))
    with pytest.raises(CodeRejected):
        crypto.ecdsa_der_to_raw(der, Algorithm.ES256)
    assert len(crypto.ecdsa_der_to_raw(der, Algorithm.ES384)) == 96
    too_long = _der_seq(_der_int(_minimal(2**384)) + _der_int(b"\x02"))
    with pytest.raises(CodeRejected) as e:
        crypto.ecdsa_der_to_raw(too_long, Algorithm.ES384)
    assert e.value.reason is Reason.ERR_SIG_ENCODING


@pytest.mark.parametrize("alg", [Algorithm.EDDSA, Algorithm.PS256, Algorithm.RS256])
def test_ecdsa_der_to_raw_needs_ecdsa(alg: Algorithm) -> None:
    with pytest.raises(ValueError, match="not ECDSA"):
        crypto.ecdsa_der_to_raw(encode_dss_signature(1, 2), alg)


# ------------------------------------------------------------------ algorithm names


def test_algorithm_names_and_cose_ids() -> None:
    assert {a.value: a.cose_id for a in Algorithm} == {
        "ES256": -7,
        "ES384": -35,
        "EdDSA": -8,
        "PS256": -37,
        "RS256": -257,
    }
    for a in Algorithm:
        assert Algorithm.from_cose(a.cose_id) is a
        assert Algorithm.from_name(a.value) is a
    assert Algorithm.from_name("es256") is None
    assert Algorithm.from_name("none") is None
    assert Algorithm.from_cose(-36) is None


# ------------------------------------------------------------------ fixed keys (test vectors)

# RFC 6979 appendix A.2.5 (P-256, SHA-256, message "sample") and RFC 8032 section 7.1 TEST 1.
RFC6979_P256_X = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
RFC6979_P256_SAMPLE = (
    "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
    "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
)
RFC8032_TEST1_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_TEST1_EMPTY = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


@pytest.mark.parametrize(
    ("algorithm", "secret", "message", "signature"),
    [
        (Algorithm.ES256, RFC6979_P256_X, b"sample", RFC6979_P256_SAMPLE),
        (Algorithm.EDDSA, RFC8032_TEST1_SEED, b"", RFC8032_TEST1_EMPTY),
    ],
    ids=["rfc6979-p256-sample", "rfc8032-test1"],
)
def test_a_fixed_key_signs_as_its_rfc_says(algorithm, secret, message, signature):
    key = PrivateKey.from_secret(algorithm, bytes.fromhex(secret))
    assert key.sign(message).hex() == signature
    assert key.sign(message) == key.sign(message)
    assert key.public_key().verify(message, bytes.fromhex(signature))


def test_generated_ecdsa_keys_sign_with_random_nonces():
    key = PrivateKey.generate(Algorithm.ES256)
    assert key.sign(b"m") != key.sign(b"m")


@pytest.mark.parametrize(
    ("algorithm", "secret"),
    [
        (Algorithm.EDDSA, bytes(31)),
        (Algorithm.ES256, bytes(48)),
        (Algorithm.ES384, bytes(32)),
        (Algorithm.PS256, bytes(32)),
    ],
    ids=["short-seed", "p256-long", "p384-short", "rsa"],
)
def test_a_fixed_key_needs_a_secret_of_its_size(algorithm, secret):
    with pytest.raises(ValueError, match=r"bytes|no fixed"):
        PrivateKey.from_secret(algorithm, secret)
