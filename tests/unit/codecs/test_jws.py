"""Compact JWS parsing (threats.md rows B9, B11, B12, E25-E28) and the issuers' signer."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import base64url, jws
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

LIMITS = Limits()
PAYLOAD = b'{"iss":"hangzhou","hc":"\xe7\xbb\xbf\xe7\xa0\x81"}'
SIGNATURE = bytes(range(64))
ES256_KEY = PrivateKey.generate(Algorithm.ES256)
EDDSA_KEY = PrivateKey.generate(Algorithm.EDDSA)


def _segment(part: bytes | dict[str, Any] | list[Any] | str | int | None) -> str:
    raw = part if isinstance(part, bytes) else json.dumps(part, separators=(",", ":")).encode()
    return base64url.encode(raw)


def _token(
    header: bytes | dict[str, Any] | list[Any] | str | int | None,
    payload: bytes = PAYLOAD,
    signature: bytes = SIGNATURE,
) -> str:
    return ".".join((_segment(header), base64url.encode(payload), base64url.encode(signature)))


def _reason(text: str, limits: Limits = LIMITS) -> Reason:
    with pytest.raises(CodeRejected) as e:
        jws.parse(text, limits)
    return e.value.reason


VALID = _token({"alg": "ES256", "kid": "hangzhou-test-1", "typ": "JWT"})


def test_a_well_formed_token_is_decoded_exactly():
    token = jws.parse(VALID, LIMITS)
    assert token.header == {"alg": "ES256", "kid": "hangzhou-test-1", "typ": "JWT"}
    assert token.algorithm is Algorithm.ES256
    assert token.kid == "hangzhou-test-1"
    assert token.payload == PAYLOAD
    assert token.signature == SIGNATURE
    assert token.signing_input == VALID.rsplit(".", 1)[0].encode("ascii")


@pytest.mark.parametrize(
    "header_json",
    [
        b'{ "alg" : "ES256" , "kid" : "k" }',  # spaces: not how jws.sign would write it
        b'{"kid":"k","alg":"ES256"}',  # member order
        b'{"alg":"ES\\u0032\\u00356"}',  # escapes
        b'\n{"alg":"ES256","kid":"k"}\t',
    ],
    ids=["spaces", "member-order", "escaped-alg", "outer-whitespace"],
)
def test_signing_input_is_the_ascii_of_the_segments_as_received(header_json: bytes) -> None:
    text = _token(header_json)
    token = jws.parse(text, LIMITS)
    header_b64, payload_b64, _ = text.split(".")
    assert token.signing_input == f"{header_b64}.{payload_b64}".encode("ascii")
    assert token.algorithm is Algorithm.ES256


@pytest.mark.parametrize(
    ("header", "algorithm", "kid"),
    [
        ({"alg": "ES256"}, Algorithm.ES256, None),
        ({"alg": "ES384", "kid": "k"}, Algorithm.ES384, "k"),
        ({"alg": "EdDSA", "kid": "k"}, Algorithm.EDDSA, "k"),
        ({"alg": "PS256", "kid": "k"}, Algorithm.PS256, "k"),
        ({"alg": "ES256", "zip": "DEF", "kid": "x" * 43}, Algorithm.ES256, "x" * 43),
        ({"alg": "ES256", "cty": "JWT", "typ": "t" * 64}, Algorithm.ES256, None),
        ({"alg": "ES256", "kid": "~" * LIMITS.max_kid_chars}, Algorithm.ES256, "~" * 128),
        ({"alg": "ES256", "kid": "!"}, Algorithm.ES256, "!"),
    ],
    ids=[
        "alg-only",
        "es384",
        "eddsa",
        "ps256",
        "shc-zip",
        "cty-and-64-char-typ",
        "kid-at-limit",
        "kid-one-char",
    ],
)
def test_allowed_headers_are_accepted(
    header: dict[str, Any], algorithm: Algorithm, kid: str | None
) -> None:
    token = jws.parse(_token(header), LIMITS)
    assert token.algorithm is algorithm
    assert token.kid == kid
    assert token.header == header


def test_an_empty_payload_is_structurally_allowed():
    token = jws.parse(_token({"alg": "ES256"}, payload=b""), LIMITS)
    assert token.payload == b""


ES = _segment({"alg": "ES256"})
P = base64url.encode(PAYLOAD)
S = base64url.encode(SIGNATURE)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        f"{ES}.{P}",  # 2 segments
        f"{ES}.{P}.{S}.{S}",  # 4 segments
        f"{ES}.{P}.{S}.{S}.{S}",  # 5 segments: JWE compact serialization
        "....",
        "..",  # 3 empty segments: empty header first
        f".{P}.{S}",  # empty header
        f"{ES}.{P}.",  # empty signature
        f"{ES}..",  # empty payload and signature
        json.dumps({"payload": P, "signatures": [{"protected": ES, "signature": S}]}),
        f"{ES}．{P}．{S}",  # fullwidth full stops are no separators
    ],
    ids=[
        "empty",
        "one-segment",
        "two-segments",
        "four-segments",
        "five-segments-jwe",
        "five-empty-segments",
        "three-empty-segments",
        "empty-header",
        "empty-signature",
        "empty-payload-and-signature",
        "json-serialization",
        "fullwidth-dots",
    ],
)
def test_segment_structure_errors(text: str) -> None:
    assert _reason(text) is Reason.ERR_JWS_FORMAT


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "None"},
        {"alg": "NONE"},
        {"alg": "nOnE"},
        {"alg": ""},
        {"alg": "HS256"},  # algorithm confusion with the public key as HMAC secret (E26)
        {"alg": "HS512"},
        {"alg": "ES512"},
        {"alg": "es256"},  # names are case-sensitive
        {"alg": "ES256 "},
        {"alg": "Ed25519"},
        {"alg": None},
        {"alg": 1},
        {"alg": True},
        {"alg": ["ES256"]},
        {"kid": "k"},  # missing alg
        {},
    ],
    ids=[
        "none",
        "None",
        "NONE",
        "nOnE",
        "empty-string",
        "HS256",
        "HS512",
        "ES512",
        "lowercase-es256",
        "trailing-space",
        "curve-name",
        "null",
        "number",
        "boolean",
        "array",
        "missing",
        "empty-header-object",
    ],
)
def test_algorithms_not_verified_here_are_refused(header: dict[str, Any]) -> None:
    assert _reason(_token(header)) is Reason.ERR_ALG_NOT_ALLOWED


@pytest.mark.parametrize(
    "header",
    [{"alg": "none"}, {"alg": "none", "kid": "hangzhou-test-1"}],
    ids=["alg-none", "alg-none-with-kid"],
)
def test_alg_none_with_an_empty_signature_is_an_algorithm_refusal(header: dict[str, Any]) -> None:
    """Wycheproof ``AlgIsNone`` (row E25): the algorithm is refused before the empty signature."""
    assert _reason(_token(header, signature=b"")) is Reason.ERR_ALG_NOT_ALLOWED


def test_duplicate_alg_members_are_rejected():
    text = _token(b'{"alg":"ES256","alg":"none"}')
    assert _reason(text) is Reason.ERR_DUPLICATE_KEY


@pytest.mark.parametrize(
    "header",
    [
        # header-supplied keys (E27) and processing instructions (E28)
        {"alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}},
        {"alg": "ES256", "jku": "https://attacker.example/jwks.json"},
        {"alg": "ES256", "x5u": "https://attacker.example/cert.pem"},
        {"alg": "ES256", "x5c": ["MIIB"]},
        {"alg": "ES256", "x5t": "AAAA"},
        {"alg": "ES256", "x5t#S256": "AAAA"},
        {"alg": "ES256", "crit": ["b64"], "b64": False},
        {"alg": "ES256", "crit": ["exp"]},
        {"alg": "ES256", "b64": False},
        {"alg": "ES256", "enc": "A256GCM"},
        {"alg": "ES256", "epk": {"kty": "EC"}},
        {"alg": "ES256", "p2s": "AAAA"},
        {"alg": "ES256", "iss": "hangzhou"},
        {"alg": "ES256", "ALG": "none"},
        {"alg": "none", "jwk": {"kty": "oct"}},  # members are checked before the algorithm
        # hostile or malformed kids (E27)
        {"alg": "ES256", "kid": "' OR 1=1 --"},
        {"alg": "ES256", "kid": "hangzhou test"},
        {"alg": "ES256", "kid": "k\t"},
        {"alg": "ES256", "kid": "k\n"},
        {"alg": "ES256", "kid": "k\x00"},
        {"alg": "ES256", "kid": "k\x7f"},
        {"alg": "ES256", "kid": "kïd"},
        {"alg": "ES256", "kid": "杭州-1"},
        {"alg": "ES256", "kid": "ｋｉｄ"},
        {"alg": "ES256", "kid": "k\u200bid"},
        {"alg": "ES256", "kid": ""},
        {"alg": "ES256", "kid": "k" * (LIMITS.max_kid_chars + 1)},
        {"alg": "ES256", "kid": 1},
        {"alg": "ES256", "kid": ["k"]},
        {"alg": "ES256", "kid": True},
        # typ, cty and zip must be short text
        {"alg": "ES256", "typ": ""},
        {"alg": "ES256", "typ": "t" * 65},
        {"alg": "ES256", "typ": 1},
        {"alg": "ES256", "cty": ["JWT"]},
        {"alg": "ES256", "zip": False},
        # not an object
        ["alg", "ES256"],
        "ES256",
        1,
        None,
    ],
    ids=[
        "jwk",
        "jku",
        "x5u",
        "x5c",
        "x5t",
        "x5t-s256",
        "crit-b64",
        "crit",
        "b64-false",
        "enc",
        "epk",
        "p2s",
        "claim-in-header",
        "uppercase-member",
        "jwk-with-alg-none",
        "kid-sql-injection",
        "kid-space",
        "kid-tab",
        "kid-newline",
        "kid-nul",
        "kid-del",
        "kid-latin1",
        "kid-chinese",
        "kid-fullwidth",
        "kid-zero-width-space",
        "kid-empty",
        "kid-over-limit",
        "kid-number",
        "kid-array",
        "kid-boolean",
        "typ-empty",
        "typ-65-chars",
        "typ-number",
        "cty-array",
        "zip-boolean",
        "header-array",
        "header-string",
        "header-number",
        "header-null",
    ],
)
def test_header_errors(header: Any) -> None:
    assert _reason(_token(header)) is Reason.ERR_HEADER


def test_a_kid_over_a_custom_limit_is_a_header_error():
    assert _reason(_token({"alg": "ES256", "kid": "k" * 9}), Limits(max_kid_chars=8)) is (
        Reason.ERR_HEADER
    )


@pytest.mark.parametrize("name", ["kid", "typ", "cty", "zip"])
def test_a_null_header_member_is_a_header_error(name: str) -> None:
    assert _reason(_token({"alg": "ES256", name: None})) is Reason.ERR_HEADER


@pytest.mark.parametrize(
    "header",
    [{"alg": "ES256", "kid": "k" * 10_000}, {"alg": "ES256", "kid": "k" * 3000}],
    ids=["10kb-kid", "3kb-kid"],
)
def test_a_huge_kid_is_refused_before_it_is_decoded(header: dict[str, Any]) -> None:
    """Row E27 allows ERR_HEADER or ERR_TOO_LARGE; the header size limit comes first."""
    assert _reason(_token(header)) is Reason.ERR_TOO_LARGE


def _padded_header(size: int) -> bytes:
    """``{"alg":"ES256"}`` padded with JSON whitespace to exactly ``size`` bytes."""
    core = b'{"alg":"ES256"'
    return core + b" " * (size - len(core) - 1) + b"}"


def test_a_header_of_exactly_the_limit_is_accepted():
    header = _padded_header(LIMITS.max_header_bytes)
    assert jws.parse(_token(header), LIMITS).algorithm is Algorithm.ES256


def test_a_payload_of_exactly_the_limit_is_accepted():
    payload = b"x" * LIMITS.max_payload_bytes
    assert jws.parse(_token({"alg": "ES256"}, payload=payload), LIMITS).payload == payload


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        (_padded_header(LIMITS.max_header_bytes + 1), PAYLOAD),
        (_padded_header(100_000), PAYLOAD),
        ({"alg": "ES256"}, b"x" * (LIMITS.max_payload_bytes + 1)),
        ({"alg": "ES256"}, b"x" * 1_000_000),
    ],
    ids=["header-limit-plus-1", "header-100kb", "payload-limit-plus-1", "payload-1mb"],
)
def test_oversized_header_or_payload(header: bytes | dict[str, Any], payload: bytes) -> None:
    assert _reason(_token(header, payload=payload)) is Reason.ERR_TOO_LARGE


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (ES + "=." + P + "." + S, Reason.ERR_BASE64),
        (ES.replace("J", "+", 1) + "." + P + "." + S, Reason.ERR_BASE64),
        (ES + "." + P + "=." + S, Reason.ERR_BASE64),
        (ES + "." + P + "/." + S, Reason.ERR_BASE64),
        (ES + "." + P + "." + S + "=", Reason.ERR_BASE64),
        (ES + "." + P + "." + S + " ", Reason.ERR_BASE64),
        (ES + "." + P + "." + S[:-1] + "B", Reason.ERR_BASE64),  # non-zero trailing bits
        (ES + "." + P + ".A", Reason.ERR_BASE64),  # length 1 mod 4
        ("é" + ES + "." + P + "." + S, Reason.ERR_BASE64),
        (ES + "." + P + "ｘ." + S, Reason.ERR_BASE64),
        (_token(b'{"alg":"ES256","x":"\xff"}'), Reason.ERR_UTF8),
        (_token(b'\xef\xbb\xbf{"alg":"ES256"}'), Reason.ERR_UTF8),
        (_token('{"alg":"ES256"}'.encode("utf-16")), Reason.ERR_UTF8),
        (_token(b'{"alg":"ES256"} x'), Reason.ERR_SCHEMA),
        (_token(b'{"alg":"ES256"}{}'), Reason.ERR_SCHEMA),
        (_token(b'{"alg":"ES256","kid":NaN}'), Reason.ERR_CLAIMS),
        (_token(b'{"alg":"ES256","x":' + b"9" * 1500 + b"}"), Reason.ERR_CLAIMS),
        (_token({"alg": "ES256", "jwk": {"kty": "EC", "x": {"deep": 1}}}), Reason.ERR_TOO_DEEP),
        (_token(b"[" * 2000), Reason.ERR_TOO_DEEP),
    ],
    ids=[
        "header-padding",
        "header-plus",
        "payload-padding",
        "payload-slash",
        "signature-padding",
        "signature-space",
        "signature-trailing-bits",
        "signature-length-1-mod-4",
        "non-ascii-header",
        "fullwidth-in-payload",
        "header-invalid-utf8",
        "header-bom",
        "header-utf16",
        "header-trailing-garbage",
        "header-two-values",
        "header-nan",
        "header-1500-digits",
        "header-too-deep",
        "header-2000-brackets",
    ],
)
def test_encoding_errors_in_segments(text: str, reason: Reason) -> None:
    assert _reason(text) is reason


@pytest.mark.parametrize("key", [ES256_KEY, EDDSA_KEY], ids=["es256", "eddsa"])
def test_sign_then_parse_round_trips_and_verifies(key: PrivateKey) -> None:
    header = {"alg": key.algorithm.value, "kid": "hangzhou-test-1", "typ": "JWT"}
    text = jws.sign(header, PAYLOAD, key)
    token = jws.parse(text, LIMITS)
    assert token.header == header
    assert token.algorithm is key.algorithm
    assert token.kid == "hangzhou-test-1"
    assert token.payload == PAYLOAD
    assert token.signing_input == text.rsplit(".", 1)[0].encode("ascii")
    public = key.public_key()
    assert public.verify(token.signing_input, token.signature)
    assert not public.verify(token.signing_input + b"x", token.signature)


def test_a_signature_does_not_cover_another_payload():
    text = jws.sign({"alg": "ES256"}, PAYLOAD, ES256_KEY)
    other = jws.sign({"alg": "ES256"}, PAYLOAD.replace(b"hangzhou", b"beijing"), ES256_KEY)
    token = jws.parse(text, LIMITS)
    forged = jws.parse(other.rsplit(".", 1)[0] + "." + text.rsplit(".", 1)[1], LIMITS)
    assert not ES256_KEY.public_key().verify(forged.signing_input, token.signature)


@pytest.mark.parametrize(
    "header",
    [{"alg": "ES384"}, {"alg": "none"}, {"kid": "k"}],
    ids=["other-alg", "none", "missing"],
)
def test_sign_refuses_a_header_that_does_not_name_the_key_algorithm(header: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="alg"):
        jws.sign(header, PAYLOAD, ES256_KEY)


_SEGMENT_CHARS = st.text(alphabet="AZaz09-_+/=. é\n", max_size=40)


@given(st.one_of(st.text(max_size=120), _SEGMENT_CHARS))
def test_arbitrary_text_raises_only_code_rejected(text: str) -> None:
    with contextlib.suppress(CodeRejected):
        jws.parse(text, LIMITS)


@given(st.binary(max_size=80), st.binary(max_size=40), st.binary(max_size=70))
def test_arbitrary_segment_bytes_raise_only_code_rejected(
    header: bytes, payload: bytes, signature: bytes
) -> None:
    with contextlib.suppress(CodeRejected):
        jws.parse(_token(header, payload, signature), LIMITS)


_HEADER_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
_HEADERS = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "cty", "zip", "jwk", "crit", "x"]),
    _HEADER_VALUES | st.sampled_from(["ES256", "EdDSA", "none"]),
    max_size=5,
)


@given(_HEADERS)
def test_arbitrary_headers_raise_only_code_rejected(header: dict[str, Any]) -> None:
    try:
        token = jws.parse(_token(header), LIMITS)
    except CodeRejected:
        return
    assert set(token.header) <= jws.ALLOWED_HEADER
    assert token.header["alg"] == token.algorithm.value


def _outcome(text: str, limits: Limits) -> object:
    try:
        token = jws.parse(text, limits)
    except CodeRejected as e:
        return e.reason
    return (dict(token.header), token.algorithm, token.kid, token.payload, token.signature)


@given(_HEADERS, st.integers(min_value=1, max_value=12))
def test_a_remembered_header_decides_exactly_as_a_fresh_one(
    header: dict[str, Any], kid_limit: int
) -> None:
    """Headers that passed are remembered by their text; the decision must not change, also
    under another caller's (tighter) key-id limit."""
    text = _token(header)
    tight = Limits(max_kid_chars=kid_limit)
    jws._HEADERS.clear()
    fresh = _outcome(text, LIMITS)
    jws._HEADERS.clear()
    fresh_tight = _outcome(text, tight)
    jws._HEADERS.clear()
    assert _outcome(text, LIMITS) == fresh  # cold, remembers it if it passed
    assert _outcome(text, LIMITS) == fresh  # warm
    assert _outcome(text, tight) == fresh_tight  # warm, another limit


def test_a_remembered_header_cannot_be_changed_by_its_reader():
    token = jws.parse(VALID, LIMITS)
    with pytest.raises(TypeError):
        token.header["alg"] = "none"  # type: ignore[index]
    assert jws.parse(VALID, LIMITS).algorithm is Algorithm.ES256


def test_the_remembered_headers_are_bounded():
    for n in range(jws.MAX_REMEMBERED_HEADERS + 50):
        jws.parse(_token({"alg": "ES256", "kid": f"k{n}"}), LIMITS)
        assert len(jws._HEADERS) <= jws.MAX_REMEMBERED_HEADERS
