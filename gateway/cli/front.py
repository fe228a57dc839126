"""``huren front``: the nginx configuration that refuses calls past a bound in front of a gateway
(:mod:`gateway.server.front`), printed, or run.

Printed (the default), it goes to an nginx of the operator's (a sidecar container, docs/front.md).
With ``--run`` this command runs it under the machine's nginx itself:

1. with ``--listen HOST:0``, picks a free port and holds it with a socket bound with
   ``SO_REUSEPORT`` that never listens, and nginx listens there with ``reuseport``; with a port
   given, nginx binds it alone, so a port already in use (another front) fails the start;
2. writes the configuration into ``--work-dir`` (default: a temporary folder, removed at the
   end) and starts ``nginx -p WORK_DIR``;
3. prints ``huren front listening on HOST:PORT`` once nginx accepts connections;
4. on SIGTERM or SIGINT asks nginx to finish the calls in flight (its SIGQUIT), and ends it
   after ``STOP_SECONDS``; a signal that comes before nginx can take signals (its pid file is
   not written yet) is held until it can. SIGHUP, and a change of the TLS files (looked at every
   ``--tls-check-seconds``), make nginx read its certificates again;
5. exits 0 when nginx ended cleanly or as asked, 1 when it ended otherwise, 2 when it could not
   start. nginx ends with this command even when it is killed outright.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.cli import workers
from gateway.cli.common import DEFAULT_PKI, EXIT_ERROR, EXIT_FAILED, EXIT_OK, Subparsers
from gateway.errors import RequestInvalid
from gateway.lifecycle import TLS_CHECK_SECONDS
from gateway.limits import Limits
from gateway.server.certificates import file_stamp
from gateway.server.front import (
    DEFAULT_STREAM_IDLE_SECONDS,
    DEFAULT_UNARY_BODY_SECONDS,
    Address,
    FrontSettings,
    Upstream,
    render,
)

DEFAULT_FRONT = "127.0.0.1:50061"
NGINX_PLACES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
START_SECONDS = 10.0
"""How long ``--run`` waits for nginx to accept connections."""
STOP_SECONDS = 15.0
"""How long nginx has to finish its calls after SIGTERM before it is ended at once."""


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "front",
        help="nginx in front of a gateway: calls past a bound refused RESOURCE_EXHAUSTED",
        description=(
            "Write the nginx configuration of a front for the gateway at --upstream (or, with "
            "--run, run it): unary calls past --max-calls and streams past --max-streams in "
            "flight are refused at once with the gateway's own RESOURCE_EXHAUSTED answer, in "
            "nginx rather than in the gateway's event loop (docs/front.md)."
        ),
    )
    defaults = Limits()
    p.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="the gateway's --listen: grpc://HOST:PORT (plaintext, e.g. loopback in the same "
        "pod) or grpcs://HOST:PORT (its certificate checked against the --tls-dir CA)",
    )
    p.add_argument(
        "--listen", default=DEFAULT_FRONT, help="the front's address (default %(default)s)"
    )
    p.add_argument(
        "--tls-dir",
        type=Path,
        default=DEFAULT_PKI,
        help="gateway.pem and gateway.key, served by the front; ca.pem, which a grpcs:// "
        "upstream's certificate must chain to (default %(default)s)",
    )
    p.add_argument(
        "--insecure", action="store_true", help="the front listens in plaintext (tests, demos)"
    )
    p.add_argument(
        "--upstream-name",
        metavar="NAME",
        help="the DNS name a grpcs:// upstream's certificate must hold (default: its host; "
        "needed when the host is an IP address, e.g. localhost for 127.0.0.1)",
    )
    p.add_argument(
        "--max-calls",
        type=int,
        default=defaults.max_concurrent_rpcs,
        help="unary calls in flight through the front; more are refused at once "
        "(default %(default)s, the gateway's --max-concurrent-rpcs)",
    )
    p.add_argument(
        "--max-streams",
        type=int,
        default=2 * defaults.max_concurrent_streams,
        help="streams open through the front, counted apart: a backstop above the gateway's "
        "--max-concurrent-streams, which refuses them first (default %(default)s)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=defaults.max_message_bytes,
        help="the largest request message of a unary call (default %(default)s)",
    )
    p.add_argument(
        "--stream-idle-seconds",
        type=int,
        default=DEFAULT_STREAM_IDLE_SECONDS,
        help="how long a stream may carry nothing (default %(default)s; more than a third of "
        "the hub's --trust-fresh-for)",
    )
    p.add_argument(
        "--unary-body-seconds",
        type=int,
        default=DEFAULT_UNARY_BODY_SECONDS,
        help="how long a unary call's request may pause before nginx ends the call and frees "
        "its place (default %(default)s)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="nginx worker processes (default %(default)s)"
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="write the configuration there")
    p.add_argument(
        "--run",
        action="store_true",
        help="run it under this machine's nginx (port 0 picks a port) until SIGTERM",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        help="with --run: nginx's folder (configuration, pid, temporary files); default a "
        "temporary folder",
    )
    p.add_argument(
        "--tls-check-seconds",
        type=float,
        default=TLS_CHECK_SECONDS,
        help="with --run: how often the TLS files are looked at; changed, nginx reads them again "
        "(0: only on SIGHUP; default %(default)s)",
    )
    p.add_argument("--nginx", metavar="PATH", help="the nginx program (default: found on PATH)")
    p.set_defaults(handler=_front)


def _front(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.run:
        text = render(settings)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.write_text(text, encoding="utf-8")
        return EXIT_OK
    nginx = (
        args.nginx
        or shutil.which("nginx")
        or next((place for place in NGINX_PLACES if os.access(place, os.X_OK)), None)
    )
    if nginx is None:
        print("huren front: no nginx (apt-get install nginx, or --nginx PATH)", file=sys.stderr)
        return EXIT_ERROR
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory("-front")))
        work.mkdir(parents=True, exist_ok=True)
        running = dataclasses.replace(settings, reuseport=False)
        if settings.listen.port == 0:  # held until nginx listens beside it (see the docstring)
            try:
                reserved, _ = workers.reserve(str(settings.listen))
            except OSError as error:
                raise RequestInvalid(str(error)) from None
            stack.callback(reserved.close)
            listen = Address(settings.listen.host, reserved.getsockname()[1])
            running = dataclasses.replace(settings, listen=listen, reuseport=True)
        (work / "nginx.conf").write_text(render(running), encoding="utf-8")
        watched = [p for p in (running.certificate, running.key, running.upstream_ca) if p]
        return _Nginx(nginx, work, running, [Path(p) for p in watched]).run(args.tls_check_seconds)
    return EXIT_FAILED  # pragma: no cover - the with block returns


def _settings(args: argparse.Namespace) -> FrontSettings:
    upstream = Upstream.parse(args.upstream)
    tls = None if args.insecure else args.tls_dir
    settings = FrontSettings(
        listen=Address.parse(args.listen, "--listen"),
        upstream=upstream,
        max_calls=args.max_calls,
        max_streams=args.max_streams,
        max_message_bytes=args.max_message_bytes,
        certificate=None if tls is None else _absolute(tls / "gateway.pem", args.run),
        key=None if tls is None else _absolute(tls / "gateway.key", args.run),
        upstream_ca=_absolute(args.tls_dir / "ca.pem", args.run) if upstream.tls else None,
        upstream_name=args.upstream_name,
        stream_idle_seconds=args.stream_idle_seconds,
        unary_body_seconds=args.unary_body_seconds,
        workers=args.workers,
        reuseport=args.run,
    )
    settings.check()
    return settings


def _absolute(path: Path, run: bool) -> Path:
    """``path`` as nginx must read it (from its own folder, not ours). Run here, the file must
    be here; printed, it is the path on the machine (or in the container) nginx runs on."""
    if run and not path.is_file():
        raise RequestInvalid(f"{path} is not a file (`huren pki init` writes it)")
    return path.absolute()


class _Nginx:
    """nginx run for this command (see the module docstring, steps 2 to 5)."""

    def __init__(self, nginx: str, work: Path, settings: FrontSettings, watched: list[Path]):
        self.command = [nginx, "-p", f"{work}/", "-c", "nginx.conf", "-e", "stderr"]
        self.pid_file = work / "nginx.pid"
        self.settings = settings
        self.watched = watched
        self.stopping: float | None = None
        self.quit_sent = False
        self.reload_asked = False
        self.process: subprocess.Popen[bytes] | None = None

    def run(self, check_seconds: float) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        signal.signal(signal.SIGHUP, self._reload)
        self.pid_file.unlink(missing_ok=True)  # a stale one would say nginx takes signals
        if self.stopping is not None:
            return EXIT_OK  # stopped before nginx started
        self.process = process = subprocess.Popen(self.command, preexec_fn=workers.end_with_parent)
        if not self._until_accepting(process):
            asked = self.stopping is not None  # a stop during start-up, not a failure
            code = self._end(process)
            if asked:
                print("huren front: stopped during start-up", file=sys.stderr)
                return self._status(code)
            print("huren front: nginx did not start (its errors are above)", file=sys.stderr)
            return EXIT_ERROR
        s = self.settings
        print(
            f"huren front listening on {s.listen} (nginx pid {process.pid}; upstream "
            f"{s.upstream}; at most {s.max_calls} calls and {s.max_streams} streams in flight)",
            flush=True,
        )
        stamps, checked = self._stamps(), time.monotonic()
        while process.poll() is None:
            self._deliver(process)
            if check_seconds > 0 and time.monotonic() - checked >= check_seconds:
                now, checked = self._stamps(), time.monotonic()
                if now != stamps:
                    stamps, self.reload_asked = now, True
                    print("huren front: the TLS files changed; nginx reads them", file=sys.stderr)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.25)
        return self._status(process.returncode)

    def _stop(self, signum: int, frame: object) -> None:
        if self.stopping is None:
            self.stopping = time.monotonic()

    def _reload(self, signum: int, frame: object) -> None:
        self.reload_asked = True

    def _deliver(self, process: subprocess.Popen[bytes]) -> None:
        """Signals asked for, once nginx takes them (it writes its pid file after setting its
        handlers; before, SIGQUIT or SIGHUP would kill it); the drain's end."""
        if not self.pid_file.exists():
            return
        with contextlib.suppress(ProcessLookupError):
            if self.stopping is not None and not self.quit_sent:
                self.quit_sent = True
                process.send_signal(signal.SIGQUIT)
            elif self.reload_asked and self.stopping is None:
                self.reload_asked = False
                process.send_signal(signal.SIGHUP)
            if self.stopping is not None and time.monotonic() - self.stopping > STOP_SECONDS:
                process.terminate()  # nginx's fast stop: streams still open are cut

    def _until_accepting(self, process: subprocess.Popen[bytes]) -> bool:
        """Whether nginx accepts connections within ``START_SECONDS`` (False at once when it
        ended or a stop was asked for)."""
        host = self.settings.listen.host.strip("[]")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        until = time.monotonic() + START_SECONDS
        while time.monotonic() < until and process.poll() is None and self.stopping is None:
            if not self.pid_file.exists():  # written once nginx holds its sockets, not before:
                time.sleep(0.05)  # another program listening on the port proves nothing
                continue
            address = (host, self.settings.listen.port)
            with contextlib.suppress(OSError), socket.create_connection(address, 0.5):
                return True
            time.sleep(0.05)
        return False

    def _end(self, process: subprocess.Popen[bytes]) -> int:
        """Ends nginx (as a stop asks, once it takes signals) and its exit code."""
        self._stop(signal.SIGTERM, None)
        until = time.monotonic() + STOP_SECONDS
        while process.poll() is None and time.monotonic() < until:
            self._deliver(process)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.05)
        if process.poll() is None:
            process.kill()
        return process.wait()

    def _status(self, code: int) -> int:
        asked = self.stopping is not None
        ended_as_asked = code == 0 or (asked and code in (-signal.SIGQUIT, -signal.SIGTERM))
        return EXIT_OK if ended_as_asked else EXIT_FAILED

    def _stamps(self) -> list[object]:
        return [file_stamp(path) for path in self.watched]
