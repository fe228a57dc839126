"""COSE_Sign1 parsing (threats.md rows D17-D24) and the ``PREFIX:`` + base45(zlib) text form
(rows A2, A3, B8, C13-C15) that carries it."""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import base45, compression, cose, textform
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

LIMITS = Limits()
KID = bytes.fromhex("9211db660d80c43a")  # an 8-byte DCC-style kid
PAYLOAD = cbor2.dumps({1: "CN", 4: 1_800_000_000, 6: 1_700_000_000})
SIGNATURE = bytes(range(64))
ES256 = Algorithm.ES256.cose_id
PROTECTED = {1: ES256, 4: KID}
TAG_SIGN1 = b"\xd2"
TAG_CWT = b"\xd8\x3d"
ES256_KEY = PrivateKey.generate(Algorithm.ES256)
EDDSA_KEY = PrivateKey.generate(Algorithm.EDDSA)

_Header = bytes | dict[Any, Any]


def _message(
    protected: _Header = PROTECTED,
    unprotected: Any = None,
    payload: Any = PAYLOAD,
    signature: Any = SIGNATURE,
) -> bytes:
    """An untagged COSE_Sign1; a dict ``protected`` is encoded, bytes are used as they are."""
    raw = cbor2.dumps(protected) if isinstance(protected, dict) else protected
    return cbor2.dumps([raw, {} if unprotected is None else unprotected, payload, signature])


def _reason(data: bytes, limits: Limits = LIMITS) -> Reason:
    with pytest.raises(CodeRejected) as e:
        cose.parse(data, limits)
    return e.value.reason


# ---------------------------------------------------------------- accepted shapes


@pytest.mark.parametrize(
    "prefix", [b"", TAG_SIGN1, TAG_CWT + TAG_SIGN1], ids=["untagged", "tag-18", "tag-61-18"]
)
def test_accepted_envelopes(prefix: bytes) -> None:
    message = cose.parse(prefix + _message(), LIMITS)
    assert message.protected_raw == cbor2.dumps(PROTECTED)
    assert message.protected == PROTECTED
    assert message.unprotected == {}
    assert message.algorithm is Algorithm.ES256
    assert message.kid == KID
    assert message.payload == PAYLOAD
    assert message.signature == SIGNATURE


@pytest.mark.parametrize(
    ("protected", "unprotected", "kid"),
    [
        ({1: ES256, 4: KID}, {}, KID),
        ({1: ES256}, {4: KID}, KID),  # EU DCC: kid in the unprotected bucket
        ({1: ES256, 4: KID}, {4: KID}, KID),  # same label, same value: accepted
        ({1: ES256}, {1: ES256, 4: KID}, KID),  # alg repeated with the same value
        ({1: ES256}, {}, None),
        ({1: ES256, 3: 61}, {}, None),  # content type
        ({1: ES256}, {3: "application/cwt"}, None),
        ({4: KID, 1: ES256}, {}, KID),  # key order is left as sent
        ({1: ES256, 4: b"k" * LIMITS.max_kid_chars}, {}, b"k" * LIMITS.max_kid_chars),
    ],
    ids=[
        "kid-protected",
        "kid-unprotected",
        "kid-both-equal",
        "alg-both-equal",
        "no-kid",
        "content-type-protected",
        "content-type-unprotected",
        "unsorted-protected",
        "kid-at-limit",
    ],
)
def test_header_buckets(protected: dict[int, Any], unprotected: dict[int, Any], kid: Any) -> None:
    message = cose.parse(_message(protected, unprotected), LIMITS)
    assert message.kid == kid
    assert message.algorithm is Algorithm.ES256
    assert message.protected == protected
    assert message.unprotected == unprotected


@pytest.mark.parametrize(
    ("alg", "algorithm"),
    [(-7, Algorithm.ES256), (-35, Algorithm.ES384), (-8, Algorithm.EDDSA), (-37, Algorithm.PS256)],
    ids=["es256", "es384", "eddsa", "ps256"],
)
def test_supported_algorithms(alg: int, algorithm: Algorithm) -> None:
    assert cose.parse(_message({1: alg}), LIMITS).algorithm is algorithm


