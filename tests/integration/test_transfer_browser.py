"""转码 in a real browser, end to end (docs/web.md): 王芳 declares on Guangdong's page, taps
"转码到 澳门健康码", sees the hub's attestation as a QR, sends it to Macau's issuer and sees her
澳门健康码 verde as a QR; both QR codes, read from screenshots, verify at the real gateway. 张伟's
red code is refused with the reason, in Chinese and in English."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from gateway.model import Colour, Status
from regions.common.look import contrast
from tests.conftest import resident_id
from tests.integration.browser import PHONE, chromium, screenshot_path, watched_page
from tests.integration.test_pages_browser import colours, declare, fill_identity
from tests.integration.transferworld import TransferWorld, transfer_world
from tests.qrread import read_qr

pytestmark = pytest.mark.asyncio(loop_scope="module")
WANG = resident_id("330106", "19900307", "122")
ZHANG = resident_id("330110", "19780514", "257")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TransferWorld]:
    async with transfer_world(tmp_path_factory.mktemp("transfer")) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def phone(browser: Browser) -> AsyncIterator[Page]:
    # A refusal (422) is logged by Chromium as a failed resource; anything else is a fault.
    async with watched_page(browser, PHONE, expected_error="status of 422") as page:
        yield page


async def _qr(page: Page, selector: str) -> str:
    await page.wait_for_function(
        "s => { const i = document.querySelector(s); return i.complete && i.naturalWidth > 0; }",
        arg=selector,
    )
    await page.locator(selector).scroll_into_view_if_needed()
    return read_qr(await page.locator(selector).screenshot()).text


async def test_wang_fang_carries_her_blue_code_to_macau(phone: Page, world: TransferWorld):
    await phone.goto(world.url("guangdong") + "/")
    await fill_identity(phone, WANG)
    await declare(phone)
    button = phone.locator("#transfer-to button[data-destination='820000']")
    await button.wait_for()
    assert await button.text_content() == "转码到 澳门健康码 · 820000"
    await button.click()
    await phone.wait_for_selector("#transfer[data-state=attested]")
    attestation = await _qr(phone, "#attestation-qr")
    assert attestation.startswith("HR1:")
    verdict = await world.hub.verify(attestation)
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN)
    assert verdict.code is not None
    assert verdict.code.destination == "820000"
    assert await phone.text_content("#attestation-destination") == "澳门健康码 (820000)"
    await phone.screenshot(path=screenshot_path("transfer-attestation-phone"), full_page=True)

    await phone.click("#convert")
    await phone.wait_for_selector("#transfer[data-state=converted]")
    verde = await _qr(phone, "#converted-qr")
    assert await phone.text_content("#converted-word") == "澳门健康码 绿码"
    assert await phone.text_content("#converted-holder") == WANG[0] + "*" * 16 + WANG[-1]
    assert await phone.text_content("#converted-uses") == "1 / 3"
    background, text = await colours(phone, "#converted-panel")
    assert contrast(background, text) >= 4.5  # type: ignore[arg-type]
    decision = await world.hub.service.recognise_async([verde], "820000")
    assert decision.colour is Colour.GREEN
    assert [a.verdict.code.region for a in decision.assessments if a.verdict.code] == ["820000"]
    assert WANG not in await phone.content()
    await phone.screenshot(path=screenshot_path("transfer-converted-phone"), full_page=True)
    await phone.locator("#transfer").screenshot(path=screenshot_path("transfer-phone"))


@pytest.mark.parametrize(
    ("lang", "why"),
    [
        ("zh", "按目的地政策判定不是绿码，不签发互认凭证"),
        ("en", "Under the destination's policy the decision is not GREEN: no attestation"),
    ],
)
async def test_a_red_code_is_refused_with_the_reason(
    phone: Page, world: TransferWorld, lang: str, why: str
):
    await phone.goto(world.url("guangdong") + f"/?lang={lang}")
    await fill_identity(phone, ZHANG)
    await phone.check("#contact")
    await declare(phone)
    button = phone.locator("#transfer-to button[data-destination='820000']")
    await button.click()
    await phone.wait_for_selector("#transfer[data-state=refused]")
    assert await phone.locator("#attestation").is_hidden()
    assert await phone.text_content("#refused-why") == why
    decision = await phone.text_content("#refused-decision")
    assert decision is not None
    assert ("红码" if lang == "zh" else "RED") in decision
    assert (await phone.text_content("#refused-detail") or "").startswith("NOT_GREEN: ")
    await phone.screenshot(path=screenshot_path(f"transfer-refused-{lang}-phone"), full_page=True)
    await phone.locator("#transfer").screenshot(path=screenshot_path(f"transfer-refused-{lang}"))
