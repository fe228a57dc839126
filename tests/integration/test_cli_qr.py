"""``huren qr``: a code as a QR in the terminal or a PNG file, read back by zxing-cpp; bad input
is one line on standard error and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import qr
from tests.integration.cli import huren
from tests.integration.test_cli_errors import one_line_error
from tests.qrread import Read, read_qr

CODE = "HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH"
JWS = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJoYW5nemhvdSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize("code", [CODE, JWS], ids=["base45", "jws"])
def test_png_round_trip(tmp_path: Path, code: str):
    out = tmp_path / "code.png"
    result = huren("qr", code, "--png", str(out), "--scale", "4")
    assert (result.returncode, result.stdout) == (0, "")
    assert read_qr(out.read_bytes()) == Read(code, "M", qr.make(code).version)


def test_terminal_output_is_the_symbol_and_stdin_works():
    typed = huren("qr", JWS)
    piped = huren("qr", "-", stdin=JWS + "\n")
    assert typed.returncode == piped.returncode == 0
    assert typed.stdout == piped.stdout == qr.make(JWS).terminal()
    inverted = huren("qr", "--invert", JWS)
    assert inverted.stdout == qr.make(JWS).terminal(invert=True) != typed.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["a" * 2400], None, ["does not fit a QR symbol", "version 40"]),
        (["-"], "a" * (qr.MAX_CODE_CHARS + 10), ["more than", "characters"]),
        (["-"], "one\ntwo\n", ["more than one line"]),
        (["-"], "", ["empty"]),
        ([CODE, "--png", "/nonexistent-folder/code.png"], None, ["No such file"]),
    ],
    ids=["too-long", "stdin-too-long", "two-lines", "empty", "unwritable"],
)
def test_bad_input_is_one_line_and_exit_2(args, stdin, words):
    one_line_error(huren("qr", *args, stdin=stdin), *words)


def test_every_option_says_what_it_does():
    text = huren("qr", "--help").stdout
    for option in ("--png FILE", "--scale PIXELS", "--invert"):
        assert option in text
    assert "(default: 8)" in text