# ---------------------------------------------------------------- rejected shapes


@pytest.mark.parametrize(
    "prefix",
    [
        TAG_CWT + TAG_CWT + TAG_SIGN1,
        TAG_SIGN1 + TAG_SIGN1,
        TAG_SIGN1 + TAG_CWT,  # the tags in the wrong order
        b"\xd8\x62",  # 98: COSE_Sign
        b"\xd1",  # 17: COSE_Mac0
        b"\xd0",  # 16: COSE_Encrypt0
        b"\xd8\x12",  # 18 in a two-byte head
        b"\xd9\xd9\xf7",  # 55799: self-described CBOR
        b"\xd9\xd9\xf7" + TAG_SIGN1,
        TAG_CWT + b"\xd9\xd9\xf7" + TAG_SIGN1,
        b"\xc1",  # 1: a date
        b"\xd9\x03\xe8",  # 1000
    ],
    ids=[
        "cwt-twice",
        "sign1-twice",
        "sign1-then-cwt",
        "cose-sign",
        "cose-mac0",
        "cose-encrypt0",
        "sign1-long-head",
        "self-describe",
        "self-describe-sign1",
        "cwt-self-describe-sign1",
        "date-tag",
        "unknown-tag",
    ],
)
def test_another_tag_on_top_is_refused(prefix: bytes) -> None:
    assert _reason(prefix + _message()) is Reason.ERR_CBOR_TAG


@pytest.mark.parametrize(
    "data",
    [
        cbor2.dumps([cbor2.dumps(PROTECTED), {}, PAYLOAD]),
        cbor2.dumps([cbor2.dumps(PROTECTED), {}, PAYLOAD, SIGNATURE, b""]),
        cbor2.dumps([]),
        cbor2.dumps({1: cbor2.dumps(PROTECTED)}),
        cbor2.dumps(PAYLOAD),
        cbor2.dumps(1),
        cbor2.dumps(None),
        TAG_SIGN1 + cbor2.dumps([cbor2.dumps(PROTECTED), {}, PAYLOAD]),
        cbor2.dumps([None, {}, PAYLOAD, SIGNATURE]),
        cbor2.dumps([PROTECTED, {}, PAYLOAD, SIGNATURE]),  # protected as a map, not a bstr
        cbor2.dumps(["a10126", {}, PAYLOAD, SIGNATURE]),  # protected as text
        cbor2.dumps([1, {}, PAYLOAD, SIGNATURE]),
        cbor2.dumps([cbor2.dumps(PROTECTED), b"", PAYLOAD, SIGNATURE]),  # unprotected not a map
        cbor2.dumps([cbor2.dumps(PROTECTED), None, PAYLOAD, SIGNATURE]),
        cbor2.dumps([cbor2.dumps(PROTECTED), [], PAYLOAD, SIGNATURE]),
        _message(payload=None),  # detached payload
        _message(payload="text"),
        _message(payload=cbor2.loads(PAYLOAD)),  # payload as a map, not wrapped in a bstr
        _message(signature=None),
        _message(signature="sig"),
        _message(signature=[SIGNATURE[:32], SIGNATURE[32:]]),
        _message(signature=1),
        _message(protected=cbor2.dumps([1, -7])),  # protected bstr holds an array
        _message(protected=cbor2.dumps(1)),
        _message(protected=cbor2.dumps(b"\xa1\x01\x26")),
    ],
    ids=[
        "three-items",
        "five-items",
        "empty-array",
        "map",
        "bstr",
        "int",
        "null",
        "tagged-three-items",
        "protected-null",
        "protected-map",
        "protected-text",
        "protected-int",
        "unprotected-bstr",
        "unprotected-null",
        "unprotected-array",
        "payload-null",
        "payload-text",
        "payload-map",
        "signature-null",
        "signature-text",
        "signature-array",
        "signature-int",
        "protected-holds-array",
        "protected-holds-int",
        "protected-holds-bstr",
    ],
)
def test_wrong_cose_structure(data: bytes) -> None:
    assert _reason(data) is Reason.ERR_COSE_STRUCTURE


