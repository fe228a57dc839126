"""What the commands log, and how: plain lines, or one JSON object per line (``--log-format
json``) for a log collector.

A JSON line has ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``logger`` and ``message``,
then the structured fields a line was given (the access log's ``event``, ``rpc``, ``code``,
``ms``), and ``error`` (the exception's type only) when one was logged. Messages are cut at
:data:`MAX_MESSAGE_CHARS`. Nothing the gateway logs carries a code's text or an identity number
(verdicts are logged by reason and code reference, see gateway/server/verifier.py); the JSON
form adds nothing to what the plain form says.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping, Sequence
from datetime import UTC, datetime

FORMATS = ("text", "json")
GRPC_VERBOSITIES = ("NONE", "ERROR", "INFO", "DEBUG")
"""``--grpc-verbosity``: gRPC's C core's own log lines (``GRPC_VERBOSITY``)."""
MAX_MESSAGE_CHARS = 2000
"""A logged message longer than this is cut (and says so)."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER = "huren"
STRUCTURED = ("event", "rpc", "code", "ms")
"""The fields a log call may add with ``extra=``, copied into a JSON line."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " [cut]"
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, object] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for name in STRUCTURED:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = round(value, 3) if isinstance(value, float) else value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def configure(level: str, form: str = "text", *, access: bool = False) -> None:
    """Log at ``level`` on standard error in ``form`` (``text`` or ``json``); with ``access``
    the ``huren.access`` lines (one per call) too, whatever the level. The ``huren.secrets``
    lines (each answer of ``GetReplicaSecrets``: who was handed the replica secrets) are
    always logged."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER:  # a previous run's (tests call main() again)
            root.removeHandler(old)
    if not root.handlers:  # as logging.basicConfig: a host's own handlers are left alone
        handler = logging.StreamHandler(sys.stderr)
        form_of = JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT)
        handler.setFormatter(form_of)
        handler.set_name(_HANDLER)
        root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    logging.getLogger("huren.access").setLevel(logging.INFO if access else logging.WARNING)
    logging.getLogger("huren.secrets").setLevel(logging.INFO)


def grpc_verbosity(argv: Sequence[str], environ: MutableMapping[str, str]) -> None:
    """Set ``GRPC_VERBOSITY`` for gRPC's C core, which reads it once, when it loads: from
    ``--grpc-verbosity`` in ``argv``, else ``HUREN_GRPC_VERBOSITY``, else ``NONE`` unless
    ``GRPC_VERBOSITY`` is set already. Called before anything imports grpc; a value that is not
    one of :data:`GRPC_VERBOSITIES` is left for the argument parser to refuse."""
    chosen = environ.get("HUREN_GRPC_VERBOSITY")
    for i, arg in enumerate(argv):
        if arg == "--grpc-verbosity" and i + 1 < len(argv):
            chosen = argv[i + 1]
        elif arg.startswith("--grpc-verbosity="):
            chosen = arg.partition("=")[2]
    if chosen is not None and chosen.upper() in GRPC_VERBOSITIES:
        environ["GRPC_VERBOSITY"] = chosen.upper()
    else:
        environ.setdefault("GRPC_VERBOSITY", "NONE")
