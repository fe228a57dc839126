"""``huren qr``: a code as a QR symbol, in the terminal or as a PNG file (:mod:`gateway.qr`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway import qr
from gateway.cli.common import EXIT_OK, Subparsers
from gateway.errors import RequestInvalid

MAX_STDIN_CHARS = qr.MAX_CODE_CHARS + 2
"""What ``-`` reads at most: one code and its line end."""


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "qr",
        help="show a code as a QR symbol in the terminal, or write it as a PNG",
        description=(
            "Draw CODE as a QR symbol (level M; alphanumeric mode for base45 codes, "
            "byte + numeric segments for shc:/ codes, byte mode otherwise)."
        ),
    )
    p.add_argument("code", metavar="CODE", help="the code, or - to read one line from stdin")
    p.add_argument("--png", type=Path, metavar="FILE", help="write a PNG to FILE instead")
    p.add_argument(
        "--scale",
        type=int,
        default=8,
        choices=range(1, 33),
        metavar="PIXELS",
        help="pixels per module in the PNG, 1 to 32",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="draw dark modules as blocks (for dark text on a light terminal)",
    )
    p.set_defaults(handler=_qr)


def _qr(args: argparse.Namespace) -> int:
    code: str = args.code
    if code == "-":
        code = sys.stdin.read(MAX_STDIN_CHARS + 1)
        if len(code) > MAX_STDIN_CHARS:
            raise qr.QrTooLarge(f"standard input holds more than {qr.MAX_CODE_CHARS} characters")
        code = code.rstrip("\r\n")
        if "\n" in code:
            raise RequestInvalid("standard input holds more than one line: give one code")
    symbol = qr.make(code)
    if args.png is not None:
        args.png.write_bytes(symbol.png(scale=args.scale))
        print(f"{args.png}: QR version {symbol.version}, level {qr.ERROR_LEVEL}", file=sys.stderr)
    else:
        sys.stdout.write(symbol.terminal(invert=args.invert))
    return EXIT_OK