@pytest.mark.parametrize(
    ("protected", "unprotected"),
    [
        (b"", {}),  # empty protected bucket: no alg
        ({}, {}),  # a0 instead of the empty bstr
        ({1: None}, {}),
        ({1: ES256, 2: [1]}, {}),  # crit
        ({1: ES256}, {2: [1]}),  # crit in the unprotected bucket
        ({1: ES256, 2: []}, {}),
        ({1: ES256, 5: b"\x00" * 12}, {}),  # IV
        ({1: ES256, 33: b"\x30"}, {}),  # x5chain
        ({1: ES256}, {33: b"\x30"}),
        ({1: ES256}, {-1: 1}),
        ({1: ES256, "alg": "ES256"}, {}),
        ({1: ES256}, {"kid": "x"}),
        ({1: ES256}, {1: Algorithm.ES384.cose_id}),
        ({1: ES256, 3: 61}, {3: 60}),
        ({1: ES256, 4: "kid-as-text"}, {}),  # kid must be a bstr
        ({1: ES256}, {4: "kid-as-text"}),
        ({1: ES256, 4: 1}, {}),
        ({1: ES256, 4: [KID]}, {}),
        ({1: ES256, 4: b""}, {}),
        ({1: ES256, 4: b"k" * (LIMITS.max_kid_chars + 1)}, {}),
        ({1: ES256}, {4: b"k" * (LIMITS.max_kid_chars + 1)}),
    ],
    ids=[
        "empty-protected",
        "empty-protected-map",
        "alg-null",
        "crit-protected",
        "crit-unprotected",
        "crit-empty",
        "unknown-label-iv",
        "unknown-label-x5chain",
        "unknown-label-unprotected",
        "negative-label",
        "text-label-protected",
        "text-label-unprotected",
        "alg-differs-between-buckets",
        "content-type-differs",
        "kid-text",
        "kid-text-unprotected",
        "kid-int",
        "kid-array",
        "kid-empty",
        "kid-over-limit",
        "kid-over-limit-unprotected",
    ],
)
def test_header_errors(protected: _Header, unprotected: dict[Any, Any]) -> None:
    assert _reason(_message(protected, unprotected)) is Reason.ERR_HEADER


@pytest.mark.parametrize(
    ("protected", "unprotected"),
    [
        (b"", {1: ES256, 4: KID}),  # EU DCC CO20: everything in the unprotected bucket
        ({4: KID}, {1: ES256}),  # alg unprotected, kid protected
        ({1: ES256, 4: KID}, {4: b"other-kid"}),  # CO21: the protected kid wins
    ],
    ids=["all-unprotected", "alg-unprotected", "kids-differ"],
)
def test_header_layouts_the_eu_dcc_test_data_allows(
    protected: _Header, unprotected: dict[Any, Any]
) -> None:
    message = cose.parse(_message(protected, unprotected), LIMITS)
    assert (message.algorithm, message.kid) == (Algorithm.ES256, KID)


def test_a_kid_over_a_custom_limit_is_a_header_error():
    assert _reason(_message({1: ES256, 4: b"k" * 9}), Limits(max_kid_chars=8)) is Reason.ERR_HEADER


@pytest.mark.parametrize(
    "alg",
    [-999, 0, -6, -36, -47, 5, -65535, 2**32],
    ids=["minus-999", "zero", "direct", "es512", "es256k", "hmac-256", "minus-65535", "large"],
)
def test_algorithms_not_verified_here_are_refused(alg: int) -> None:
    assert _reason(_message({1: alg, 4: KID})) is Reason.ERR_ALG_NOT_ALLOWED


