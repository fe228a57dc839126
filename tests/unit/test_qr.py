"""QR symbols of codes (gateway.qr): the mode each format is written in, the error-correction
level, the size limit, and every output read back by a real decoder (zxing-cpp)."""

from __future__ import annotations

from typing import Any

import pytest
import segno
from PIL import Image

from gateway import qr
from gateway.codecs import textform
from gateway.qr import Mode, Segment
from tests.qrread import Read, read_qr

A, N, B = Mode.ALPHANUMERIC, Mode.NUMERIC, Mode.BYTE
JWS = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJoYW5nemhvdSJ9.c2lnbmF0dXJl"
SHC = textform.encode_numeric("shc:/", JWS)
CASES: dict[str, tuple[str, tuple[tuple[Any, Mode], ...]]] = {
    "eu-dcc": ("HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH", ((..., A),)),
    "beijing": ("BJ1:6BFOXN*TS0BI$ZDFRH", ((..., A),)),
    "macau": ("MO1:NCFOXN%TSMAHN-H7P8O", ((..., A),)),
    "shc": (SHC, (("shc:/", B), (SHC[5:], N))),
    "compact-jws": (JWS, ((..., B),)),
    "shanghai": ("SH1:shanghai|k1|0|20220401100000|330106199003071228|c2ln", ((..., B),)),
    "zhejiang-url": ("http://127.0.0.1:8080/hc/v1/AbCdEfGhIjKlMnOpQrSt", ((..., B),)),
    "lower-case-base45-lookalike": ("hc1:ABC", ((..., B),)),
    "shc-with-letters": ("shc:/12ab", ((..., B),)),
}


@pytest.mark.parametrize(("code", "expected"), CASES.values(), ids=CASES.keys())
def test_each_format_is_written_in_its_mode(code, expected):
    wanted = tuple(Segment(code if text is ... else text, mode) for text, mode in expected)
    assert qr.segments(code) == wanted
    symbol = qr.make(code)
    assert read_qr(symbol.png(scale=2)) == Read(code, "M", symbol.version)


def test_the_chosen_modes_make_smaller_symbols_than_bytes():
    base45 = textform.encode("HC1:", bytes(range(256)) * 2)
    for code in (base45, textform.encode_numeric("shc:/", JWS * 8)):
        as_bytes = segno.make(code, error="m", mode="byte", boost_error=False).version
        assert isinstance(as_bytes, int)
        assert qr.make(code).version < as_bytes, code[:8]


def test_the_largest_code_that_fits_version_40_and_the_first_that_does_not():
    assert qr.make("a" * 2331).version == 40  # 2331 bytes: version 40 at level M
    with pytest.raises(qr.QrTooLarge, match="does not fit"):
        qr.make("a" * 2332)
    assert qr.make("A" * 3391).version == 40  # alphanumeric holds more
    with pytest.raises(qr.QrTooLarge, match="over the"):
        qr.make("1" * (qr.MAX_CODE_CHARS + 1))
    with pytest.raises(qr.QrTooLarge, match="empty"):
        qr.make("")


def test_svg_is_a_standalone_image_that_decodes():
    svg = qr.make(JWS).svg(scale=4)
    assert svg.startswith("<svg")
    assert "<script" not in svg
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg


@pytest.mark.parametrize("invert", [False, True], ids=["light-on-dark", "dark-on-light"])
def test_terminal_text_is_the_same_symbol(invert):
    symbol = qr.make(JWS)
    lines = symbol.terminal(invert=invert).splitlines()
    halves = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
    rows: list[list[bool]] = []
    for line in lines:
        drawn = [halves[c] for c in line]
        rows.append([top for top, _ in drawn])
        rows.append([bottom for _, bottom in drawn])
    dark = [[d == invert for d in row] for row in rows[: len(symbol.matrix())]]
    assert dark == symbol.matrix()
    scale = 4
    image = Image.new("L", (len(dark[0]) * scale, len(dark) * scale), 255)
    for y, row in enumerate(dark):
        for x, module in enumerate(row):
            if module:
                image.paste(0, (x * scale, y * scale, (x + 1) * scale, (y + 1) * scale))
    assert read_qr(image).text == JWS
