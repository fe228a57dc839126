"""``huren front``: the nginx configuration that refuses calls past a bound in front of a gateway
(:mod:`gateway.server.front`), printed, or run.

Printed (the default), it goes to an nginx of the operator's (a sidecar container, docs/front.md).
With ``--run`` this command runs it under the machine's nginx itself:

1. reserves ``--listen`` with a socket bound with ``SO_REUSEPORT`` and never listening (so port
   0 picks a free port, and no other program takes it); nginx listens there with ``reuseport``;
2. writes the configuration into ``--work-dir`` (default: a temporary folder, removed at the
   end) and starts ``nginx -p WORK_DIR``;
3. prints ``huren front listening on HOST:PORT`` once nginx accepts connections;
4. on SIGTERM or SIGINT asks nginx to finish the calls in flight (its SIGQUIT), and ends it
   after ``STOP_SECONDS``; SIGHUP is passed on (nginx reads its certificates again). The exit
   status is nginx's.
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
from collections.abc import Iterator
from pathlib import Path

from gateway.cli.common import DEFAULT_PKI, EXIT_ERROR, EXIT_FAILED, EXIT_OK, Subparsers
from gateway.errors import RequestInvalid
from gateway.limits import Limits
from gateway.server.front import (
    DEFAULT_STREAM_IDLE_SECONDS,
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
        reserved = stack.enter_context(_reserve(settings.listen))
        port = reserved.getsockname()[1]
        listen = Address(settings.listen.host, port)
        running = dataclasses.replace(settings, listen=listen, reuseport=True)
        (work / "nginx.conf").write_text(render(running), encoding="utf-8")
        return _run(nginx, work, running)
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


@contextlib.contextmanager
def _reserve(address: Address) -> Iterator[socket.socket]:
    """A socket bound to ``address`` with SO_REUSEPORT, never listening (see the docstring)."""
    host = address.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = socket.socket(family, socket.SOCK_STREAM)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            held.bind((host, address.port))
        except OSError as error:
            raise RequestInvalid(f"cannot listen on {address}: {error.strerror}") from None
        yield held
    finally:
        held.close()


def _run(nginx: str, work: Path, settings: FrontSettings) -> int:
    stopping: list[float] = []
    started: list[subprocess.Popen[bytes]] = []

    def tell(signum: int) -> None:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    def stop(signum: int, frame: object) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            tell(signal.SIGQUIT)

    # Before nginx starts, so that a SIGTERM at any moment reaches it (or stops it starting).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: tell(signal.SIGHUP))
    process = subprocess.Popen(
        [nginx, "-p", f"{work}/", "-c", "nginx.conf", "-e", "stderr"],
        preexec_fn=_end_with_parent if sys.platform == "linux" else None,
    )
    started.append(process)
    if stopping:
        tell(signal.SIGQUIT)
    if not _accepting(settings.listen, process, stopping):
        asked = bool(stopping)  # SIGTERM during start-up: a stop, not a failure
        stop(signal.SIGTERM, None)
        try:
            code = process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if asked:
            print("huren front: stopped during start-up", file=sys.stderr)
            return EXIT_OK if code == 0 else EXIT_FAILED
        print("huren front: nginx did not start (its errors are above)", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"huren front listening on {settings.listen} (nginx pid {process.pid}; upstream "
        f"{settings.upstream}; at most {settings.max_calls} calls and {settings.max_streams} "
        "streams in flight)",
        flush=True,
    )
    while True:
        try:
            code = process.wait(1.0)
            break
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > STOP_SECONDS:
                process.terminate()  # nginx's fast shutdown: streams still open are cut
    return EXIT_OK if code == 0 else EXIT_FAILED


def _end_with_parent() -> None:
    """In nginx's process before it runs: nginx ends (its fast stop) when this command does,
    even killed outright, so no nginx outlives it holding the port."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _accepting(address: Address, process: subprocess.Popen[bytes], stopping: list[float]) -> bool:
    """Whether nginx accepts connections at ``address`` within ``START_SECONDS`` (False at
    once when it ended or a stop was asked for)."""
    host = address.host.strip("[]")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    until = time.monotonic() + START_SECONDS
    while time.monotonic() < until and process.poll() is None and not stopping:
        with contextlib.suppress(OSError), socket.create_connection((host, address.port), 0.5):
            return True
        time.sleep(0.05)
    return False
