"""A replica's trust list: read back into the snapshot the hub signed, ordered, refused when it
must be, and judged on only while fresh."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tracemalloc
import zlib
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from gateway import replica, replica_secrets, trustlist
from gateway.codecs import base64url, compression, jws, strictjson
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import ConfigurationInvalid
from gateway.limits import Limits
from gateway.model import IssuerId, Reason, Status, Verdict
from gateway.registry import OnlineEndpoint, TrustHolder, TrustSnapshot
from gateway.service import VerificationService
from regions.common.spec import Level
from tests.conftest import NOW, resident_id
from tests.regionworld import RegionsWorld, build_world

KEY = PrivateKey.generate(Algorithm.ES256)
FRESH_FOR = timedelta(minutes=15)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> RegionsWorld:
    return build_world(Path(tmp_path_factory.mktemp("regions")))


def signed(world: RegionsWorld, at=NOW, fresh_for=FRESH_FOR, key=KEY, **changes) -> str:
    content = {**trustlist.document(world.trust, at, at + fresh_for), **changes}
    return trustlist.sign(content, key)


def test_a_trust_list_reads_back_into_the_snapshot_it_lists(world):
    text = signed(world)
    read = replica.read(text, KEY.public_key())
    assert (read.version, read.issued_at, read.fresh_until) == (
        world.trust.version,
        NOW,
        NOW + FRESH_FOR,
    )
    again = trustlist.document(read.snapshot, NOW, NOW + FRESH_FOR)
    original = trustlist.document(world.trust, NOW, NOW + FRESH_FOR)
    # Everything but the pseudonym keys themselves (which the list says exist, never carries).
    flags = [[i.pop("pseudonymous") for i in d["issuers"]] for d in (original, again)]
    assert any(flags[0])
    assert not any(flags[1])
    assert again == original
    assert read.snapshot.routes.keys() == world.trust.routes.keys()


@pytest.mark.parametrize("name", ["hangzhou", "guangdong", "hubei", "beijing", "zhejiang"])
def test_a_replica_judges_offline_codes_as_the_hub_and_lacks_only_secrets(world, name):
    read = replica.read(signed(world), KEY.public_key())
    code = world.issue_level(name, resident_id(), Level.GREEN, NOW)
    hub = world.verify(code.code, NOW)
    mirror = RegionsWorld(read.snapshot, world.identities, world.regions, world.tokens)
    answer = mirror.verify(code.code, NOW)
    if name in ("beijing", "zhejiang"):  # a pseudonym key, online credentials: not in the list
        assert hub.status is Status.VALID
        assert (answer.status, answer.reason) == (
            Status.UNVERIFIABLE,
            Reason.ERR_SECRET_UNAVAILABLE,
        )
        assert "replica" in answer.detail
    else:
        assert answer == hub
        assert answer.status is Status.VALID


def test_lists_only_move_forward(world):
    public = KEY.public_key()
    first = replica.read(signed(world), public)
    heartbeat = replica.read(signed(world, at=NOW + timedelta(minutes=5)), public)
    assert replica.successor(None, first)
    assert not replica.successor(first, first)
    assert replica.successor(first, heartbeat)
    with pytest.raises(ConfigurationInvalid, match="a replay") as replay:
        replica.successor(heartbeat, first)
    assert replay.value.reason is Reason.ERR_VERSION
    older = replica.read(signed(world, version=world.trust.version - 1), public)
    with pytest.raises(ConfigurationInvalid, match="a rollback"):
        replica.successor(first, older)
    newer = replica.read(signed(world, version=world.trust.version + 1), public)
    assert replica.successor(heartbeat, newer)


def _inflated(payload: str) -> bytes:
    return compression.inflate(base64url.decode(payload), wbits=compression.RAW, max_bytes=2**24)


def _tampered_profile(world: RegionsWorld) -> str:
    content = trustlist.document(world.trust, NOW, NOW + FRESH_FOR)
    content["profiles"][0]["source"] += "\n# changed\n"
    return trustlist.sign(content, KEY)


def _unsigned(world: RegionsWorld) -> str:
    header, payload, _ = signed(world).split(".")
    content = json.loads(_inflated(payload))
    content["issuers"] = []
    body = base64url.encode(compression.deflate(strictjson.dumps(content), wbits=compression.RAW))
    return f"{header}.{body}.{signed(world).split('.')[2]}"


REFUSED = {
    "another key": (lambda w: signed(w, key=PrivateKey.generate(Algorithm.ES256)), "another key"),
    "content changed after signing": (_unsigned, "signature"),
    "another type": (
        lambda w: trustlist.sign(
            trustlist.document(w.trust, NOW, NOW + FRESH_FOR), KEY, "huren-other+jwt"
        ),
        "not a huren-trust-list",
    ),
    "a profile that is not the one named": (_tampered_profile, "not the profile"),
    "no freshness": (lambda w: signed(w, fresh_until=None), "fresh_until"),
    "fresh before issued": (lambda w: signed(w, fresh_for=-FRESH_FOR), "after issued_at"),
    "fresh for too long": (lambda w: signed(w, fresh_for=timedelta(days=8)), "at most"),
    "an unknown member": (lambda w: signed(w, extra=1), "unknown key extra"),
    "an issuer listed twice": (
        lambda w: signed(w, issuers=trustlist.document(w.trust, NOW, NOW)["issuers"] * 2),
        "listed twice",
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_lists_that_do_not_verify_are_refused(world, case):
    make, words = case
    with pytest.raises(ConfigurationInvalid, match=words):
        replica.read(make(world), KEY.public_key())


def test_the_signer_renews_the_list_by_heartbeat():
    signer = trustlist.TrustListSigner(KEY, timedelta(seconds=30))
    holder = TrustHolder(TrustSnapshot.empty())
    first = signer.sign_current(holder.current, NOW)
    assert first.fresh_until == NOW + timedelta(seconds=30)
    assert signer.sign_current(holder.current, NOW + timedelta(seconds=9)) is first
    assert not signer.due(first.version, NOW + timedelta(seconds=9))
    assert signer.due(first.version + 1, NOW)
    renewed = signer.sign_current(holder.current, NOW + timedelta(seconds=10))
    assert (renewed.version, renewed.issued_at) == (first.version, NOW + timedelta(seconds=10))
    with pytest.raises(ValueError, match="fresh for"):
        trustlist.TrustListSigner(KEY, timedelta(days=8))


def test_a_list_past_fresh_until_judges_no_code(world):
    read = replica.read(signed(world), KEY.public_key())
    clock = [NOW]
    holder = TrustHolder(TrustSnapshot.empty(), fresh_until=NOW - timedelta(days=1))
    service = VerificationService(holder, Limits(), world.identities, lambda: clock[0])
    code = world.issue_level("hangzhou", resident_id(), Level.GREEN, NOW).code
    before = service.verify(code)
    assert (before.status, before.reason) == (Status.UNVERIFIABLE, Reason.ERR_TRUST_STALE)
    assert "no verified trust list yet" in before.detail
    holder.replace(read.snapshot, read.fresh_until)
    assert service.verify(code).status is Status.VALID
    clock[0] = read.fresh_until - timedelta(microseconds=1)
    assert service.verify(code).status is Status.VALID
    clock[0] = read.fresh_until
    stale = service.verify(code)
    assert (stale.status, stale.reason) == (Status.UNVERIFIABLE, Reason.ERR_TRUST_STALE)
    assert "was fresh until" in stale.detail


def test_why_no_code_is_judged_the_clock_then_the_secrets_then_the_trust(world):
    """Several reasons at once: a clock set back is named first, then missing identity secrets,
    then stale trust; secrets dropped in the middle of a batch count from the next code on."""
    read = replica.read(signed(world), KEY.public_key())
    clock = [NOW]
    holder = TrustHolder(read.snapshot, fresh_until=NOW - timedelta(days=1))  # stale already
    service = VerificationService(holder, Limits(), None, lambda: clock[0])
    codes = [
        world.issue_level("hangzhou", resident_id(seq=f"{n:03d}"), Level.GREEN, NOW).code
        for n in range(40)
    ]

    def reason(code: str) -> Reason:
        verdict = service.verify(code)
        assert verdict.status is Status.UNVERIFIABLE
        return verdict.reason

    assert reason(codes[0]) is Reason.ERR_SECRET_UNAVAILABLE
    service.replace_identities(world.identities)
    assert reason(codes[0]) is Reason.ERR_TRUST_STALE
    service.replace_identities(None)
    clock[0] = NOW - timedelta(days=1)  # before an instant already seen
    assert reason(codes[0]) is Reason.ERR_CLOCK_UNTRUSTED

    clock[0] = NOW
    holder.replace(read.snapshot, read.fresh_until)
    service.replace_identities(world.identities)

    async def batch_and_drop() -> list[Verdict]:
        batch = asyncio.create_task(service.verify_batch_async(codes))
        await asyncio.sleep(0)  # the batch yields after a first slice of codes
        service.replace_identities(None)
        return await batch

    verdicts = asyncio.run(batch_and_drop())
    reasons = [v.reason if v.status is not Status.VALID else None for v in verdicts]
    first = reasons.index(Reason.ERR_SECRET_UNAVAILABLE)
    assert 0 < first < len(codes)
    assert reasons == [None] * first + [Reason.ERR_SECRET_UNAVAILABLE] * (len(codes) - first)


# ----------------------------------------------------------------------------- compression


def _signed_with_header(header: dict[str, str], payload: bytes, key=KEY) -> str:
    full = {"alg": "ES256", "kid": key.public_key().thumbprint(), "typ": trustlist.TYPE, **header}
    return jws.sign(full, payload, key)


def test_the_list_is_deflated_and_signed_over_its_compressed_bytes(world):
    text = signed(world)
    header, payload, _ = text.split(".")
    assert json.loads(base64url.decode(header))["zip"] == "DEF"
    content = trustlist.document(world.trust, NOW, NOW + FRESH_FOR)
    assert json.loads(_inflated(payload)) == content
    uncompressed = trustlist.sign(content, KEY, deflate=False)
    assert len(text) < len(uncompressed) / 2
    assert "zip" not in json.loads(base64url.decode(uncompressed.split(".")[0]))


def test_a_list_signed_before_compression_still_reads_as_the_same_list(world):
    content = trustlist.document(world.trust, NOW, NOW + FRESH_FOR)
    old = replica.read(trustlist.sign(content, KEY, deflate=False), KEY.public_key())
    new = replica.read(trustlist.sign(content, KEY), KEY.public_key())
    assert (old.version, old.issued_at, old.fresh_until) == (new.version, NOW, NOW + FRESH_FOR)
    assert trustlist.document(old.snapshot, NOW, NOW) == trustlist.document(new.snapshot, NOW, NOW)
    # Either form is ordered as any other list: the old one is no newer than the new one.
    assert not replica.successor(new, replica.read(new.text, KEY.public_key()))
    with pytest.raises(ConfigurationInvalid, match="replay"):
        replica.successor(new, old)


def _payload(world: RegionsWorld) -> bytes:
    return strictjson.dumps(trustlist.document(world.trust, NOW, NOW + FRESH_FOR))


COMPRESSION_REFUSED = {
    "another zip": (
        lambda w: _signed_with_header({"zip": "GZIP"}, _payload(w)),
        Reason.ERR_HEADER,
        "zip 'GZIP' not allowed",
    ),
    "zip DEF over JSON that is not deflated": (
        lambda w: _signed_with_header({"zip": "DEF"}, _payload(w)),
        Reason.ERR_DECOMPRESS,
        "corrupt compressed data",
    ),
    "deflated bytes changed after signing": (
        lambda w: _flip_payload(signed(w)),
        Reason.ERR_SIGNATURE,
        "signature",
    ),
    "a deflated list by another key": (
        lambda w: signed(w, key=PrivateKey.generate(Algorithm.ES256)),
        Reason.ERR_KEY_UNKNOWN,
        "another key",
    ),
}


def _flip_payload(text: str) -> str:
    header, payload, signature = text.split(".")
    body = bytearray(base64url.decode(payload))
    body[len(body) // 2] ^= 0x01
    return f"{header}.{base64url.encode(bytes(body))}.{signature}"


@pytest.mark.parametrize("case", COMPRESSION_REFUSED.values(), ids=COMPRESSION_REFUSED.keys())
def test_compressed_lists_that_do_not_verify_are_refused(world, case):
    make, reason, words = case
    with pytest.raises(ConfigurationInvalid, match=words) as refused:
        replica.read(make(world), KEY.public_key())
    assert refused.value.reason is reason


def _bomb(inflated: int) -> bytes:
    """Raw DEFLATE of ``inflated`` bytes of one JSON string, built a chunk at a time."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"a" * (1 << 20)
    parts = [deflater.compress(b'{"version": 1, "x": "')]
    parts.extend(deflater.compress(chunk) for _ in range(inflated >> 20))
    parts.append(deflater.compress(b'"}') + deflater.flush())
    return b"".join(parts)


