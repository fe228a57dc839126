"""``huren identity check``: what the gateway derives from a test identity number, so that an
issuer can compare its own implementation of the identity carriers (docs/issuers.md) byte for
byte: the masked number, the link hash, the subject reference verdicts will carry, and the
sealed pseudonym.

The number comes from ``--number`` (or one line of standard input with ``--number -``, which
keeps it out of the process list and the shell's history). It is never printed, logged or
written anywhere, and error messages never quote it: only what is derived from it is shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway import crypto
from gateway.cli.common import EXIT_ERROR, EXIT_OK, Subparsers, read_hex
from gateway.codecs import base64url
from gateway.errors import ConfigurationInvalid
from gateway.identity import (
    SECRET_BYTES,
    IdentityKeys,
    link_hash,
    mask_number,
    resident_id_problem,
)
from gateway.model import Reason
from gateway.registry.model import ISSUER_ID


def register(commands: Subparsers) -> None:
    identity = commands.add_parser(
        "identity", help="identity carriers: what an issuer must compute, for a test number"
    )
    sub = identity.add_subparsers(dest="identity_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="the masked number, link hash, subject reference and sealed pseudonym of a number",
    )
    check.add_argument(
        "--number",
        required=True,
        help="a test resident identity number (18 characters), or - to read it from stdin",
    )
    check.add_argument(
        "--link-key", type=Path, required=True, help="the national linking key (link.key, hex)"
    )
    check.add_argument(
        "--subject-key",
        type=Path,
        help="the gateway's subject.key (hex, on the gateway's host): adds the subject reference",
    )
    check.add_argument(
        "--pseudonym-key", type=Path, help="an issuer's pseudonym key (hex, 64 bytes)"
    )
    check.add_argument("--issuer", help="the issuer id the pseudonym is sealed for")
    check.add_argument("--json", action="store_true", help="the results as one JSON object")
    check.set_defaults(handler=_check)


def _secret(path: Path, what: str) -> bytes:
    secret = read_hex(path)
    if len(secret) < SECRET_BYTES:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK,
            f"{path.name} holds {len(secret)} bytes; {what} is at least {SECRET_BYTES}",
        )
    return secret


def _check(args: argparse.Namespace) -> int:
    if (args.pseudonym_key is None) != (args.issuer is None):
        print("huren identity check: --pseudonym-key and --issuer go together", file=sys.stderr)
        return EXIT_ERROR
    if args.issuer is not None and not ISSUER_ID.fullmatch(args.issuer):
        print(
            "huren identity check: --issuer must be an issuer id (lower-case letters, digits, "
            "'.', '_', '-')",
            file=sys.stderr,
        )
        return EXIT_ERROR
    number = sys.stdin.readline().rstrip("\r\n") if args.number == "-" else args.number
    problem = resident_id_problem(number)
    if problem is not None:
        print(
            f"huren identity check: the number is not a valid resident identity number: {problem}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    link_key = _secret(args.link_key, "the linking key")
    link = link_hash(link_key, number)
    found: dict[str, Any] = {
        "masked_identity": mask_number(number),
        "link_hash": base64url.encode(link),
        "link_hash_hex": link.hex(),
        "subject": None,
        "pseudonym": None,
        "pseudonym_issuer": None,
    }
    if args.subject_key is not None:
        keys = IdentityKeys(_secret(args.subject_key, "the subject key"), link_key)
        found["subject"] = keys.subject(keys.from_number(number))
    if args.pseudonym_key is not None:
        pseudonym_key = read_hex(args.pseudonym_key)
        crypto.check_pseudonym_key(pseudonym_key)
        sealed = crypto.seal_pseudonym(pseudonym_key, number.encode("ascii"), args.issuer.encode())
        found["pseudonym"] = base64url.encode(sealed)
        found["pseudonym_issuer"] = args.issuer
    if args.json:
        print(json.dumps(found))
    else:
        print("\n".join(_lines(found)))
    return EXIT_OK


def _lines(found: dict[str, Any]) -> list[str]:
    lines = [
        "number     a valid resident identity number (GB 11643); not shown",
        f"masked     {found['masked_identity']}",
        f"link hash  {found['link_hash']}  (base64url; hex {found['link_hash_hex']})",
    ]
    if found["subject"] is not None:
        lines.append(f"subject    {found['subject']}")
    else:
        lines.append("subject    (needs --subject-key: the gateway's subject.key)")
    if found["pseudonym"] is not None:
        lines.append(
            f"pseudonym  {found['pseudonym']}  (base64url; AES-SIV for issuer "
            f"{found['pseudonym_issuer']})"
        )
    return lines
