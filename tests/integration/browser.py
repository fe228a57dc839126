"""Headless Chromium for the browser tests: Debian's Chromium driven by playwright.

playwright's own browser download cannot be reached from these machines; the system Chromium
(``make browser`` installs it, with CJK fonts) is launched by path. A test that finds no
Chromium fails: it never skips.

A fake camera shows a page whatever a test wrote into a Y4M file (:func:`write_y4m`), so a test
can hold a QR code up to a checkpoint page's camera.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

CHROMIUM = Path(os.environ.get("HUREN_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
"""Where the tests leave their screenshots (not committed; ``make screenshots`` copies the
README's few into docs/images/)."""

# As root, in a machine whose network is closed: no sandbox (root), nothing that phones home.
_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 375, "height": 812}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


@contextlib.asynccontextmanager
async def chromium(camera: Path | None = None) -> AsyncIterator[Browser]:
    """A headless Chromium; with ``camera``, a Y4M file every page's camera shows (and camera
    permission granted without asking)."""
    assert CHROMIUM.is_file(), f"no Chromium at {CHROMIUM}: run `make browser`"
    flags = list(_FLAGS)
    if camera is not None:
        flags += [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def watched_page(
    browser: Browser, viewport: ViewportSize, *, expected_error: str
) -> AsyncIterator[Page]:
    """A page in its own context (device scale 2) whose console errors and script errors are
    collected; on leaving, any of them fails the test except those containing
    ``expected_error`` (Chromium logs an answer the test asked for, such as a refusal's HTTP
    status, as a failed resource). A CSP violation or a script error shows up here."""
    context = await browser.new_context(viewport=viewport, device_scale_factor=2)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page
    finally:
        await context.close()
    assert not [e for e in errors if expected_error not in e], errors


def write_y4m(image: Image.Image, path: Path, *, frames: int = 30, size: int = 640) -> Path:
    """``image`` centred on white in a ``size``×``size`` YUV 4:2:0 video of ``frames`` frames
    (Chromium loops it), as a camera held still in front of a screen would see it."""
    canvas = Image.new("L", (size, size), 255)
    shown = image.convert("L")
    room = size * 7 // 8
    if max(shown.size) <= room:  # whole pixels per module: an integer scale, nothing blurred
        factor = room // max(shown.size)
        shown = shown.resize(
            (shown.width * factor, shown.height * factor), Image.Resampling.NEAREST
        )
    else:
        shown.thumbnail((room, room), Image.Resampling.LANCZOS)
    canvas.paste(shown, ((size - shown.width) // 2, (size - shown.height) // 2))
    luma = canvas.tobytes()
    chroma = bytes([128]) * (size // 2) * (size // 2)  # no colour: both planes neutral
    frame = b"FRAME\n" + luma + chroma + chroma
    header = f"YUV4MPEG2 W{size} H{size} F10:1 Ip A1:1 C420jpeg\n".encode("ascii")
    path.write_bytes(header + frame * frames)
    return path


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