def test_a_decompression_bomb_signed_by_the_hub_key_is_refused_at_the_bound():
    bound = trustlist.MAX_TRUST_LIST_JSON_BYTES
    bomb = _bomb(8 * bound)  # 512 MiB of JSON in half a megabyte
    assert len(bomb) < bound // 100
    text = _signed_with_header({"zip": "DEF"}, bomb)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigurationInvalid, match=f"exceeds {bound} bytes") as refused:
            trustlist.verify(text, KEY.public_key())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.reason is Reason.ERR_DECOMPRESSED_TOO_LARGE
    assert "trust list refused" in str(refused.value)
    # Inflating stopped at the bound (its output buffer and the bytes made of it: twice the
    # bound at most), never the bomb's 512 MiB.
    assert peak < 3 * bound


def test_a_text_over_the_limit_is_refused_before_parsing():
    text = "e" * (trustlist.MAX_TRUST_LIST_CHARS + 1)
    with pytest.raises(ConfigurationInvalid, match="over 25165824 characters") as refused:
        trustlist.verify(text, KEY.public_key())
    assert refused.value.reason is Reason.ERR_TOO_LARGE


def test_the_signer_publishes_no_list_over_its_limit(world):
    text = signed(world)
    signer = trustlist.TrustListSigner(KEY, timedelta(seconds=30), max_chars=len(text) // 2)
    small = TrustHolder(TrustSnapshot.empty()).current
    first = signer.sign_current(small, NOW)
    assert first.fits
    assert signer.published(small, NOW) is first
    later = NOW + timedelta(seconds=1)
    large = signer.sign_current(world.trust, later)  # a larger registry, its version higher
    assert world.trust.version > small.version
    assert not large.fits
    assert len(large.jws) > signer.max_chars
    # The last list that fit, not renewed: verifiers go stale at its fresh_until.
    kept = signer.published(world.trust, later + timedelta(seconds=20))
    assert kept is first
    assert kept.fresh_until == NOW + timedelta(seconds=30)


def _zhejiang(snapshot: TrustSnapshot) -> OnlineEndpoint:
    online = snapshot.issuers[IssuerId("zhejiang")].online
    assert online is not None
    return online


def test_an_online_issuers_verify_url_is_the_signed_lists_and_its_codes_go_nowhere_else(world):
    """The list signs where online codes go; the replica secrets bring only the credential, and
    a credential is presented only at the URL the list signs."""
    hub = _zhejiang(world.trust)
    read = replica.read(signed(world), KEY.public_key())
    listed = _zhejiang(read.snapshot)
    assert (listed.code_prefix, listed.verify_url) == (hub.code_prefix, hub.verify_url)
    assert (listed.client_id, listed.client_secret, listed.unusable) == ("", b"", "")
    secrets = replica_secrets.bundle(world.trust, b"a" * 32, b"b" * 32)
    code = world.issue_level("zhejiang", resident_id(), Level.GREEN, NOW).code
    agreeing = dataclasses.replace(world, trust=replica_secrets.merge(read.snapshot, secrets))
    assert _zhejiang(agreeing.trust) == hub
    assert agreeing.verify(code, NOW) == world.verify(code, NOW)
    assert world.verify(code, NOW).status is Status.VALID

    # Secrets naming another URL than the signed list: the credential is not used anywhere.
    moved = dataclasses.replace(hub, verify_url="https://elsewhere.example/verify")
    entry = replica_secrets.IssuerSecrets(IssuerId("zhejiang"), None, moved)
    other = dataclasses.replace(
        secrets, issuers=MappingProxyType({**secrets.issuers, IssuerId("zhejiang"): entry})
    )
    disagreeing = dataclasses.replace(world, trust=replica_secrets.merge(read.snapshot, other))
    online = _zhejiang(disagreeing.trust)
    assert (online.verify_url, online.client_secret) == (hub.verify_url, b"")
    verdict = disagreeing.verify(code, NOW)
    assert (verdict.status, verdict.reason) == (Status.UNVERIFIABLE, Reason.ERR_SECRET_UNAVAILABLE)
    assert "another verify URL for online issuer zhejiang" in verdict.detail


def test_a_list_without_the_verify_url_sends_online_codes_nowhere(world):
    """An older hub's list (no ``online_verify_url``): online codes fail closed, even with the
    replica secrets, whose URL is not taken in its place."""
    content = trustlist.document(world.trust, NOW, NOW + FRESH_FOR)
    for issuer in content["issuers"]:
        issuer.pop("online_verify_url", None)
    read = replica.read(trustlist.sign(content, KEY), KEY.public_key())
    secrets = replica_secrets.bundle(world.trust, b"a" * 32, b"b" * 32)
    mirror = dataclasses.replace(world, trust=replica_secrets.merge(read.snapshot, secrets))
    online = _zhejiang(mirror.trust)
    assert (online.verify_url, online.client_secret) == ("", b"")
    code = world.issue_level("zhejiang", resident_id(), Level.GREEN, NOW).code
    verdict = mirror.verify(code, NOW)
    assert (verdict.status, verdict.reason) == (Status.UNVERIFIABLE, Reason.ERR_SECRET_UNAVAILABLE)
    assert "names no verify URL for online issuer zhejiang" in verdict.detail


@pytest.mark.parametrize(
    "url", ["ftp://zj.example/verify", "https://zj.example/a b", "https://" + "a" * 600]
)
def test_a_list_with_a_malformed_verify_url_is_refused(world, url):
    content = trustlist.document(world.trust, NOW, NOW + FRESH_FOR)
    for issuer in content["issuers"]:
        if "online_verify_url" in issuer:
            issuer["online_verify_url"] = url
    with pytest.raises(ConfigurationInvalid, match="trust list refused"):
        replica.read(trustlist.sign(content, KEY), KEY.public_key())


# ----------------------------------------------------------------------------- heartbeats


def test_a_heartbeat_of_the_held_content_is_taken_without_reading_the_content_again(world):
    held = replica.read(signed(world), KEY.public_key())
    later = NOW + FRESH_FOR / 3
    beat = signed(world, at=later)
    renewed = replica.read(beat, KEY.public_key(), held)
    assert renewed.snapshot is held.snapshot  # not read again
    assert (renewed.version, renewed.issued_at, renewed.fresh_until) == (
        held.version,
        later,
        later + FRESH_FOR,
    )
    assert replica.successor(held, renewed)
    # Exactly what reading the whole list again gives.
    full = replica.read(beat, KEY.public_key())
    assert full.snapshot is not held.snapshot
    assert (full.version, full.issued_at, full.fresh_until, full.body_sha256) == (
        renewed.version,
        renewed.issued_at,
        renewed.fresh_until,
        renewed.body_sha256,
    )
    assert trustlist.document(full.snapshot, NOW, NOW) == trustlist.document(
        renewed.snapshot, NOW, NOW
    )


def test_a_list_of_the_same_version_with_other_content_is_read_whole(world):
    """A hub that signed other content under the same version (it never should) is not taken
    as a heartbeat: the whole list is read, and what it says is what counts."""
    held = replica.read(signed(world), KEY.public_key())
    content = trustlist.document(world.trust, NOW + FRESH_FOR / 3, NOW + FRESH_FOR)
    content["issuers"] = [i for i in content["issuers"] if i["id"] != "hangzhou"]
    other = replica.read(trustlist.sign(content, KEY), KEY.public_key(), held)
    assert other.snapshot is not held.snapshot
    assert other.body_sha256 != held.body_sha256
    assert IssuerId("hangzhou") in held.snapshot.issuers
    assert IssuerId("hangzhou") not in other.snapshot.issuers


HEARTBEATS_REFUSED = {
    "a window longer than a hub may sign": (
        lambda w: signed(w, at=NOW + FRESH_FOR / 3, fresh_for=trustlist.MAX_FRESH_FOR * 2),
        "fresh_until must be after issued_at",
    ),
    "a window that ends before it starts": (
        lambda w: signed(w, at=NOW + FRESH_FOR / 3, fresh_for=-FRESH_FOR),
        "fresh_until must be after issued_at",
    ),
    "an instant with no time zone": (
        lambda w: signed(w, at=NOW + FRESH_FOR / 3, issued_at="2026-12-05T10:00:00"),
        "issued_at has no time zone",
    ),
    "the heartbeat's bytes changed after signing": (
        lambda w: _flip_payload(signed(w, at=NOW + FRESH_FOR / 3)),
        "signature",
    ),
    "a heartbeat by another key": (
        lambda w: signed(w, at=NOW + FRESH_FOR / 3, key=PrivateKey.generate(Algorithm.ES256)),
        "another key",
    ),
}


@pytest.mark.parametrize("case", HEARTBEATS_REFUSED.values(), ids=HEARTBEATS_REFUSED.keys())
def test_a_heartbeat_is_refused_as_the_whole_list_would_be(world, case):
    make, words = case
    held = replica.read(signed(world), KEY.public_key())
    text = make(world)
    if "signature" not in words and "another key" not in words:
        # Signed by the pinned key, with the held content: the fast path is the one judging.
        payload = trustlist.verified_payload(text, KEY.public_key())
        assert replica._DATED_HEAD.match(payload) is not None
    for against in (held, None):  # the same refusal, recognised as a heartbeat or not
        with pytest.raises(ConfigurationInvalid, match=words):
            replica.read(text, KEY.public_key(), against)


def test_a_list_dated_at_the_end_of_time_is_refused_not_a_crash(world):
    held = replica.read(signed(world), KEY.public_key())
    content = trustlist.document(world.trust, NOW, NOW + FRESH_FOR)
    content["issued_at"] = "9999-12-31T23:59:00+00:00"
    content["fresh_until"] = "9999-12-31T23:59:30+00:00"
    text = trustlist.sign(content, KEY)
    for against in (held, None):
        with pytest.raises(ConfigurationInvalid, match="too late"):
            replica.read(text, KEY.public_key(), against)


def _json_of(text: str) -> bytes:
    return trustlist.verified_payload(text, KEY.public_key())


def test_the_hub_compresses_a_versions_content_once_and_its_heartbeats_read_the_same(world):
    signer = trustlist.TrustListSigner(KEY, FRESH_FOR)
    first = signer.sign_current(world.trust, NOW)
    later = NOW + FRESH_FOR / 3
    beat = signer.sign_current(world.trust, later)
    assert beat.jws != first.jws
    # Each is the JSON a whole signing writes, byte for byte, and verifies as any list.
    for signed_list, at in ((first, NOW), (beat, later)):
        assert _json_of(signed_list.jws) == strictjson.dumps(
            trustlist.document(world.trust, at, at + FRESH_FOR)
        )
        assert _json_of(signed_list.jws).startswith(
            trustlist.dated_head(world.trust.version, at, at + FRESH_FOR)
        )
    held = replica.read(first.jws, KEY.public_key())
    renewed = replica.read(beat.jws, KEY.public_key(), held)
    assert renewed.snapshot is held.snapshot
    assert (renewed.issued_at, renewed.fresh_until) == (later, later + FRESH_FOR)
    # A new version is compressed anew: its content is its own.
    newer = dataclasses.replace(world.trust, version=world.trust.version + 1)
    changed = signer.sign_current(newer, later)
    assert _json_of(changed.jws) == strictjson.dumps(
        trustlist.document(newer, later, later + FRESH_FOR)
    )
    assert replica.read(changed.jws, KEY.public_key(), held).version == newer.version


def test_secrets_past_their_maximum_age_are_never_used_even_before_they_are_dropped(world):
    """The replica drops outlived secrets on a watch of its own; until it gets there (a busy
    event loop), every code judged at or after their end finds none."""
    read = replica.read(signed(world), KEY.public_key())
    clock = [NOW]
    service = VerificationService(
        TrustHolder(read.snapshot, fresh_until=NOW + timedelta(days=1)),
        Limits(),
        None,
        lambda: clock[0],
    )
    code = world.issue_level("hangzhou", resident_id(seq="001"), Level.GREEN, NOW).code
    end = NOW + timedelta(minutes=15)
    service.replace_identities(world.identities, end)
    clock[0] = end - timedelta(microseconds=1)
    assert service.verify(code).status is Status.VALID
    clock[0] = end
    verdict = service.verify(code)
    assert (verdict.status, verdict.reason) == (Status.UNVERIFIABLE, Reason.ERR_SECRET_UNAVAILABLE)
    assert service.identities is world.identities  # still held: not yet dropped, not used
    service.replace_identities(world.identities, end + timedelta(minutes=15))  # vouched again
    assert service.verify(code).status is Status.VALID
