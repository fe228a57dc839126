"""The checkpoint's web edge over HTTP (issue 13): a JSON mirror of the Verifier service, image
decoding, bounds, rate limits and security headers, against a real gateway and real issuers on
loopback. The page itself is driven in a browser in test_web_browser.py."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image

from gateway import qr
from gateway.clients import TlsCredentials
from gateway.clients.aio import AsyncGatewayClient
from gateway.clock import system_clock
from gateway.web import CSP, WebLimits, checkpoint_app, start
from gateway.web.ratelimit import Rate
from tests.conftest import resident_id
from tests.integration.conftest import Hub, MutableClock, running_hub

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Checkpoint:
    hub: Hub
    url: str
    clock: MutableClock

    async def code(self, **declared: Any) -> str:
        """A code Hangzhou's issuer gives a traveller declaring ``declared``."""
        return await self.hub.regions["hangzhou"].issue(**declared)

    async def post(
        self,
        path: str,
        body: Any = None,
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any, Any]:
        payload = io.BytesIO(data if data is not None else json.dumps(body).encode())
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.url + path, data=payload, headers={"Content-Type": content_type}
            ) as response,
        ):
            return response.status, await response.json(), response.headers


@asynccontextmanager
async def serving_checkpoint(base: Path, names: tuple[str, ...]) -> AsyncIterator[Checkpoint]:
    """Issuers ``names`` and a gateway on loopback, and the web edge as its client."""
    clock = MutableClock(system_clock().replace(microsecond=0))
    async with running_hub(base, clock, names=names) as hub:
        client = AsyncGatewayClient(hub.address, TlsCredentials.from_pki(hub.pki))
        runner, url = await start(checkpoint_app(client), "127.0.0.1:0")
        try:
            yield Checkpoint(hub, url, clock)
        finally:
            await runner.cleanup()
            await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Checkpoint]:
    async with serving_checkpoint(tmp_path_factory.mktemp("web"), ("hangzhou", "shanghai")) as site:
        yield site


async def codes(checkpoint: Checkpoint, **declared: Any) -> str:
    return await checkpoint.hub.regions["hangzhou"].issue(**declared)


async def test_verify_mirrors_the_grpc_verdict_and_shows_only_the_masked_identity(checkpoint):
    green = await codes(checkpoint)
    status, body, headers = await checkpoint.post(
        "/api/verify", {"code": green, "destination": "310000"}
    )
    assert status == 200, body
    assert (body["status"], body["colour"], body["reason"]) == ("VALID", "GREEN", "OK")
    assert (body["region"], body["issuer"], body["destination"]) == ("330100", "hangzhou", "310000")
    assert body["masked_identity"].startswith("330")
    assert resident_id() not in json.dumps(body)
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Security-Policy"] == CSP
    # The same fields as `huren verify --json`, from the same function.
    assert set(body) >= {"status", "colour", "reason", "detail", "kid", "profile", "code_ref"}


async def test_a_red_code_and_an_expired_code_are_never_green(checkpoint):
    red = await codes(checkpoint, symptoms=["发热"], contact=True)
    status, body, _ = await checkpoint.post("/api/verify", {"code": red})
    assert status == 200
    assert body["colour"] in ("RED", "YELLOW")
    expired = await codes(checkpoint)
    checkpoint.clock.advance(timedelta(days=2))  # forward only: the gateway refuses to go back
    status, body, _ = await checkpoint.post("/api/verify", {"code": expired})
    assert (status, body["colour"], body["reason"]) == (200, "GREY", "ERR_EXPIRED")


async def test_recognise_decides_for_one_traveller_with_its_explanation(checkpoint):
    green, red = await codes(checkpoint), await codes(checkpoint, contact=True)
    status, body, _ = await checkpoint.post(
        "/api/recognise", {"codes": [green, red], "destination": "310000"}
    )
    assert status == 200, body
    assert body["status"] == "DECIDED"
    assert body["colour"] != "GREEN"  # the most severe of what the policy counts
    assert next(c["verdict"]["colour"] for c in body["codes"]) == "GREEN", body["codes"][0]
    assert body["steps"], "every decision explains itself"
    assert body["policy_id"]


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/api/verify", b"{not json", 400, "ERR_REQUEST"),
        ("/api/verify", b'["a list"]', 400, "ERR_REQUEST"),
        ("/api/verify", b'{"code": 7}', 400, "ERR_REQUEST"),
        ("/api/verify", b'{"code": "x", "destination": "999999"}', 400, "ERR_REQUEST"),
        ("/api/verify", b'{"code": "' + b"A" * (70 * 1024) + b'"}', 413, "ERR_TOO_LARGE"),
        ("/api/recognise", b'{"codes": [], "destination": "310000"}', 400, "ERR_REQUEST"),
        ("/api/recognise", b'{"codes": ["x"]}', 400, "ERR_REQUEST"),
        (
            "/api/recognise",
            b'{"codes": ["x"], "destination": "310000", "at": "now"}',
            400,
            "ERR_REQUEST",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "code-not-text",
        "bad-region",
        "over-64KiB",
        "no-codes",
        "no-destination",
        "bad-time",
    ],
)
async def test_bad_requests_get_a_clear_json_error(checkpoint, path, body, status, reason):
    got, answer, headers = await checkpoint.post(path, data=body)
    assert (got, answer["error"]["reason"]) == (status, reason), answer
    assert answer["error"]["message"]
    assert headers["Content-Security-Policy"] == CSP


