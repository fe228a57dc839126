"""``huren profile ...``: translation profiles on the author's own machine, no gateway needed.

``check`` validates a profile file and says what it will do (docs/profiles.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli.common import EXIT_OK, Subparsers, read_utf8
from gateway.model import Reason
from gateway.profiles import load_profile
from gateway.report import profile_lines


def register(commands: Subparsers) -> None:
    profile = commands.add_parser("profile", help="work with translation profiles")
    sub = profile.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a profile file and summarise it")
    check.add_argument("file", type=Path, help="the profile TOML file")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    profile = load_profile(read_utf8(args.file, Reason.ERR_PROFILE))
    print("\n".join(profile_lines(profile)))
    return EXIT_OK
