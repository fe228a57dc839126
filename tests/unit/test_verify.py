"""The verify pipeline, step by step: every reason it can give, and never a false GREEN."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from gateway.codecs import base64url, cose, jws, strictcbor, strictjson, textform
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import ConfigurationInvalid
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.model import (
    Colour,
    IssuerId,
    KeyId,
    ProfileId,
    Reason,
    RegionCode,
    Status,
    Verdict,
)
from gateway.profiles import load_profile
from gateway.registry import Issuer, IssuerKey, KeyStatus, TrustState
from gateway.verify import verify_code
from tests.conftest import (
    HANGZHOU_PROFILE,
    LINK_KEY,
    NOW,
    SUBJECT_SECRET,
    World,
    add_issuer,
    make_world,
    resident_id,
)


def check(
    world: World, code: str, *, now: datetime = NOW, destination: RegionCode | None = None
) -> Verdict:
    return verify_code(
        code,
        trust=world.snapshot,
        now=now,
        limits=world.limits,
        identities=world.identities,
        destination=destination,
    )


@pytest.mark.parametrize(
    ("state", "colour"),
    [("绿码", Colour.GREEN), ("黄码", Colour.YELLOW), ("红码", Colour.RED), ("灰码", Colour.GREY)],
    ids=["green", "yellow", "red", "grey-pending"],
)
def test_each_hangzhou_state_translates_to_its_canonical_colour(world, state, colour):
    verdict = check(world, world.code(hc=state))
    assert verdict.status is Status.VALID
    assert verdict.reason is Reason.OK
    assert verdict.colour is colour
    assert verdict.code is not None
    assert verdict.code.local_state == state
    assert verdict.code.region == "330100"
    assert verdict.code.issuer == "hangzhou"


def _moved_to(world: World, *edits: tuple[str, str]) -> World:
    """``world`` with its issuer moved to version 2 of the Hangzhou profile, edited."""
    state = TrustState(world.snapshot)
    source = HANGZHOU_PROFILE.replace("version = 1", "version = 2", 1)
    for old, new in edits:
        assert old in source
        source = source.replace(old, new, 1)
    state.update_profile(IssuerId("hangzhou"), load_profile(source))
    return replace(world, snapshot=state.snapshot())


_PENDING = "灰码: pending: the back-end check has not finished"
_GREEN_NOTE = ('"绿码" = "GREEN"', '"绿码" = { colour = "GREEN", note = "normal" }')
_DEGRADE = (
    'max = "24h"',
    'max = "24h"\n[[validity.degrade]]\nfrom = "GREEN"\nto = "YELLOW"\nafter = "5m"',
)


@pytest.mark.parametrize(
    ("edits", "claims", "detail"),
    [
        ((), {"hc": "绿码"}, "verified"),
        ((), {"hc": "灰码"}, f"verified; {_PENDING}"),
        ((_GREEN_NOTE,), {"hc": "绿码"}, "verified; 绿码: normal"),
        (
            (_GREEN_NOTE, _DEGRADE),
            {"hc": "绿码", "iat": int(NOW.timestamp()) - 600},
            "verified; GREEN reads as YELLOW because of the code's age; 绿码: normal",
        ),
    ],
    ids=["no-note", "grey-note", "green-note", "degraded-and-note"],
)
def test_a_valid_verdicts_detail_carries_the_profiles_note_on_its_state(
    world: World, edits: tuple[tuple[str, str], ...], claims: dict[str, Any], detail: str
) -> None:
    """Issue 11, item 6: a state's note is what the region says the state means; it comes from
    the profile, never from the holder, so the detail holds no identity."""
    number = resident_id()
    verdict = check(_moved_to(world, *edits) if edits else world, world.code(idn=number, **claims))
    assert verdict.status is Status.VALID
    assert verdict.detail == detail
    assert number not in verdict.detail


def test_valid_verdict_explains_itself_and_masks_identity(world):
    number = resident_id()
    verdict = check(world, world.code(idn=number), destination=RegionCode("110000"))
    p = verdict.provenance
    assert (p.region, p.issuer, p.kid) == ("330100", "hangzhou", world.kid)
    assert (p.profile_id, p.profile_version) == ("hangzhou", 1)
    assert p.trust_version == world.snapshot.version
    assert p.destination == "110000"
    assert p.code_ref is not None
    assert p.code_ref.startswith("c1.")
    assert verdict.code is not None
    assert verdict.code.masked_identity == number[:3] + "*" * 13 + number[-2:]
    assert number not in repr(verdict)
    keys = IdentityKeys(SUBJECT_SECRET, LINK_KEY)
    assert verdict.code.subject == keys.subject(keys.from_number(number))
    assert verdict.code.issued_at.timestamp() == NOW.timestamp() - 600
    assert verdict.code.expires_at.timestamp() == NOW.timestamp() + 3600


def test_same_person_same_subject_different_people_different_subjects(world):
    a1 = check(world, world.code(hc="绿码", idn=resident_id(seq="001")))
    a2 = check(world, world.code(hc="红码", idn=resident_id(seq="001")))
    b = check(world, world.code(hc="绿码", idn=resident_id(seq="002")))
    assert a1.code
    assert a2.code
    assert b.code
    assert a1.code.subject == a2.code.subject
    assert a1.code.subject != b.code.subject


def _swap_payload(code: str, payload: dict[str, object]) -> str:
    header, _, signature = code.split(".")
    return f"{header}.{base64url.encode(strictjson.dumps(payload))}.{signature}"


def _cases(world: World) -> list[tuple[str, str, Reason]]:
    other = PrivateKey.generate(Algorithm.ES256)
    yellow = world.code(hc="黄码")
    green_code = world.code()
    hs256_header = base64url.encode(strictjson.dumps({"alg": "HS256", "kid": world.kid}))
    body = base64url.encode(strictjson.dumps(world.payload()))
    return [
        ("empty", "", Reason.ERR_EMPTY),
        ("spaces", "   ", Reason.ERR_EMPTY),
        ("nul", "\x00", Reason.ERR_EMPTY),
        ("too-large", "eyJ" + "A" * 8000, Reason.ERR_TOO_LARGE),
        ("fullwidth", "ＨＣ１:ABC", Reason.ERR_ENCODING),
        ("zero-width", green_code[:10] + "\u200b" + green_code[10:], Reason.ERR_ENCODING),
        ("newline", green_code + "\n", Reason.ERR_ENCODING),
        ("unknown-prefix", "HC1:NCFOXN%TS3DH", Reason.ERR_FORMAT_UNKNOWN),
        ("lowercase-jws-shape", "eyj" + green_code[3:], Reason.ERR_FORMAT_UNKNOWN),
        ("jws-shape-no-dots", "eyJhbGciOiJFUzI1NiJ9", Reason.ERR_FORMAT_UNKNOWN),
        ("plain-text", "hello world", Reason.ERR_FORMAT_UNKNOWN),
        ("four-segments", green_code + ".xyz", Reason.ERR_JWS_FORMAT),
        ("two-codes-joined", green_code + green_code, Reason.ERR_JWS_FORMAT),
        ("tampered-colour", _swap_payload(yellow, world.payload(hc="绿码")), Reason.ERR_SIGNATURE),
        ("other-key", world.code(key=other), Reason.ERR_SIGNATURE),
        (
            "alg-es384-header-for-es256-key",
            world.code(header={"alg": "ES384", "kid": world.kid}, key=_es384()),
            Reason.ERR_ALG_NOT_ALLOWED,
        ),
        (
            "alg-none",
            _unsigned({"alg": "none", "kid": world.kid}, body),
            Reason.ERR_ALG_NOT_ALLOWED,
        ),
        ("alg-hs256", f"{hs256_header}.{body}.AAAA", Reason.ERR_ALG_NOT_ALLOWED),
        ("header-jwk", world.code(header=_with(world, jwk={"kty": "EC"})), Reason.ERR_HEADER),
        ("header-jku", world.code(header=_with(world, jku="http://x")), Reason.ERR_HEADER),
        ("header-crit", world.code(header=_with(world, crit=["b64"])), Reason.ERR_HEADER),
        ("no-kid", world.code(header={"alg": "ES256"}), Reason.ERR_HEADER),
        (
            "hostile-kid",
            world.code(header={"alg": "ES256", "kid": "' OR 1=1 --"}),
            Reason.ERR_HEADER,
        ),
        ("unknown-kid", world.code(header={"alg": "ES256", "kid": "nope"}), Reason.ERR_KEY_UNKNOWN),
        ("path-kid", world.code(header={"alg": "ES256", "kid": "../../x"}), Reason.ERR_KEY_UNKNOWN),
        ("unknown-issuer", world.code(iss="yuhang"), Reason.ERR_ISSUER_UNKNOWN),
        ("issuer-case", world.code(iss="Hangzhou"), Reason.ERR_ISSUER_UNKNOWN),
        ("issuer-zero-width", world.code(iss="hang\u200bzhou"), Reason.ERR_ISSUER_UNKNOWN),
        ("issuer-cyrillic-a", world.code(iss="h\u0430ngzhou"), Reason.ERR_ISSUER_UNKNOWN),
        ("issuer-missing", world.code(iss=None), Reason.ERR_SCHEMA),
        ("issuer-number", world.code(iss=330100), Reason.ERR_SCHEMA),
        ("payload-not-object", _signed(world, b"[1,2]"), Reason.ERR_SCHEMA),
        (
            "payload-duplicate-member",
            _signed(world, b'{"hc":"1","hc":"2"}'),
            Reason.ERR_DUPLICATE_KEY,
        ),
        ("payload-nan", _signed(world, b'{"iat":NaN}'), Reason.ERR_CLAIMS),
        ("payload-not-utf8", _signed(world, b'{"iss":"\xff"}'), Reason.ERR_UTF8),
        ("expired", world.code(exp=int(NOW.timestamp())), Reason.ERR_EXPIRED),
        (
            "future",
            world.code(iat=int(NOW.timestamp()) + 3600, exp=int(NOW.timestamp()) + 7200),
            Reason.ERR_NOT_YET_VALID,
        ),
        ("exp-before-iat", world.code(exp=int(NOW.timestamp()) - 1200), Reason.ERR_CLAIMS),
        ("exp-true", world.code(exp=True), Reason.ERR_CLAIMS),
        ("exp-string", world.code(exp=str(int(NOW.timestamp()) + 60)), Reason.ERR_CLAIMS),
        ("exp-float", world.code(exp=NOW.timestamp() + 60.5), Reason.ERR_CLAIMS),
        ("exp-negative", world.code(exp=-1), Reason.ERR_CLAIMS),
        ("exp-milliseconds", world.code(exp=int(NOW.timestamp()) * 1000), Reason.ERR_CLAIMS),
        ("exp-missing", world.code(exp=None), Reason.ERR_SCHEMA),
        (
            "validity-over-24h",
            world.code(exp=int(NOW.timestamp()) + 25 * 3600),
            Reason.ERR_CLAIMS,
        ),
        ("state-unlisted", world.code(hc="蓝码"), Reason.ERR_COLOUR_UNKNOWN),
        ("state-english", world.code(hc="green"), Reason.ERR_COLOUR_UNKNOWN),
        ("state-number", world.code(hc=1), Reason.ERR_SCHEMA),
        ("state-missing", world.code(hc=None), Reason.ERR_SCHEMA),
        ("identity-bad-check-digit", world.code(idn="330106199003071220"), Reason.ERR_SCHEMA),
        ("identity-number", world.code(idn=330106199003071228), Reason.ERR_SCHEMA),
        ("identity-missing", world.code(idn=None), Reason.ERR_SCHEMA),
        ("signature-63-bytes", _resign(green_code, b"\x01" * 63), Reason.ERR_SIG_ENCODING),
        (
            "signature-der",
            _resign(green_code, b"\x30\x44" + b"\x02\x20" + b"\x01" * 66),
            Reason.ERR_SIG_ENCODING,
        ),
        ("signature-bad-base64", green_code[:-1] + "+", Reason.ERR_BASE64),
    ]


def _with(world: World, **extra: object) -> dict[str, object]:
    return {"alg": "ES256", "kid": world.kid, **extra}


def _es384() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES384)


def _unsigned(header: dict[str, object], body: str) -> str:
    return f"{base64url.encode(strictjson.dumps(header))}.{body}.AAAA"


def _signed(world: World, payload: bytes) -> str:
    return jws.sign({"alg": "ES256", "kid": world.kid}, payload, world.key)


def _resign(code: str, signature: bytes) -> str:
    head, body, _ = code.split(".")
    return f"{head}.{body}.{base64url.encode(signature)}"


_WORLD = make_world()


@pytest.mark.parametrize(
    ("code", "reason"),
    [pytest.param(code, reason, id=name) for name, code, reason in _cases(_WORLD)],
)
def test_rejections_carry_their_reason_and_are_never_green(code, reason):
    verdict = check(_WORLD, code)
    assert verdict.reason is reason, verdict.detail
    assert verdict.status is Status.REJECTED
    assert verdict.colour is Colour.GREY
    assert verdict.code is None


def test_issued_in_the_future_within_the_leeway_is_accepted(world):
    code = world.code(iat=int(NOW.timestamp()) + 30)
    assert check(world, code).status is Status.VALID
    strict = replace(world, limits=Limits(leeway=timedelta(0)))
    assert check(strict, code).reason is Reason.ERR_NOT_YET_VALID


def test_expiry_gets_no_leeway(world):
    code = world.code(exp=int(NOW.timestamp()) + 1)
    assert check(world, code).status is Status.VALID
    assert check(world, code, now=NOW + timedelta(seconds=1)).reason is Reason.ERR_EXPIRED


def test_rejection_names_what_was_learned_before_failing(world):
    verdict = check(world, world.code(exp=int(NOW.timestamp()) - 1))
    assert verdict.reason is Reason.ERR_EXPIRED
    p = verdict.provenance
    assert (p.issuer, p.kid, p.profile_id) == ("hangzhou", world.kid, "hangzhou")
    unknown = check(world, world.code(iss="yuhang"))
    assert unknown.provenance.issuer is None
    assert unknown.provenance.code_ref is not None


def test_ecdsa_high_s_signature_verifies_with_the_same_code_reference(world):
    """threats.md pitfall 3: s -> n - s is valid; identity must be keyed on signed content."""
    code = world.code()
    head, body, sig = code.split(".")
    raw = base64url.decode(sig)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    s = int.from_bytes(raw[32:], "big")
    malleated = f"{head}.{body}.{base64url.encode(raw[:32] + (n - s).to_bytes(32, 'big'))}"
    first, second = check(world, code), check(world, malleated)
    assert second.status is Status.VALID
    assert first.provenance.code_ref == second.provenance.code_ref


# ---------------------------------------------------------------- keys: status and windows


def _world_with_key(**key_fields: object) -> World:
    base = make_world()
    key = IssuerKey(IssuerId("hangzhou"), base.kid, base.key.public_key(), **key_fields)  # type: ignore[arg-type]
    return make_world(key=base.key, issuer_key=key)


def test_revoked_key_signs_nothing():
    world = _world_with_key(status=KeyStatus.REVOKED, status_since=NOW - timedelta(days=1))
    verdict = check(world, world.code())
    assert verdict.reason is Reason.ERR_KEY_REVOKED
    assert verdict.colour is Colour.GREY


def test_retired_key_keeps_earlier_codes_and_refuses_later_ones():
    retired_at = NOW - timedelta(minutes=30)
    world = _world_with_key(status=KeyStatus.RETIRED, status_since=retired_at)
    before = world.code(iat=int(retired_at.timestamp()) - 60)
    after = world.code(iat=int(retired_at.timestamp()) + 60)
    assert check(world, before).status is Status.VALID
    assert check(world, after).reason is Reason.ERR_KEY_NOT_VALID


def test_key_validity_window_must_cover_the_issue_time():
    world = _world_with_key(not_before=NOW - timedelta(minutes=5))
    assert check(world, world.code()).reason is Reason.ERR_KEY_NOT_VALID  # issued 10 min ago
    late = _world_with_key(not_after=NOW - timedelta(hours=1))
    assert check(late, late.code()).reason is Reason.ERR_KEY_NOT_VALID


# ---------------------------------------------------------------- never another issuer's keys


def _two_issuers() -> tuple[World, PrivateKey]:
    """Hangzhou and a second JWS issuer 'xihu' with its own key under the same key id."""
    world = make_world()
    state = TrustState(world.snapshot)
    add_issuer(
        state, Issuer(IssuerId("xihu"), RegionCode("330106"), "西湖", ProfileId("hangzhou"), 1)
    )
    xihu_key = PrivateKey.generate(Algorithm.ES256)
    state.add_key(IssuerKey(IssuerId("xihu"), world.kid, xihu_key.public_key()))
    return replace(world, snapshot=state.snapshot()), xihu_key


def test_a_named_issuer_is_checked_with_its_own_keys_only():
    world, xihu_key = _two_issuers()
    # Signed by xihu's key but claiming to be hangzhou: hangzhou's key does not verify it.
    forged = world.code(key=xihu_key, iss="hangzhou")
    assert check(world, forged).reason is Reason.ERR_SIGNATURE
    genuine = world.code(key=xihu_key, iss="xihu")
    verdict = check(world, genuine)
    assert verdict.status is Status.VALID
    assert verdict.code is not None
    assert (verdict.code.issuer, verdict.code.region) == ("xihu", "330106")


COSE_PROFILE = """
[profile]
id = "kidonly"
version = 1
[envelope]
format = "cose"
text = "base45-zlib"
prefix = "TS1:"
payload = "cbor"
[claims]
issued_at = { path = "6", format = "unix-s" }
expires_at = { path = "4", format = "unix-s" }
state = "-260.s"
identity = { path = "-260.id", scheme = "cn-resident-id" }
[states]
"G" = "GREEN"
"R" = "RED"
"""


def test_kid_shared_by_two_issuers_is_attributed_to_the_one_that_verifies():
    """threats.md G35: a format without an issuer name tries each issuer's own key."""
    profile = load_profile(COSE_PROFILE)
    state = TrustState()
    state.add_profile(profile)
    keys = {}
    for issuer_id, region in (("alpha", "110000"), ("beta", "310000")):
        add_issuer(
            state,
            Issuer(IssuerId(issuer_id), RegionCode(region), issuer_id, ProfileId("kidonly"), 1),
        )
        keys[issuer_id] = PrivateKey.generate(Algorithm.ES256)
        kid = KeyId("c2hhcmVk")  # base64 of b"shared"
        state.add_key(IssuerKey(IssuerId(issuer_id), kid, keys[issuer_id].public_key()))
    world = replace(make_world(), snapshot=state.snapshot())
    claims = {
        6: int(NOW.timestamp()) - 60,
        4: int(NOW.timestamp()) + 600,
        -260: {"s": "G", "id": resident_id()},
    }
    message = cose.sign(strictcbor.dumps(claims), keys["beta"], b"shared")
    code = textform.encode("TS1:", message)
    verdict = check(world, code)
    assert verdict.status is Status.VALID
    assert verdict.code is not None
    assert (verdict.code.issuer, verdict.code.region) == ("beta", "310000")
    rogue = cose.sign(strictcbor.dumps(claims), PrivateKey.generate(Algorithm.ES256), b"shared")
    assert check(world, textform.encode("TS1:", rogue)).reason is Reason.ERR_SIGNATURE