@pytest.mark.parametrize("alg", [b"\x26", True, [ES256]], ids=["bstr", "boolean", "array"])
def test_an_ill_typed_alg_is_a_header_error(alg: Any) -> None:
    assert _reason(_message({1: alg, 4: KID})) is Reason.ERR_HEADER


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_message() + b"\x00", Reason.ERR_TRAILING_DATA),  # row D23
        (TAG_SIGN1 + _message() + b"\x00", Reason.ERR_TRAILING_DATA),
        (TAG_CWT + TAG_SIGN1 + _message() + _message(), Reason.ERR_TRAILING_DATA),
        (_message(bytes.fromhex("a101260000")), Reason.ERR_TRAILING_DATA),  # inside protected
        (_message(bytes.fromhex("a1180126")), Reason.ERR_NONCANONICAL),  # row D19: 0x18 0x01
        (_message(bytes.fromhex("a1013806")), Reason.ERR_NONCANONICAL),  # -7 in two bytes
        (_message(bytes.fromhex("bf0126ff")), Reason.ERR_NONCANONICAL),  # indefinite map
        (_message(bytes.fromhex("b8010126")), Reason.ERR_NONCANONICAL),
        (_message(bytes.fromhex("a2012604580148")), Reason.ERR_NONCANONICAL),  # kid length
        (_message(bytes.fromhex("a20126013824")), Reason.ERR_DUPLICATE_KEY),  # row D18
        (
            bytes.fromhex("84")
            + cbor2.dumps(cbor2.dumps({1: ES256}))
            + bytes.fromhex("a2044161044162")
            + cbor2.dumps(PAYLOAD)
            + cbor2.dumps(SIGNATURE),
            Reason.ERR_DUPLICATE_KEY,  # duplicate 4 in the unprotected bucket
        ),
        (_message(bytes.fromhex("a201260bf5")), Reason.ERR_HEADER),  # canonical, unknown label
        (_message(cbor2.dumps({1: ES256, 3: [[[[0]]]]})), Reason.ERR_TOO_DEEP),
        (
            bytes.fromhex("84")
            + cbor2.dumps(cbor2.dumps({1: ES256}))
            + b"\xa1\x04"
            + b"\x81" * 100_000
            + b"\x00"
            + cbor2.dumps(b"") * 2,
            Reason.ERR_TOO_DEEP,  # row D20 in the unprotected bucket
        ),
        (_message({1: ES256, 4: b"k" * 3000}), Reason.ERR_TOO_LARGE),
        (_message(unprotected={4: cbor2.CBORTag(24, b"\x00")}), Reason.ERR_CBOR_TAG),
        (_message(payload=cbor2.CBORTag(24, PAYLOAD)), Reason.ERR_CBOR_TAG),
        (_message(bytes.fromhex("c1a10126")), Reason.ERR_CBOR_TAG),
        (b"", Reason.ERR_CBOR),
        (TAG_SIGN1, Reason.ERR_CBOR),
        (TAG_CWT + TAG_SIGN1, Reason.ERR_CBOR),
        (_message()[:-1], Reason.ERR_CBOR),
        (bytes.fromhex("9f") + _message()[1:] + b"\xff", Reason.ERR_CBOR),  # indefinite array
        (bytes.fromhex("9bffffffffffffffff"), Reason.ERR_CBOR),  # row D21
        (TAG_SIGN1 + bytes.fromhex("845bffffffffffffffff"), Reason.ERR_CBOR),
    ],
    ids=[
        "trailing-byte",
        "tagged-trailing-byte",
        "two-messages",
        "trailing-in-protected",
        "protected-0x18-0x01",
        "protected-alg-long",
        "protected-indefinite-map",
        "protected-map-length-long",
        "protected-kid-length-long",
        "protected-duplicate-alg",
        "unprotected-duplicate-kid",
        "protected-unknown-label",
        "protected-too-deep",
        "unprotected-100000-deep",
        "protected-too-large",
        "tag-in-unprotected",
        "tag-24-payload",
        "tag-in-protected",
        "empty",
        "tag-only",
        "tags-only",
        "truncated",
        "indefinite-array",
        "huge-array",
        "huge-protected",
    ],
)
def test_encoding_errors(data: bytes, reason: Reason) -> None:
    assert _reason(data) is reason


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
@pytest.mark.parametrize("key", [ES256_KEY, EDDSA_KEY], ids=["es256", "eddsa"])
def test_sign_then_parse_round_trips_and_verifies(key: PrivateKey, tagged: bool) -> None:
    data = cose.sign(PAYLOAD, key, KID, tagged=tagged)
    assert data.startswith(TAG_SIGN1) is tagged
    message = cose.parse(data, LIMITS)
    assert message.algorithm is key.algorithm
    assert message.kid == KID
    assert message.payload == PAYLOAD
    assert message.protected == {1: key.algorithm.cose_id, 4: KID}
    expected = cbor2.dumps(["Signature1", message.protected_raw, b"", PAYLOAD])
    assert message.to_be_signed() == expected
    public = key.public_key()
    assert public.verify(message.to_be_signed(), message.signature)
    assert not public.verify(message.to_be_signed() + b"\x00", message.signature)


