"""``huren profile ...``: translation profiles on the author's own machine, no gateway needed.

``check`` validates a profile file and says what it will do; ``test`` is the dry run: sample
codes verified against a profile file and the issuer's public keys, entirely locally, with every
step of the pipeline shown (docs/profiles.md). Errors of use are one line on standard error,
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gateway import crypto
from gateway.cli.common import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    Subparsers,
    aware_datetime,
    read_codes,
    read_hex,
    read_utf8,
)
from gateway.cli.local import algorithm_choices
from gateway.clock import system_clock
from gateway.dryrun import NO_REGION, DryRun
from gateway.errors import RequestInvalid
from gateway.identity import SECRET_BYTES, IdentityKeys
from gateway.limits import Limits
from gateway.model import Reason, Status
from gateway.profiles import load_profile
from gateway.registry.keyfiles import MAX_KEY_FILE_BYTES, read_keys
from gateway.report import profile_lines, trial_json, trial_lines


class _Parser(argparse.ArgumentParser):
    """The ``profile`` actions' parser: usage errors are one line on standard error (exit
    status 2, no usage text), and options may come between the positional arguments, as in
    ``huren profile test PROFILE --key KEY CODE ...`` (argparse's intermixed parsing, which runs
    the plain parser twice)."""

    _parsing = False

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            parsed, unknown = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)[:80]}")
        return parsed, unknown


def register(commands: Subparsers) -> None:
    profile = commands.add_parser("profile", help="work with translation profiles")
    sub = profile.add_subparsers(
        dest="profile_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    check = sub.add_parser("check", help="validate a profile file and summarise it")
    check.add_argument("file", type=Path, help="the profile TOML file")
    check.set_defaults(handler=_check)

    test = sub.add_parser(
        "test",
        help="dry run: verify sample codes against a profile file and a public key, locally",
    )
    test.add_argument("profile", type=Path, metavar="PROFILE", help="the profile TOML file")
    test.add_argument("codes", nargs="*", metavar="CODE", help="codes (or one per line on stdin)")
    test.add_argument(
        "--key",
        type=Path,
        required=True,
        metavar="PUBLIC_KEY",
        help="the issuer's public keys: a JWKS, a JWK, a PEM public key or an X.509 certificate",
    )
    test.add_argument("--kid", help="the key id of a PEM public key (or of a JWK without one)")
    test.add_argument("--algorithm", choices=algorithm_choices(), help="for RSA keys")
    test.add_argument(
        "--at",
        type=aware_datetime,
        help="verify as of this instant (RFC 3339 with offset; default: now)",
    )
    test.add_argument(
        "--issuer",
        help="what the issuer's codes call it (default: what each code says, else the profile id)",
    )
    test.add_argument(
        "--region",
        help="the issuer's region (default: what a code says where the profile reads it, "
        f"else {NO_REGION})",
    )
    test.add_argument(
        "--pseudonym-key-file", type=Path, help="the issuer's pseudonym key (hex), if it uses one"
    )
    test.add_argument("--json", action="store_true", help="one JSON object per code")
    test.set_defaults(handler=_test)


def _check(args: argparse.Namespace) -> int:
    profile = load_profile(read_utf8(args.file, Reason.ERR_PROFILE))
    print("\n".join(profile_lines(profile)))
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    limits = Limits()
    codes = read_codes(list(args.codes))
    if len(codes) > limits.max_batch:
        # As the gateway's batches: a dry run is for a few sample codes.
        raise RequestInvalid(f"at most {limits.max_batch} codes at a time (max_batch)")
    text = read_utf8(args.profile, Reason.ERR_PROFILE)
    algorithm = crypto.Algorithm(args.algorithm) if args.algorithm else None
    with args.key.open("rb") as file:  # enough for read_keys to refuse a larger file
        key_file = file.read(MAX_KEY_FILE_BYTES + 1)
    dry_run = DryRun(
        load_profile(text),
        text,
        read_keys(key_file, kid=args.kid, algorithm=algorithm),
        issuer=args.issuer,
        region=args.region,
        pseudonym_key=read_hex(args.pseudonym_key_file) if args.pseudonym_key_file else None,
        limits=limits,
    )
    now = args.at or system_clock()
    # Throwaway identity secrets: a dry run shows masked identities, never subject references.
    identities = IdentityKeys(secrets.token_bytes(SECRET_BYTES), secrets.token_bytes(SECRET_BYTES))
    trials = [dry_run.run(code, now=now, identities=identities) for code in codes]
    for number, trial in enumerate(trials, 1):
        if args.json:
            print(json.dumps(trial_json(number, trial), ensure_ascii=False))
        else:
            print("\n".join(trial_lines(number, trial)))
    valid = all(t.verdict.status is Status.VALID for t in trials)
    return EXIT_OK if valid else EXIT_FAILED
