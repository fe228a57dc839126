"""What the command modules share: exit codes, defaults, connection options, small readers."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import getpass
import itertools
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from gateway.clients.tls import TlsCredentials, operator_files, read_tls_file
from gateway.crypto.pki import check_tls_files, server_name
from gateway.errors import ConfigurationInvalid, RequestInvalid
from gateway.model import Reason
from gateway.registry.authority import Actor, Role
from gateway.registry.keyfiles import MAX_KEY_FILE_BYTES

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
DEFAULT_GATEWAY = "127.0.0.1:50051"
DEFAULT_REGISTRY = "127.0.0.1:50052"
DEFAULT_STATE = Path(".huren/gateway")
DEFAULT_PKI = Path(".huren/pki")

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time before Python 3.12
    Subparsers = argparse._SubParsersAction


def add_tls_options(parser: argparse.ArgumentParser, *, mutual: bool) -> None:
    """``--ca`` (or ``--pki DIR``) and, for operators, ``--cert``/``--key`` (or ``--as NAME``)."""
    group = parser.add_argument_group("TLS")
    group.add_argument("--pki", type=Path, default=DEFAULT_PKI, help="a `huren pki init` folder")
    group.add_argument("--ca", type=Path, help="the CA certificate that signed the gateway's")
    group.add_argument(
        "--server-name",
        metavar="NAME",
        help="the host name the gateway's certificate carries, when the address dialled is "
        "another (an IP address, localhost inside a container)",
    )
    group.add_argument(
        "--insecure", action="store_true", help="plaintext (a gateway started with --insecure)"
    )
    if mutual:
        group.add_argument("--as", dest="operator", help="operator NAME in the --pki folder")
        group.add_argument("--cert", type=Path, help="the operator's client certificate")
        group.add_argument("--key", type=Path, help="the operator's private key")


def tls_credentials(args: argparse.Namespace) -> TlsCredentials | None:
    """The TLS material the options name, read and checked now, so that a bad file is named
    before gRPC reports only that it could not build a handshake.

    Raises:
        TlsFilesInvalid: naming the file that cannot be used.
    """
    if args.insecure:
        return None
    hint = "" if args.ca else "; give --ca FILE, or --pki DIR made by `huren pki init`"
    ca = read_tls_file(args.ca or args.pki / "ca.pem", hint)
    certificate = key = None
    if getattr(args, "cert", None) or getattr(args, "key", None):
        if not (args.cert and args.key):
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "--cert and --key go together")
        certificate, key = read_tls_file(args.cert), read_tls_file(args.key)
    elif getattr(args, "operator", None):
        certificate_file, key_file = operator_files(args.pki, args.operator)
        hint = f"; is {args.operator!r} an operator of {args.pki}? (`huren pki issue`)"
        certificate, key = read_tls_file(certificate_file, hint), read_tls_file(key_file, hint)
    check_tls_files(ca, certificate, key, datetime.now(UTC))
    name = getattr(args, "server_name", None)
    if name is None and getattr(args, "server_certificate", None) is not None:
        name = server_name(read_tls_file(args.server_certificate))
    return TlsCredentials(
        ca.content,
        certificate.content if certificate else None,
        key.content if key else None,
        server_name=name,
    )


_CODE_START = re.compile(r"[A-Za-z0-9]{1,8}:|eyJ|https?://")
_BASE45_PREFIX = re.compile(r"[A-Z0-9]{1,8}:")


def split_code(codes: list[str]) -> str | None:
    """Why ``codes`` look like one base45 code the shell split at its spaces (base45 has a
    space in its alphabet: an unquoted ``HC1:...`` code becomes several arguments), or None."""
    for number, (before, piece) in enumerate(itertools.pairwise(codes), 2):
        if _BASE45_PREFIX.match(before) and not _CODE_START.match(piece):
            return (
                f"argument {number} does not start like a code, and argument {number - 1} is a "
                "prefixed base45 code, whose alphabet has a space: the shell split it. Quote "
                "each code ('HC1:...'), or give codes one per line on standard input"
            )
    return None


MAX_STDIN_BYTES = 16 * 1024 * 1024
"""Codes given on standard input: at most this many bytes (16 MiB) in one run."""


def read_codes(arguments: list[str]) -> list[str]:
    """The codes given as arguments, or else one per line on standard input (line terminators
    are not part of a code; blank lines are skipped).

    Raises:
        RequestInvalid: if the input is not UTF-8 text, is over :data:`MAX_STDIN_BYTES`, or
            holds no code; or if arguments look like one base45 code the shell split.
    """
    if arguments:
        for number, code in enumerate(arguments, 1):
            try:
                code.encode("utf-8")
            except UnicodeEncodeError as e:
                raise RequestInvalid(
                    f"argument {number} is not UTF-8 text (a byte that is not, at character "
                    f"{e.start}): health codes are ASCII; convert it (iconv -f GBK -t UTF-8)"
                ) from None
        if (split := split_code(arguments)) is not None:
            raise RequestInvalid(split)
        return arguments
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise RequestInvalid(
            f"standard input is over {MAX_STDIN_BYTES} bytes: give the codes in several runs"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestInvalid(
            f"standard input is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}):"
            " health codes are ASCII; convert it (iconv -f GBK -t UTF-8)"
        ) from None
    codes = [line for line in text.splitlines() if line]
    if not codes:
        raise RequestInvalid("no codes given (as arguments, or one per line on standard input)")
    return codes


MAX_LINE_BYTES = 1024 * 1024
"""One line of standard input read as a stream (``huren verify``): at most this many bytes."""


def code_lines(stream: BinaryIO) -> Iterator[tuple[int, str | RequestInvalid]]:
    """Each non-blank line of ``stream`` as soon as it is complete, numbered from 1: its text
    without the line terminator, or why it is not a code this command can send (not UTF-8, or
    over :data:`MAX_LINE_BYTES`). Nothing is kept between lines, so a scanner may type all day.
    """
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass  # the rest of the over-long line is dropped, never held
            yield (
                number,
                RequestInvalid(
                    f"line {number} of standard input is over {MAX_LINE_BYTES} bytes: not a code"
                ),
            )
            continue
        data = line.rstrip(b"\r\n")
        if not data:
            continue
        try:
            yield number, data.decode("utf-8")
        except UnicodeDecodeError as e:
            yield (
                number,
                RequestInvalid(
                    f"standard input is not UTF-8 text at line {number} (byte "
                    f"0x{data[e.start]:02x} at offset {e.start} of the line): health codes are "
                    "ASCII; convert it "
                    "(iconv -f GBK -t UTF-8)"
                ),
            )


def aware_datetime(text: str) -> datetime:
    """An argparse type: an RFC 3339 / ISO 8601 time that says its UTC offset."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text[:40]!r}") from e
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} needs a UTC offset, like +08:00 or Z")
    return value


def read_utf8(path: Path, reason: Reason) -> str:
    """A declarative file's text (profiles, policies).

    Raises:
        ConfigurationInvalid: with ``reason`` if it is not UTF-8.
    """
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigurationInvalid(reason, f"{path.name} is not UTF-8 text (byte {e.start})") from e


def read_source(source: str) -> bytes:
    """A file, or an http(s) URL (bounded)."""
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in ("http", "https"):
        with urllib.request.urlopen(source, timeout=5) as response:
            data: bytes = response.read(MAX_KEY_FILE_BYTES + 1)
        return data
    return Path(source).read_bytes()


def read_hex(path: Path) -> bytes:
    """A secret kept as hex text in a file.

    Raises:
        ConfigurationInvalid: if the file does not hold hex.
    """
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, f"{path.name} does not hold hex") from e


def local_actor() -> Actor:
    """Whoever runs a command on the gateway's host (audited as ``local:<login>``)."""
    return Actor(Role.LOCAL, getpass.getuser())


def plain(value: Any) -> Any:
    """A model value as JSON data the way the CLI prints it: dataclass fields by name (the
    ``.proto`` field names), times in RFC 3339 UTC, enums by value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value
