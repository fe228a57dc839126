"""The traveller's pages in a real browser (issue 13): declare, see the QR, the state word, the
masked identity and the countdown; a pending code refreshes itself; the keyboard alone is
enough; the colour panels meet WCAG AA. One Chromium for the whole module."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from regions.common.look import contrast
from regions.common.runner import RunningRegion, start_region
from tests.conftest import resident_id
from tests.integration.browser import DESKTOP, PHONE, chromium, screenshot_path, watched_page
from tests.integration.conftest import MutableClock
from tests.qrread import read_qr

pytestmark = pytest.mark.asyncio(loop_scope="module")
ID_NUMBER = resident_id()
COUNTDOWN = re.compile(r"\d{2}:\d{2}:\d{2}")
Start = Callable[[str], Awaitable[RunningRegion]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def regions(tmp_path: Path, clock: MutableClock) -> AsyncIterator[Start]:
    """Start regions by name on loopback (stopped after the test)."""
    running: list[RunningRegion] = []

    async def start(name: str) -> RunningRegion:
        region = await start_region(
            name, state_dir=tmp_path / name, clock=clock, link_key=bytes(32)
        )
        running.append(region)
        return region

    yield start
    for region in running:
        await region.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def phone(browser: Browser) -> AsyncIterator[Page]:
    # A refused declaration (400) is logged by Chromium too, and is what the server-side
    # validation test expects.
    refused = "the server responded with a status of 400"
    async with watched_page(browser, PHONE, expected_error=refused) as page:
        yield page


async def fill_identity(page: Page, id_number: str = ID_NUMBER) -> None:
    await page.fill("#id_number", id_number)
    await page.fill("#name", "王芳")
    await page.fill("#phone", "13800000001")


async def declare(page: Page) -> dict[str, Any]:
    """Submit the form; the issuer's answer (which the test uses to know the issued code)."""
    async with page.expect_response("**/api/declarations") as answer:
        await page.click("#submit")
    body: dict[str, Any] = await (await answer.value).json()
    return body


async def qr_text(page: Page) -> str:
    """The QR code on the page, read from a screenshot of the page the way a camera would."""
    await page.wait_for_function("() => document.getElementById('qr').complete")
    await page.locator("#qr").scroll_into_view_if_needed()
    return read_qr(await page.screenshot()).text


