"""Reading a scanner's lines: each complete line at once, bounded, never a line held whole."""

from __future__ import annotations

import io

from gateway.cli import common
from gateway.errors import RequestInvalid


def _lines(data: bytes) -> list[tuple[int, str]]:
    return [
        (n, line if isinstance(line, str) else f"error: {line}")
        for n, line in common.code_lines(io.BytesIO(data))
    ]


def test_terminators_and_blank_lines_are_not_codes():
    assert _lines(b"A\r\n\nB\n\r\nC") == [(1, "A"), (3, "B"), (5, "C")]


def test_an_over_long_line_is_named_and_the_next_line_still_read(monkeypatch):
    monkeypatch.setattr(common, "MAX_LINE_BYTES", 8)
    got = _lines(b"12345678\n" + b"x" * 30 + b"\nNEXT\n")
    assert got[0] == (1, "12345678")  # exactly at the bound is a line
    assert got[1][0] == 2
    assert "line 2 of standard input is over 8 bytes" in got[1][1]
    assert got[2] == (3, "NEXT")


def test_a_line_that_is_not_utf8_is_named_by_number_and_offset():
    [(number, error)] = list(common.code_lines(io.BytesIO(b"o\xffk\n")))
    assert number == 1
    assert isinstance(error, RequestInvalid)
    assert "line 1 (byte 0xff at offset 1 of the line)" in str(error)


def test_lines_are_yielded_before_the_input_ends():
    class Scanner(io.RawIOBase):
        """Input that fails if read past the first line before that line was used."""

        def __init__(self) -> None:
            self.data, self.used = io.BytesIO(b"FIRST\nSECOND\n"), False

        def readline(self, size: int | None = -1) -> bytes:
            line = self.data.readline(size)
            if line == b"SECOND\n":
                assert self.used, "the second line was read before the first was answered"
            return line

    scanner = Scanner()
    lines = common.code_lines(scanner)  # type: ignore[arg-type]
    assert next(lines) == (1, "FIRST")
    scanner.used = True
    assert next(lines) == (2, "SECOND")