# ---------------------------------------------------------------- fail closed on the unexpected


def test_unexpected_exception_is_internal_rejection_logged_without_the_code(
    world, monkeypatch, caplog
):
    code = world.code()

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom while handling {code}")

    monkeypatch.setattr("gateway.verify.translate", explode)
    with caplog.at_level(logging.ERROR, logger="gateway.verify"):
        verdict = check(world, code)
    assert verdict.reason is Reason.ERR_INTERNAL
    assert verdict.status is Status.REJECTED
    assert verdict.colour is Colour.GREY
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    assert code not in logged
    assert code.split(".")[1] not in logged
    assert resident_id() not in logged


def test_an_empty_registry_recognises_nothing(world):
    empty = replace(world, snapshot=TrustState().snapshot())
    assert check(empty, world.code()).reason is Reason.ERR_FORMAT_UNKNOWN


def test_tightening_a_profiles_algorithms_stops_keys_of_other_algorithms_at_once(
    world: World,
) -> None:
    """An issuer moved to a profile version whose envelope allows only EdDSA: its registered
    ES256 key verifies nothing from then on (ERR_ALG_NOT_ALLOWED), and the registry refuses new
    ES256 keys for it; an EdDSA key is admitted."""
    code = world.code()
    before = verify_code(
        code, trust=world.snapshot, now=NOW, limits=world.limits, identities=world.identities
    )
    assert before.status is Status.VALID
    state = TrustState(world.snapshot)
    source = HANGZHOU_PROFILE.replace("version = 1", "version = 2", 1).replace(
        "[envelope]\n", '[envelope]\nalgorithms = ["EdDSA"]\n', 1
    )
    state.update_profile(IssuerId("hangzhou"), load_profile(source))
    after = verify_code(
        code, trust=state.snapshot(), now=NOW, limits=world.limits, identities=world.identities
    )
    assert after.reason is Reason.ERR_ALG_NOT_ALLOWED
    assert after.colour is Colour.GREY
    with pytest.raises(ConfigurationInvalid) as refused:
        state.add_key(
            IssuerKey(
                IssuerId("hangzhou"),
                KeyId("hangzhou-test-2"),
                PrivateKey.generate(Algorithm.ES256).public_key(),
            )
        )
    assert refused.value.reason is Reason.ERR_ALG_NOT_ALLOWED
    eddsa = PrivateKey.generate(Algorithm.EDDSA)
    state.add_key(IssuerKey(IssuerId("hangzhou"), KeyId("hangzhou-test-3"), eddsa.public_key()))