async def colours(page: Page, selector: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The computed background and text colours of ``selector`` as RGB."""
    values = await page.eval_on_selector(
        selector, "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"
    )
    rgb = [tuple(int(n) for n in re.findall(r"\d+", v)[:3]) for v in values]
    return rgb[0], rgb[1]


async def test_hangzhou_page_shows_the_issued_code_as_a_qr(phone: Page, regions: Start):
    hangzhou = await regions("hangzhou")
    await phone.goto(hangzhou.url + "/")
    assert await phone.title() == "杭州健康码"
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await phone.screenshot(path=screenshot_path("traveller-hangzhou-form-phone"), full_page=True)
    await fill_identity(phone)
    answer = await declare(phone)
    assert await qr_text(phone) == answer["code"]
    assert await phone.text_content("#state-word") == "绿码"
    assert await phone.get_attribute("#icon", "class") == "icon shape-circle"  # not colour alone
    holder = await phone.text_content("#holder")
    assert holder == ID_NUMBER[:3] + "*" * 11 + ID_NUMBER[-4:]
    assert ID_NUMBER not in await phone.content()
    first = await phone.text_content("#countdown")
    assert first
    assert COUNTDOWN.fullmatch(first)
    hours, minutes, seconds = (int(n) for n in first.split(":"))
    assert 24 * 3600 - 60 < hours * 3600 + minutes * 60 + seconds <= 24 * 3600
    await phone.wait_for_function(
        "first => document.getElementById('countdown').textContent !== first", arg=first
    )
    background, text = await colours(phone, "#panel")
    assert contrast(background, text) >= 4.5  # type: ignore[arg-type]
    assert await phone.locator("#appeal").is_hidden()  # nothing to appeal on a green code
    await phone.screenshot(path=screenshot_path("traveller-hangzhou-code-phone"), full_page=True)
    cookies = await phone.context.cookies()
    stored = await phone.evaluate("localStorage.length + sessionStorage.length")
    assert (cookies, stored) == ([], 0)


async def test_macau_page_speaks_portuguese_and_offers_the_appeal(browser: Browser, regions: Start):
    macau = await regions("macau")
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(macau.url + "/")
    await page.click("a[hreflang=pt]")
    await page.wait_for_url("**/?lang=pt")
    assert await page.title() == "Código de Saúde de Macau"
    assert await page.text_content("label[for=phone]") == "N.º de telemóvel"
    await fill_identity(page)
    await page.check("input[value=咳嗽]")
    answer = await declare(page)
    assert answer["state"] == "amarelo"
    assert await qr_text(page) == answer["code"]
    assert await page.text_content("#state-word") == "Amarelo"
    assert await page.get_attribute("#icon", "class") == "icon shape-triangle"
    background, text = await colours(page, "#panel")
    assert contrast(background, text) >= 4.5  # type: ignore[arg-type]
    await page.fill("#reason", "Não tenho tosse")
    await page.click("#appeal-submit")
    await page.wait_for_selector("#appeal-status:has-text('Recurso enviado')")
    await page.screenshot(path=screenshot_path("traveller-macau-code-desktop"), full_page=True)
    await context.close()


async def test_a_pending_code_refreshes_itself(phone: Page, regions: Start, clock: MutableClock):
    hangzhou = await regions("hangzhou")
    await phone.goto(hangzhou.url + "/?lang=en")
    await fill_identity(phone)
    await phone.fill("#trip-0-place", "温州市鹿城区")  # not on the list: a back-end review
    await phone.fill("#trip-0-from", "2000-01-01")
    await phone.fill("#trip-0-to", "2099-12-31")
    answer = await declare(phone)
    assert answer["pending"] is True
    assert await phone.text_content("#state-word") == "Under review"
    assert await phone.locator("#pending-note").is_visible()
    await phone.screenshot(path=screenshot_path("traveller-hangzhou-pending-phone"))
    clock.advance(timedelta(seconds=3))  # the review is now due
    await phone.wait_for_selector("#state-word:text-is('Green')", timeout=10_000)
    assert await phone.locator("#pending-note").is_hidden()


async def test_keyboard_alone_declares_and_messages_name_each_field(phone: Page, regions: Start):
    hangzhou = await regions("hangzhou")
    await phone.goto(hangzhou.url + "/")
    await phone.keyboard.press("Tab")  # the language links come first
    await phone.keyboard.press("Tab")
    await phone.keyboard.press("Tab")
    assert await phone.evaluate("document.activeElement.id") == "id_number"
    outline = await phone.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    # The page checks the fields itself ...
    await phone.keyboard.press("Enter")
    assert await phone.text_content("#id_number-error") == "必填"
    assert await phone.text_content("#phone-error") == "必填"
    # ... and the server checks again: a number whose check digit is right but whose province
    # does not exist passes the page and is refused by the server, under its field.
    forged = "99" + ID_NUMBER[2:17]
    from gateway.identity import resident_id_check_char

    await phone.keyboard.type(forged + resident_id_check_char(forged))
    await phone.keyboard.press("Tab")
    await phone.keyboard.type("王芳")
    await phone.keyboard.press("Tab")
    await phone.keyboard.type("13800000001")
    await phone.keyboard.press("Enter")
    await phone.wait_for_selector("#id_number-error:has-text('not a valid resident identity')")
    assert await phone.evaluate("document.activeElement.id") == "id_number"
    await phone.keyboard.press("Control+A")
    await phone.keyboard.type(ID_NUMBER)
    async with phone.expect_response("**/api/declarations"):
        await phone.keyboard.press("Enter")
    await phone.wait_for_selector("#state-word:text-is('绿码')")
    await phone.screenshot(path=screenshot_path("traveller-hangzhou-keyboard-phone"))


async def test_zhejiang_code_url_opens_its_own_page(phone: Page, regions: Start):
    zhejiang = await regions("zhejiang")
    await phone.goto(zhejiang.url + "/")
    await fill_identity(phone)
    answer = await declare(phone)
    assert await qr_text(phone) == answer["code"]
    await phone.goto(answer["code"])  # what a phone camera opens
    assert await phone.text_content("#state-word") == "绿码"
    assert await phone.text_content("#holder") == ID_NUMBER[:3] + "*" * 11 + ID_NUMBER[-4:]
    assert COUNTDOWN.fullmatch(await phone.text_content("#countdown") or "")
    assert await qr_text(phone) == answer["code"]
    await phone.screenshot(path=screenshot_path("traveller-zhejiang-url-phone"), full_page=True)