async def test_a_qr_image_is_read_on_the_server(checkpoint):
    green = await codes(checkpoint)
    png = qr.make(green).png(scale=4)
    status, body, _ = await checkpoint.post("/api/decode", data=png, content_type="image/png")
    assert (status, body) == (200, {"codes": [green]})
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(jpeg, "JPEG", quality=90)
    status, body, _ = await checkpoint.post(
        "/api/decode", data=jpeg.getvalue(), content_type="image/jpeg"
    )
    assert (status, body) == (200, {"codes": [green]})


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"GIF89a this is not an image", 422, "ERR_IMAGE"),
        (b"%PDF-1.7\n", 422, "ERR_IMAGE"),
        (_png(64, 64), 422, "ERR_NO_CODE"),
        (_png(5000, 10), 413, "ERR_IMAGE_TOO_LARGE"),
        (b"\x89PNG" + b"\x00" * (2 * 1024 * 1024 + 10), 413, "ERR_IMAGE_TOO_LARGE"),
    ],
    ids=["garbage", "pdf", "no-code", "over-4096-px", "over-2MB"],
)
async def test_images_without_a_readable_code_are_refused_clearly(checkpoint, data, status, reason):
    got, body, _ = await checkpoint.post("/api/decode", data=data, content_type="image/png")
    assert (got, body["error"]["reason"]) == (status, reason), body


async def test_two_codes_in_one_image_are_both_read(checkpoint):
    first, second = await codes(checkpoint), await codes(checkpoint, name="李强")
    left, right = (Image.open(io.BytesIO(qr.make(c).png(scale=3))) for c in (first, second))
    both = Image.new("L", (left.width + right.width + 40, max(left.height, right.height)), 255)
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 40, 0))
    out = io.BytesIO()
    both.save(out, "PNG")
    status, body, _ = await checkpoint.post(
        "/api/decode", data=out.getvalue(), content_type="image/png"
    )
    assert status == 200
    assert sorted(body["codes"]) == sorted([first, second])


async def test_a_gateway_that_does_not_answer_is_an_error_never_a_colour(tmp_path):
    client = AsyncGatewayClient("127.0.0.1:1", None, timeout=2)
    runner, url = await start(checkpoint_app(client), "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as session:
            for path, body in (
                ("/api/verify", {"code": "HC1:ANYTHING"}),
                ("/api/recognise", {"codes": ["HC1:ANYTHING"], "destination": "310000"}),
            ):
                async with session.post(url + path, json=body) as response:
                    answer = await response.json()
                    assert response.status == 503
                    assert answer["error"]["reason"] == "UNAVAILABLE"
                    assert "colour" not in json.dumps(answer)
    finally:
        await runner.cleanup()
        await client.close()


async def test_each_client_address_is_rate_limited():
    class Never:
        async def verify(self, code: str, destination: str = "") -> Any:
            raise AssertionError("not reached")

        async def recognise(self, *args: Any) -> Any:
            raise AssertionError("not reached")

        async def attest(self, *args: Any) -> Any:
            raise AssertionError("not reached")

    limits = WebLimits(api_rate=Rate(per_second=0.5, burst=3))
    runner, url = await start(checkpoint_app(Never(), limits), "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(5):
                async with session.post(url + "/api/verify", data=b"{}") as response:
                    statuses.append(response.status)
                    retry = response.headers.get("Retry-After")
            assert statuses == [400, 400, 400, 429, 429]
            assert retry is not None
            assert int(retry) >= 1
    finally:
        await runner.cleanup()


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self._in_script = tag == "script" and "src" not in names
        self.handlers += [name for name in names if name.startswith("on")]
        if "style" in names or tag == "style":
            self.styles.append(tag)

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


@pytest.mark.parametrize(
    ("query", "lang"),
    [
        ("at=310000", "zh-CN"),
        ("at=310000&lang=en", "en"),
        ("at=820000", "pt"),
        ("at=310000&lang=pt", "zh-CN"),
    ],
)
async def test_the_page_has_no_inline_script_and_speaks_the_right_language(checkpoint, query, lang):
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{checkpoint.url}/checkpoint?{query}") as response,
    ):
        text = await response.text()
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Set-Cookie" not in response.headers
    parsed = _Scripts()
    parsed.feed(text)
    assert (parsed.inline, parsed.handlers, parsed.styles) == ([], [], [])
    assert f'<html lang="{lang}">' in text


async def test_a_page_without_a_region_asks_for_one(checkpoint):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{checkpoint.url}/checkpoint?at=12345x") as response:
            assert response.status == 400
            assert "not a region code" in await response.text()
        async with session.get(f"{checkpoint.url}/") as response:
            assert response.status == 200  # redirected to the form
            assert 'name="at"' in await response.text()