def test_signed_message_inside_the_cwt_tag_verifies():
    message = cose.parse(TAG_CWT + cose.sign(PAYLOAD, ES256_KEY, KID), LIMITS)
    assert ES256_KEY.public_key().verify(message.to_be_signed(), message.signature)


def test_to_be_signed_uses_the_protected_bytes_as_received():
    """Keys in an order the signer chose (not the deterministic one) still verify."""
    protected_raw = bytes.fromhex("a20448") + KID + bytes.fromhex("0126")  # {4: kid, 1: -7}
    to_be_signed = cbor2.dumps(["Signature1", protected_raw, b"", PAYLOAD])
    signature = ES256_KEY.sign(to_be_signed)
    message = cose.parse(_message(protected_raw, signature=signature), LIMITS)
    assert message.protected_raw == protected_raw
    assert message.to_be_signed() == to_be_signed
    assert ES256_KEY.public_key().verify(message.to_be_signed(), message.signature)


def test_a_signature_does_not_cover_another_payload():
    data = cose.sign(PAYLOAD, ES256_KEY, KID, tagged=False)
    original = cose.parse(data, LIMITS)
    swapped = cose.parse(
        _message(original.protected_raw, payload=PAYLOAD + b"\x00", signature=original.signature),
        LIMITS,
    )
    assert not ES256_KEY.public_key().verify(swapped.to_be_signed(), swapped.signature)


_HEADER_VALUES = st.none() | st.booleans() | st.integers(-300, 300) | st.binary(max_size=10)
_BUCKETS = st.dictionaries(st.sampled_from([1, 2, 3, 4, 5, -1]), _HEADER_VALUES, max_size=4)


@given(_BUCKETS, _BUCKETS)
def test_arbitrary_header_buckets_raise_only_code_rejected(
    protected: dict[int, Any], unprotected: dict[int, Any]
) -> None:
    try:
        message = cose.parse(_message(protected, unprotected), LIMITS)
    except CodeRejected:
        return
    assert message.protected.get(1) == message.algorithm.cose_id
    assert set(message.protected) | set(message.unprotected) <= cose.ALLOWED_LABELS


@given(st.one_of(st.binary(max_size=200), st.binary(max_size=60).map(lambda b: TAG_SIGN1 + b)))
def test_arbitrary_bytes_raise_only_code_rejected(data: bytes) -> None:
    with contextlib.suppress(CodeRejected):
        cose.parse(data, LIMITS)


# ---------------------------------------------------------------- text form


@pytest.mark.parametrize("prefix", ["HC1:", "BJ1:", "MO1:"], ids=["dcc", "beijing", "macau"])
@pytest.mark.parametrize(
    "data", [b"", PAYLOAD, cose.sign(PAYLOAD, ES256_KEY, KID)], ids=["empty", "cbor", "cose"]
)
def test_text_form_round_trips(prefix: str, data: bytes) -> None:
    text = textform.encode(prefix, data)
    assert text.startswith(prefix)
    assert set(text[len(prefix) :]) <= set(base45.ALPHABET)
    assert textform.decode(text, prefix, LIMITS) == data


