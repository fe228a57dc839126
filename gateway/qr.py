"""QR codes of health codes: one pure module for the regions' pages and ``huren qr``.

The only importer of segno (``tests/unit/test_layout.py`` keeps it so). Nothing here touches
the network, files or the clock: a code goes in, a symbol (SVG text, PNG bytes, terminal text or
a module matrix) comes out.

Mode, per format (ISO/IEC 18004 segments; each mode packs more characters per bit than the next):

1. ``shc:/`` followed by digits (SMART Health Cards): two segments, ``shc:/`` in byte mode and
   the digits in numeric mode, as the SHC specification lays out (3.33 bits per digit).
2. A code made only of QR's 45-character alphanumeric set (``0-9 A-Z space $ % * + - . / :``):
   alphanumeric mode (5.5 bits per character). The set is exactly the base45 alphabet, so every
   ``HC1:``-style code (EU DCC ``HC1:``, Beijing ``BJ1:``, Macau ``MO1:``) qualifies.
3. Anything else (compact JWS, Shanghai's ``|`` fields, Zhejiang's lower-case URL): byte mode.

Error correction: level M (about 15 % of the codewords may be lost), never boosted. Codes are
shown on phone screens, which do not get torn or stained like paper but do get glare and
moiré; M absorbs that, and it keeps the symbol two to four versions smaller than Q for the
same code (a 420-character Shanghai code is version 16 at M, 19 at Q), so modules stay larger
at a given screen width. Printed copies use the same level: one symbol per code.

Limits: at most :data:`MAX_CODE_CHARS` characters, and the symbol must fit QR version 40 at
level M; otherwise :class:`QrTooLarge`.
"""

from __future__ import annotations

import enum
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import segno
from segno import consts

from gateway.errors import RequestInvalid

ERROR_LEVEL = "M"
"""The error-correction level of every symbol (see the module docstring for why)."""
MAX_CODE_CHARS = 4296
"""The most characters any code may have: version 40-M holds 3391 alphanumeric characters or
2331 bytes, so this bound only stops absurd input before segno tries; the version check
after it is the real limit."""
MAX_VERSION = 40
QUIET_ZONE = 4
"""Modules of white around the symbol, as ISO/IEC 18004 requires."""
SHC_PREFIX = "shc:/"
_ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")
_SHC = re.compile(r"shc:/([0-9]+)")


class QrTooLarge(RequestInvalid):
    """The code does not fit one QR symbol (version 40 at level M), or is over the bound."""


class Mode(enum.Enum):
    NUMERIC = "numeric"
    ALPHANUMERIC = "alphanumeric"
    BYTE = "byte"

    @property
    def indicator(self) -> int:
        """The segment's mode indicator in the symbol (ISO/IEC 18004 table 2)."""
        return _INDICATORS[self]


_INDICATORS = {
    Mode.NUMERIC: consts.MODE_NUMERIC,
    Mode.ALPHANUMERIC: consts.MODE_ALPHANUMERIC,
    Mode.BYTE: consts.MODE_BYTE,
}


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    mode: Mode


def segments(code: str) -> tuple[Segment, ...]:
    """The QR segments ``code`` is written in (rules 1-3 of the module docstring)."""
    shc = _SHC.fullmatch(code)
    if shc:
        return (Segment(SHC_PREFIX, Mode.BYTE), Segment(shc.group(1), Mode.NUMERIC))
    if _ALPHANUMERIC.fullmatch(code):
        return (Segment(code, Mode.ALPHANUMERIC),)
    return (Segment(code, Mode.BYTE),)


@dataclass(frozen=True, slots=True)
class Symbol:
    """One QR symbol of one code."""

    code: str
    segments: tuple[Segment, ...]
    version: int
    _qr: segno.QRCode

    def svg(self, *, scale: int = 4, title: str | None = None) -> str:
        """Standalone SVG text (black on white, with the quiet zone), ``scale`` px per module."""
        out = io.BytesIO()
        self._qr.save(
            out,
            kind="svg",
            scale=scale,
            border=QUIET_ZONE,
            xmldecl=False,
            svgns=True,
            title=title,
            svgclass=None,
            lineclass=None,
        )
        return out.getvalue().decode("utf-8")

    def png(self, *, scale: int = 8) -> bytes:
        """PNG bytes (black on white, with the quiet zone), ``scale`` px per module."""
        out = io.BytesIO()
        self._qr.save(out, kind="png", scale=scale, border=QUIET_ZONE)
        return out.getvalue()

    def matrix(self) -> list[list[bool]]:
        """Rows of modules, True for dark, the quiet zone included."""
        return [[bool(m) for m in row] for row in self._qr.matrix_iter(border=QUIET_ZONE)]

    def terminal(self, *, invert: bool = False) -> str:
        """Text for a terminal: two module rows per line in half-block characters.

        By default light modules are drawn and dark ones left blank, which reads right on the
        usual light-on-dark terminal; ``invert`` draws dark modules (dark-on-light terminals).
        """
        rows = self.matrix()
        if len(rows) % 2:
            rows.append([False] * len(rows[0]))
        glyphs = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
        lines = []
        for top, bottom in zip(rows[::2], rows[1::2], strict=True):
            drawn = [
                glyphs[(t != (not invert), b != (not invert))]
                for t, b in zip(top, bottom, strict=True)
            ]
            lines.append("".join(drawn))
        return "\n".join(lines) + "\n"


def make(code: str) -> Symbol:
    """The QR symbol of ``code``.

    Raises:
        QrTooLarge: empty, over :data:`MAX_CODE_CHARS`, or beyond version 40 at level M.
    """
    if not code:
        raise QrTooLarge("an empty code has no QR symbol")
    if len(code) > MAX_CODE_CHARS:
        raise QrTooLarge(f"a code of {len(code)} characters is over the {MAX_CODE_CHARS} limit")
    parts = segments(code)
    content: Sequence[tuple[str, int]] = [(s.text, s.mode.indicator) for s in parts]
    try:
        # segno takes a list of (text, mode) pairs as one segment each (segno.encoder's
        # prepare_data); its type hints name only the single-segment forms.
        qr = segno.make(
            content,  # type: ignore[arg-type]
            error=ERROR_LEVEL,
            boost_error=False,
            micro=False,
        )
    except segno.DataOverflowError as e:
        raise QrTooLarge(
            f"a code of {len(code)} characters does not fit a QR symbol "
            f"(version {MAX_VERSION}, level {ERROR_LEVEL})"
        ) from e
    version = qr.version
    assert isinstance(version, int)
    return Symbol(code, parts, version, qr)
