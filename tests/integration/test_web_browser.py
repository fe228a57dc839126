"""The checkpoint page in a real browser (issue 13), against a real gateway and real issuers on
loopback: the scanner field, an upload, the camera (Chromium's fake camera fed the QR code a
traveller's page showed), codes that disagree, codes of two people, an expired code; colour,
word and icon together, WCAG AA contrast, the keyboard alone. Screenshots go to build/."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image
from playwright.async_api import Browser, Page

from gateway import qr
from regions.common.look import contrast
from tests.conftest import resident_id
from tests.integration.browser import DESKTOP, PHONE, chromium, screenshot_path, write_y4m
from tests.integration.test_web import Checkpoint, serving_checkpoint

pytestmark = pytest.mark.asyncio(loop_scope="module")
PANEL_COLOURS = ("GREEN", "YELLOW", "RED", "GREY")


Site = Checkpoint


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    async with serving_checkpoint(tmp_path_factory.mktemp("web"), ("hangzhou",)) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as started:
        yield started


async def open_checkpoint(browser: Browser, site: Site, *, desktop: bool = False) -> Page:
    context = await browser.new_context(viewport=DESKTOP if desktop else PHONE)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{site.url}/checkpoint?at=310000")
    await ready(page)
    return page


async def ready(page: Page) -> None:
    """The page's script is in place and the scanner field has the focus: what a scanner types
    from now on is read (typed earlier, it would be lost, as on a real page still loading)."""
    await page.wait_for_function(
        "() => document.getElementById('checkpoint').dataset.ready === '1'"
        " && document.activeElement.id === 'code'"
    )


async def scan(page: Page, code: str) -> None:
    """What a hand-held scanner does: it types the code and Enter into the focused field."""
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")


class Shown(str):
    """The colour a result panel shows; its ``why`` (the reason line) in failure messages."""

    why: str

    def __repr__(self) -> str:
        return f"{str(self)!r} ({self.why})"


async def decided(page: Page) -> Shown:
    await page.wait_for_function("() => !document.getElementById('result').hidden")
    classes = await page.get_attribute("#panel", "class") or ""
    (colour,) = [c for c in classes.split() if c in PANEL_COLOURS]
    shown = Shown(colour)
    shown.why = await page.text_content("#reason") or ""
    return shown


async def panel_contrast(page: Page) -> float:
    colours = await page.evaluate(
        """() => { const s = getComputedStyle(document.getElementById('panel'));
                   return [s.color, s.backgroundColor]; }"""
    )
    fg, bg = (tuple(int(x) for x in re.findall(r"\d+", c)[:3]) for c in colours)
    return contrast(fg, bg)  # type: ignore[arg-type]


async def test_a_scanned_green_code_shows_pass_in_words_and_icon(browser: Browser, site: Site):
    page = await open_checkpoint(browser, site)
    await scan(page, await site.code())
    assert await page.locator("#codes li").count() == 1
    await page.keyboard.press("Enter")  # Enter on the empty field decides
    assert await decided(page) == "GREEN"
    assert await page.text_content("#word") == "通行"
    assert await page.text_content("#icon") == "✓"
    assert (await page.text_content("#identity") or "").startswith("330")
    assert resident_id() not in await page.content()
    assert await panel_contrast(page) >= 4.5
    await page.screenshot(path=screenshot_path("checkpoint-green-phone"), full_page=True)
    # Escape: ready for the next traveller, focus back in the scanner field.
    await page.keyboard.press("Escape")
    assert await page.is_hidden("#result")
    assert await page.evaluate("() => document.activeElement.id") == "code"
    assert await page.locator("#codes li.empty").count() == 1
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_red_code_says_do_not_pass_and_why(browser: Browser, site: Site):
    page = await open_checkpoint(browser, site, desktop=True)
    await scan(page, await site.code(contact=True))
    await page.click("#decide")
    assert await decided(page) == "RED"
    assert "禁止通行" in (await page.text_content("#word") or "")
    assert await page.text_content("#icon") == "✕"
    assert await panel_contrast(page) >= 4.5
    await page.screenshot(path=screenshot_path("checkpoint-red-desktop"), full_page=True)


async def test_codes_that_disagree_get_the_policy_decision_and_its_explanation(
    browser: Browser, site: Site
):
    page = await open_checkpoint(browser, site, desktop=True)
    await scan(page, await site.code())
    await scan(page, await site.code(symptoms=["咳嗽"]))
    assert await page.locator("#codes li").count() == 2
    await page.click("#decide")
    assert await decided(page) == "YELLOW"  # the most severe counted colour decides
    assert await panel_contrast(page) >= 4.5
    await page.click("#why summary")
    steps = await page.locator("#steps li").all_text_contents()
    assert steps, "the decision explains itself"
    assert await page.locator("#verdicts li").count() == 2
    await page.screenshot(path=screenshot_path("checkpoint-two-codes-desktop"), full_page=True)


async def test_codes_of_two_people_are_refused_never_green(browser: Browser, site: Site):
    page = await open_checkpoint(browser, site)
    await scan(page, await site.code())
    await scan(page, await site.code(id_number=resident_id(seq="140")))
    await page.keyboard.press("Enter")
    assert await decided(page) == "GREY"
    assert "不属于同一人" in (await page.text_content("#reason") or "")
    assert await panel_contrast(page) >= 4.5


async def test_an_uploaded_qr_image_is_read_and_decided(
    browser: Browser, site: Site, tmp_path: Path
):
    page = await open_checkpoint(browser, site)
    image = tmp_path / "code.png"
    image.write_bytes(qr.make(await site.code()).png(scale=4))
    await page.set_input_files("#upload", str(image))
    await page.wait_for_function("() => document.querySelectorAll('#codes li code').length === 1")
    await page.click("#decide")
    assert await decided(page) == "GREEN"
    # Not an image: said in words, nothing added.
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    await page.keyboard.press("Escape")
    await page.set_input_files("#upload", str(junk))
    await page.wait_for_function("() => document.getElementById('error').textContent !== ''")
    assert await page.locator("#codes li code").count() == 0


async def test_the_traveller_shows_the_qr_and_the_checkpoint_camera_reads_it(
    browser: Browser, site: Site, tmp_path: Path
):
    """End to end: a traveller declares on Hangzhou's page and gets a QR code; the picture of
    that QR code on the phone becomes the camera feed of a second browser, the checkpoint at
    Shanghai, which reads it through its camera and shows GREEN."""
    phone = await browser.new_page(viewport=PHONE)
    await phone.goto(site.hub.regions["hangzhou"].url + "/")
    await phone.fill("#id_number", resident_id())
    await phone.fill("#name", "王芳")
    await phone.fill("#phone", "13800000001")
    async with phone.expect_response("**/api/declarations") as answer:
        await phone.click("#submit")
    issued = (await (await answer.value).json())["code"]
    await phone.wait_for_function("() => document.getElementById('qr').complete")
    shown = Image.open(io.BytesIO(await phone.locator("#qr").screenshot()))
    camera = write_y4m(shown, tmp_path / "phone.y4m")
    async with chromium(camera) as with_camera:
        context = await with_camera.new_context(viewport=PHONE, permissions=["camera"])
        page = await context.new_page()
        await page.goto(f"{site.url}/checkpoint?at=310000")
        await ready(page)
        await page.click("#camera")
        await page.wait_for_function(
            "() => document.querySelectorAll('#codes li code').length === 1", timeout=15_000
        )
        await page.screenshot(path=screenshot_path("checkpoint-camera-phone"), full_page=True)
        async with page.expect_request("**/api/recognise") as sent:
            await page.click("#decide")
        # The code the camera read is exactly the one the traveller's page showed.
        body = (await sent.value).post_data_json
        assert body is not None
        assert body["codes"] == [issued]
        assert await decided(page) == "GREEN"
        assert await page.evaluate("() => document.getElementById('video').hidden")


async def test_an_expired_code_is_grey_with_its_reason(browser: Browser, site: Site):
    code = await site.code()
    site.clock.advance(timedelta(days=2))  # last in this module: the gateway never goes back
    page = await open_checkpoint(browser, site, desktop=True)
    await page.goto(f"{site.url}/checkpoint?at=310000&lang=en")
    await ready(page)
    await scan(page, code)
    await page.keyboard.press("Enter")
    assert await decided(page) == "GREY"
    assert "expired" in (await page.text_content("#reason") or "")
    assert "CANNOT VERIFY" in (await page.text_content("#word") or "")
    await page.screenshot(path=screenshot_path("checkpoint-expired-desktop"), full_page=True)


async def test_every_panel_colour_meets_wcag_aa(browser: Browser, site: Site):
    page = await open_checkpoint(browser, site)
    for colour in PANEL_COLOURS:
        await page.evaluate(
            f"() => {{ document.getElementById('panel').className = 'panel {colour}'; }}"
        )
        assert await panel_contrast(page) >= 4.5, colour