def test_text_form_carries_a_verifiable_cose_message():
    text = textform.encode("HC1:", cose.sign(PAYLOAD, ES256_KEY, KID))
    message = cose.parse(textform.decode(text, "HC1:", LIMITS), LIMITS)
    assert ES256_KEY.public_key().verify(message.to_be_signed(), message.signature)


HC1_TEXT = textform.encode("HC1:", PAYLOAD)


@pytest.mark.parametrize(
    "text",
    [
        "hc1:" + HC1_TEXT[4:],  # the prefix is case-sensitive
        "Hc1:" + HC1_TEXT[4:],
        "ＨＣ１:" + HC1_TEXT[4:],  # fullwidth look-alikes
        "ＨＣ１：" + HC1_TEXT[4:],
        "HC2:" + HC1_TEXT[4:],
        "HC0:" + HC1_TEXT[4:],
        "HC1" + HC1_TEXT[4:],
        HC1_TEXT[4:],  # base45 without any prefix
        " " + HC1_TEXT,
        "\u200b" + HC1_TEXT,
        "BJ1:" + HC1_TEXT[4:],
        "",
        "HC1",
        "hc1:" + "0" * 10_000,  # the prefix check comes before the size check
    ],
    ids=[
        "lowercase",
        "mixed-case",
        "fullwidth",
        "fullwidth-colon",
        "version-2",
        "version-0",
        "no-colon",
        "no-prefix",
        "leading-space",
        "leading-zero-width-space",
        "other-region",
        "empty",
        "prefix-only-no-colon",
        "oversized-lowercase",
    ],
)
def test_text_form_needs_the_exact_prefix(text: str) -> None:
    with pytest.raises(CodeRejected) as e:
        textform.decode(text, "HC1:", LIMITS)
    assert e.value.reason is Reason.ERR_FORMAT_UNKNOWN


