"""The Hangzhou issuer's HTTP API: what a traveller's app and an operator see."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta

import aiohttp
import pytest

from gateway.codecs import base64url, strictjson
from gateway.registry.keyfiles import read_keys
from regions.common.runner import start_region
from tests.conftest import resident_id
from tests.integration.conftest import MutableClock, RegionHandle, declaration

pytestmark = pytest.mark.asyncio


async def test_a_declaration_gets_a_signed_code_with_state_and_expiry(
    hangzhou: RegionHandle, clock: MutableClock
):
    status, answer = await hangzhou.declare(declaration())
    assert status == 201
    assert answer["state"] == "绿码"
    expires = datetime.fromisoformat(answer["expires_at"])
    assert expires.utcoffset() == timedelta(hours=8)
    assert expires - clock.now == timedelta(hours=24)
    header, payload, _ = answer["code"].split(".")
    head = strictjson.loads(base64url.decode(header), max_bytes=1024, max_depth=2)
    body = strictjson.loads(base64url.decode(payload), max_bytes=4096, max_depth=2)
    assert head == {"alg": "ES256", "kid": hangzhou.kid, "typ": "JWT"}
    assert body["hc"] == "绿码"
    assert body["iss"] == "hangzhou"
    assert body["exp"] - body["iat"] == 24 * 3600


async def test_old_trips_no_longer_count(hangzhou, clock):
    long_ago = (clock.now - timedelta(days=30)).date().isoformat()
    trip = [{"place": "上海市浦东新区", "from": long_ago, "to": long_ago}]
    status, answer = await hangzhou.declare(declaration(trips=trip))
    assert (status, answer["state"]) == (201, "绿码")


async def test_published_keys_are_an_admissible_public_jwks(hangzhou):
    url = f"{hangzhou.url}/api/keys"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        jwks = await response.json()
        raw = await response.read()
    assert [k["kid"] for k in jwks["keys"]] == [hangzhou.kid]
    assert "d" not in jwks["keys"][0]
    (entry,) = read_keys(raw)
    assert entry.public_key == hangzhou.running.secrets.key.public_key()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (declaration(id_number="330106199003071220"), "id_number"),
        (declaration(id_number=330106199003071228), "id_number"),
        (declaration(phone="12345"), "phone"),
        (declaration(name=""), "name"),
        (declaration(unknown=1), "unknown"),
        (declaration(trips="none"), "trips"),
        (declaration(trips=[{"place": "x", "from": "2022-04-01"}]), "trips[0]"),
        (declaration(trips=[{"place": "x", "from": "2022/04/01", "to": "2022-04-02"}]), "trips[0]"),
        (declaration(trips=[{"place": "x", "from": "2022-04-02", "to": "2022-04-01"}]), "trips[0]"),
        (declaration(symptoms="fever"), "symptoms"),
        (declaration(contact="yes"), "contact"),
    ],
    ids=[
        "bad-check-digit",
        "id-as-number",
        "phone",
        "empty-name",
        "unknown-field",
        "trips-not-list",
        "trip-missing-to",
        "trip-bad-date",
        "trip-backwards",
        "symptoms-not-list",
        "contact-not-bool",
    ],
)
async def test_malformed_declarations_are_refused_with_the_field(hangzhou, body, field):
    status, answer = await hangzhou.declare(body)
    assert status == 400
    assert answer["field"] == field
    assert resident_id() not in str(answer)


async def test_wrong_content_type_duplicate_members_and_oversized_bodies(hangzhou):
    async with aiohttp.ClientSession() as session:
        url = f"{hangzhou.url}/api/declarations"
        async with session.post(url, data=b"id_number=1") as response:
            assert response.status == 415
        dup = b'{"contact": false, "contact": true}'
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=dup, headers=headers) as response:
            assert response.status == 400
            assert "ERR_DUPLICATE_KEY" in (await response.json())["error"]
        async with session.post(url, data=b"[" * 20_000, headers=headers) as response:
            assert response.status == 413


async def test_the_personal_data_an_issuer_keeps_is_readable_by_its_owner_alone(
    tmp_path, clock: MutableClock
):
    """region.db holds raw declarations (identity numbers, names, phones): the state directory
    is 0700 even if it existed looser, and the database, its -wal and -shm and the keys 0600."""
    state = tmp_path / "hz"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    handle = RegionHandle(await start_region("hangzhou", state_dir=state, clock=clock))
    try:
        status, _ = await handle.declare(declaration())
        assert status == 201
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
        assert {"region.db", "region.db-wal", "region.db-shm", "signing-key.pem"} <= set(files)
        assert {name: mode & 0o077 for name, mode in files.items()} == dict.fromkeys(files, 0)
    finally:
        await handle.running.stop()
