"""The browser the web tests drive is there and sees what they show it: Debian's Chromium with
CJK fonts, and a fake camera playing a QR code a test wrote (issue 13)."""

from __future__ import annotations

import base64
import io
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import segno
import zxingcpp
from aiohttp import web
from PIL import Image

from tests.integration.browser import PHONE, chromium, write_y4m
from tests.qrread import QR_ONLY

PAGE = """<!doctype html><meta charset=utf-8><title>camera</title>
<video id=v autoplay playsinline muted width=320 height=320></video>
<canvas id=c width=640 height=640></canvas><p lang=zh>杭州健康码</p>"""
GRAB = """async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  const video = document.getElementById('v');
  video.srcObject = stream;
  await video.play();
  await new Promise(r => setTimeout(r, 500));
  const canvas = document.getElementById('c');
  canvas.getContext('2d').drawImage(video, 0, 0, 640, 640);
  return canvas.toDataURL('image/png');
}"""


@pytest_asyncio.fixture
async def site() -> AsyncIterator[str]:
    """A page on 127.0.0.1 (a secure context: the camera is offered only there)."""
    app = web.Application()

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_the_fake_camera_shows_the_qr_code_a_test_wrote(site: str, tmp_path: Path) -> None:
    text = "HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH"
    qr = io.BytesIO()
    segno.make(text, error="m").save(qr, kind="png", scale=1, border=4)
    camera = write_y4m(Image.open(qr), tmp_path / "camera.y4m")
    async with chromium(camera) as browser:
        page = await browser.new_page(viewport=PHONE)
        await page.goto(site)
        shot = await page.evaluate(GRAB)
    frame = Image.open(io.BytesIO(base64.b64decode(shot.split(",", 1)[1])))
    assert [r.text for r in zxingcpp.read_barcodes(frame, formats=QR_ONLY)] == [text]


def test_chinese_text_has_a_font() -> None:
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=True)
    assert "Noto Sans CJK" in fonts.stdout, "no CJK font: run `make browser`"