def _small_bomb() -> bytes:
    """1 MiB of zeros: about 1 KB compressed, well inside a QR code, far over the cap."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, compression.ZLIB)
    zeros = bytes(64 * 1024)
    return b"".join(compressor.compress(zeros) for _ in range(16)) + compressor.flush()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("HC1:" + "0" * (LIMITS.max_prefixed_chars - 3), Reason.ERR_TOO_LARGE),  # limit + 1
        ("HC1:" + "0" * 100_000, Reason.ERR_TOO_LARGE),
        ("HC1:" + "0" * (LIMITS.max_prefixed_chars - 4), Reason.ERR_DECOMPRESS),  # at the limit
        ("HC1:", Reason.ERR_DECOMPRESS),
        ("HC1:" + HC1_TEXT[4:].lower(), Reason.ERR_BASE45),
        ("HC1:BB8BB8A", Reason.ERR_BASE45),  # length 1 mod 3
        ("HC1:GGW", Reason.ERR_BASE45),
        ("HC1:" + HC1_TEXT[4:] + "\n", Reason.ERR_BASE45),
        ("HC1:" + base45.encode(PAYLOAD), Reason.ERR_DECOMPRESS),  # not compressed (DCC Z2)
        (
            "HC1:" + base45.encode(compression.deflate(PAYLOAD, wbits=compression.RAW)),
            Reason.ERR_DECOMPRESS,  # raw DEFLATE where zlib is required
        ),
        ("HC1:" + base45.encode(base45.decode(HC1_TEXT[4:])[:-1]), Reason.ERR_DECOMPRESS),
        ("HC1:" + base45.encode(base45.decode(HC1_TEXT[4:]) + b"\x00"), Reason.ERR_DECOMPRESS),
        ("HC1:" + base45.encode(_small_bomb()), Reason.ERR_DECOMPRESSED_TOO_LARGE),
    ],
    ids=[
        "size-limit-plus-1",
        "size-100000",
        "size-at-limit",
        "prefix-only",
        "lowercase-base45",
        "base45-length-1-mod-3",
        "base45-triple-over-65535",
        "trailing-newline",
        "uncompressed",
        "raw-deflate",
        "truncated-zlib",
        "bytes-after-zlib",
        "bomb",
    ],
)
def test_text_form_errors(text: str, reason: Reason) -> None:
    with pytest.raises(CodeRejected) as e:
        textform.decode(text, "HC1:", LIMITS)
    assert e.value.reason is reason


def test_text_form_size_limit_follows_the_limits():
    limits = Limits(max_prefixed_chars=len(HC1_TEXT))
    assert textform.decode(HC1_TEXT, "HC1:", limits) == PAYLOAD
    with pytest.raises(CodeRejected) as e:
        textform.decode(HC1_TEXT, "HC1:", Limits(max_prefixed_chars=len(HC1_TEXT) - 1))
    assert e.value.reason is Reason.ERR_TOO_LARGE


@given(st.binary(max_size=500))
def test_text_form_round_trips_arbitrary_bytes(data: bytes) -> None:
    assert textform.decode(textform.encode("HC1:", data), "HC1:", LIMITS) == data


@given(st.one_of(st.text(max_size=80), st.text(alphabet=base45.ALPHABET, max_size=80)))
def test_text_form_of_arbitrary_text_raises_only_code_rejected(text: str) -> None:
    for candidate in (text, "HC1:" + text):
        with contextlib.suppress(CodeRejected):
            textform.decode(candidate, "HC1:", LIMITS)


def test_the_cwt_tag_must_wrap_a_tagged_cose_sign1() -> None:
    """Tag 61 directly over the COSE_Sign1 array (without tag 18) is refused: the CWT tag is
    only accepted in the one shape the specifications give."""
    with pytest.raises(CodeRejected) as refused:
        cose.parse(TAG_CWT + _message(), LIMITS)
    assert refused.value.reason is Reason.ERR_CBOR_TAG


def _outcome(data: bytes, limits: Limits) -> object:
    try:
        m = cose.parse(data, limits)
    except CodeRejected as e:
        return e.reason
    return (dict(m.protected), m.unprotected, m.algorithm, m.kid, m.payload, m.signature)


@given(_BUCKETS, _BUCKETS, _BUCKETS, st.integers(min_value=1, max_value=12))
def test_a_remembered_protected_header_decides_exactly_as_a_fresh_one(
    protected: dict[int, Any], unprotected: dict[int, Any], other: dict[int, Any], kid_limit: int
) -> None:
    """Protected headers that passed are remembered by their bytes; neither another
    unprotected bucket nor another caller's limits may be decided differently because of it."""
    first, second = _message(protected, unprotected), _message(protected, other)
    tight = Limits(max_kid_chars=kid_limit)
    fresh = []
    for data, limits in ((first, LIMITS), (second, LIMITS), (second, tight)):
        cose._PROTECTED.clear()
        fresh.append(_outcome(data, limits))
    cose._PROTECTED.clear()
    assert _outcome(first, LIMITS) == fresh[0]  # cold: remembers the header if it passed
    assert _outcome(first, LIMITS) == fresh[0]
    assert _outcome(second, LIMITS) == fresh[1]
    assert _outcome(second, tight) == fresh[2]


def test_a_remembered_protected_header_cannot_be_changed_by_its_reader():
    message = cose.parse(_message(), LIMITS)
    with pytest.raises(TypeError):
        message.protected[1] = -8  # type: ignore[index]
    assert cose.parse(_message(), LIMITS).algorithm is Algorithm.ES256


def test_the_remembered_protected_headers_are_bounded():
    for n in range(cose.MAX_REMEMBERED_HEADERS + 50):
        cose.parse(_message({1: ES256, 4: n.to_bytes(4, "big")}), LIMITS)
        assert len(cose._PROTECTED) <= cose.MAX_REMEMBERED_HEADERS
