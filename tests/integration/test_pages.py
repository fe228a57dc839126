"""Every region's traveller page over HTTP (issue 13): the page and its headers, its language
switch, the server's own field checks, the QR images of issued codes, and Zhejiang's code URL,
which a phone camera opens and the hub still verifies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway import qr
from gateway.model import Colour, Status
from regions import REGIONS, look_of
from regions.common.pages import CONTENT_SECURITY_POLICY
from regions.common.runner import RunningRegion, start_region
from tests.integration.conftest import Hub, MutableClock, declaration
from tests.qrread import Read, read_qr

pytestmark = pytest.mark.asyncio
WALLET: dict[str, dict[str, Any]] = {
    "green": {},
    "yellow": {"symptoms": ["咳嗽"]},
    "red": {"contact": True},
}


@pytest_asyncio.fixture(params=REGIONS)
async def region(request, tmp_path: Path, clock: MutableClock) -> AsyncIterator[RunningRegion]:
    running = await start_region(
        request.param, state_dir=tmp_path / request.param, clock=clock, link_key=bytes(32)
    )
    yield running
    await running.stop()


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as r:
        return r.status, await r.json()


class Scripts(HTMLParser):
    """What a strict CSP forbids, found in a page: inline scripts, handlers, style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str | None] = []
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self.styles = 0
        self._in_script = False
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.handlers += [name for name in names if name.startswith("on")]
        self.styles += "style" in names or tag == "style"
        if tag == "script":
            self.sources.append(names.get("src"))
            self._in_script = True
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)
        if self._in_title:
            self.title += data


async def test_the_page_is_the_regions_own_and_runs_only_its_own_script(region: RunningRegion):
    name = region.region.spec.name
    status, headers, body = await get(region.url + "/")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert (headers["X-Content-Type-Options"], headers["Referrer-Policy"]) == (
        "nosniff",
        "no-referrer",
    )
    assert "Set-Cookie" not in headers
    assert headers["Cache-Control"] == "no-store"
    page = Scripts()
    page.feed(body.decode("utf-8"))
    assert page.sources == ["/static/page.js"]
    assert (page.inline, page.handlers, page.styles) == ([], [], 0)
    assert page.title == look_of(name).name["zh"]
    for asset in ("page.js", "page.css", "region.css"):
        status, headers, _ = await get(f"{region.url}/static/{asset}")
        assert (status, headers["X-Content-Type-Options"]) == (200, "nosniff"), asset
    assert (await get(f"{region.url}/static/../service.py"))[0] == 404


async def test_the_language_switch(region: RunningRegion):
    look = look_of(region.region.spec.name)
    for lang in (*look.languages, "xx"):
        _, _, body = await get(f"{region.url}/?lang={lang}")
        page = Scripts()
        page.feed(body.decode("utf-8"))
        expected = lang if lang in look.languages else "zh"
        assert page.title == look.name[expected], lang
    _, _, body = await get(f"{region.url}/?lang=pt")
    assert ("Código de Saúde" in body.decode()) is (region.region.spec.name == "macau")


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "id-checksum": ({"id_number": "330106199003071229"}, "id_number"),
    "id-province": ({"id_number": "990106199003071226"}, "id_number"),
    "name-missing": ({"name": ""}, "name"),
    "phone": ({"phone": "12345"}, "phone"),
    "trip-place": (
        {"trips": [{"place": "", "from": "2022-01-01", "to": "2022-01-02"}]},
        "trips[0].place",
    ),
    "trip-dates": (
        {"trips": [{"place": "x", "from": "2022-01-02", "to": "2022-01-01"}]},
        "trips[0]",
    ),
    "contact": ({"contact": "yes"}, "contact"),
}


@pytest.mark.parametrize(("change", "field"), BAD.values(), ids=BAD.keys())
async def test_the_server_names_the_field_it_refuses(tmp_path, clock, change, field):
    hangzhou = await start_region("hangzhou", state_dir=tmp_path / "hz", clock=clock)
    try:
        status, answer = await post(hangzhou.url + "/api/declarations", declaration(**change))
    finally:
        await hangzhou.stop()
    assert (status, answer["field"]) == (400, field), answer
    assert answer["error"]


async def test_qr_images_are_exactly_the_issued_code(region: RunningRegion):
    for level, extra in WALLET.items():
        status, answer = await post(region.url + "/api/declarations", declaration(**extra))
        assert (status, answer["level"]) == (201, level)
        code = answer["code"]
        assert answer["holder"] != declaration()["id_number"]
        assert "*" in answer["holder"]
        status, headers, png = await get(f"{region.url}/api/codes/{answer['code_id']}.png")
        assert (status, headers["Content-Type"]) == (200, "image/png")
        # exactly the code, in the symbol its mode makes (alphanumeric is smaller than bytes)
        assert read_qr(png) == Read(code, "M", qr.make(code).version)
        status, headers, svg = await get(f"{region.url}/api/codes/{answer['code_id']}.svg")
        assert (status, headers["Content-Type"]) == (200, "image/svg+xml; charset=utf-8")
        assert svg.startswith(b"<svg")
    mode = qr.segments(code)[0].mode
    base45 = region.region.spec.name in ("beijing", "macau")
    assert (mode is qr.Mode.ALPHANUMERIC) is base45


async def test_code_images_need_a_known_unexpired_code_id(tmp_path, clock: MutableClock):
    from datetime import timedelta

    macau = await start_region("macau", state_dir=tmp_path / "mo", clock=clock)
    try:
        _, answer = await post(macau.url + "/api/declarations", declaration())
        image = f"{macau.url}/api/codes/{answer['code_id']}.png"
        assert (await get(image))[0] == 200
        for wrong in ("A" * 22, "../../etc", answer["code_id"] + "x"):
            assert (await get(f"{macau.url}/api/codes/{wrong}.png"))[0] == 404, wrong
        assert (await get(image.replace(".png", ".gif")))[0] == 404
        clock.advance(timedelta(hours=6))  # Macau's codes live 6 hours
        assert (await get(image))[0] == 404
    finally:
        await macau.stop()


async def test_zhejiang_code_url_opens_its_page_and_still_verifies(hub: Hub, clock: MutableClock):
    zhejiang = hub.regions["zhejiang"]
    code = await zhejiang.issue(symptoms=["咳嗽"])
    status, headers, body = await get(code, Accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    page = body.decode()
    assert "黄码" in page
    assert "浙江健康码" in page
    assert declaration()["id_number"] not in page
    assert declaration()["id_number"][:3] + "*" * 11 in page
    image = page.split('id="qr" src="', 1)[1].split('"', 1)[0]
    assert read_qr((await get(zhejiang.url + image.replace(".svg", ".png")))[2]).text == code
    status, _, facts = await get(code, Accept="application/json")
    assert status == 200
    assert b'"level": "yellow"' in facts
    # the hub asks the issuer's verification API, not the page: the code verifies as before
    verdict = await hub.verify(code)
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.YELLOW)
    # unknown tokens: a 404 page for a person, a 404 answer for a program
    unknown = code[: code.rindex("/") + 1] + "A" * 22
    status, headers, body = await get(unknown, Accept="text/html")
    assert (status, headers["Content-Type"]) == (404, "text/html; charset=utf-8")
    assert "没有这个健康码" in body.decode()
    assert (await get(unknown))[0] == 404
