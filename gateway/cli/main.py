"""The ``huren`` command line.

Gateway commands live in this package, one module per concern; other packages add theirs through
the ``huren.commands`` entry-point group (``regions`` adds ``region`` and ``demo``), so the
gateway never imports them.

Exit status: 0 on success (for ``verify``: every code VALID), 1 when a checked thing failed (a
verdict not VALID, a broken audit chain, a trust list that does not verify), 2 for usage errors,
refusals and unreachable gateways.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points, version

from gateway import logs
from gateway.cli import (
    environment,
    front,
    identity,
    local,
    operator,
    pki,
    policy,
    profile,
    qr,
    serve,
    web,
)
from gateway.cli.common import EXIT_ERROR, Handler
from gateway.errors import ConfigurationInvalid, HurenError, RequestInvalid

log = logging.getLogger("huren")

EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a Unix tool's shell reports when its reader closed the pipe."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:  # HUREN_* variables: the global options' and huren serve's (docs/configuration.md)
        for each in configurable(parser):
            environment.apply(each, os.environ)
    except RequestInvalid as e:
        print(f"huren: {e}", file=sys.stderr)
        return EXIT_ERROR
    args = parser.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # for worker processes
    logs.configure(args.log_level, args.log_format, access=getattr(args, "access_log", False))
    handler: Handler = args.handler
    try:
        status = handler(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe must be caught below
        return status
    except BrokenPipeError:
        # The reader went away (`huren ... | head`): stop quietly, as Unix tools do, and keep
        # the interpreter from complaining when it flushes standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ConfigurationInvalid as e:
        print(f"huren: {e.reason.value}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except HurenError as e:
        print(f"huren: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"huren: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as e:  # a bug: one line for the user, the traceback in the debug log
        log.debug("unexpected error", exc_info=True)
        print(
            f"huren: unexpected error ({type(e).__name__}); please report it. "
            "--log-level DEBUG shows where it happened",
            file=sys.stderr,
        )
        return EXIT_ERROR


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default not in (None, False, "", [], argparse.SUPPRESS)
            and (action.option_strings or action.nargs in (argparse.OPTIONAL, "*"))
        ):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huren", description="互认 huren: cross-region health-code gateway"
    )
    parser.add_argument("--version", action="version", version=f"huren {version('huren')}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="what is logged on standard error",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="log lines as text, or one JSON object per line (fields: docs/scaling.md)",
    )
    parser.add_argument(
        "--grpc-verbosity",
        default="NONE",
        choices=logs.GRPC_VERBOSITIES,
        help="what gRPC's C core logs on standard error (its own lines: TLS handshakes and the "
        "like); read when the command starts",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    local.register(commands)
    operator.register(commands)
    pki.register(commands)
    policy.register(commands)
    identity.register(commands)
    qr.register(commands)
    profile.register(commands)
    web.register(commands)
    front.register(commands)
    for entry in sorted(entry_points(group="huren.commands"), key=lambda e: e.name):
        entry.load()(commands)
    for each in parsers(parser):
        each.formatter_class = HelpFormatter
    return parser


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser under it, depth first, in the order defined."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def configurable(parser: argparse.ArgumentParser) -> tuple[argparse.ArgumentParser, ...]:
    """The parsers whose options ``HUREN_*`` variables may give: the top one (the global
    options) and ``huren serve``'s."""
    return parser, next(p for p in parsers(parser) if p.prog.split()[-1] == "serve")
