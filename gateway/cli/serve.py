"""``huren serve``, ``huren verify`` and ``huren health``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli import workers
from gateway.cli.common import (
    DEFAULT_GATEWAY,
    DEFAULT_PKI,
    DEFAULT_REGISTRY,
    DEFAULT_STATE,
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    Subparsers,
    add_tls_options,
    code_lines,
    local_actor,
    read_codes,
    tls_credentials,
)
from gateway.clients import GatewayClient, TlsCredentials
from gateway.clock import system_clock
from gateway.errors import CallFailed, HurenError, RequestInvalid, StorageUnavailable
from gateway.hub import initialise
from gateway.lifecycle import TLS_CHECK_SECONDS, until_terminated
from gateway.limits import Limits
from gateway.metrics import NO_OBSERVER
from gateway.model import Colour, Status, Verdict
from gateway.registry.registrar import RegistrarLimits
from gateway.replica_secrets import MAX_AGE, MAX_MAX_AGE, MIN_MAX_AGE
from gateway.report import verdict_json, verdict_line
from gateway.storage.files import StateFiles
from gateway.tomltable import format_duration, parse_duration
from gateway.trustlist import MAX_FRESH_FOR, MIN_FRESH_FOR

NEVER_FRESH = datetime(1970, 1, 1, tzinfo=UTC)
"""A replica's freshness before its first verified trust list: every code is ERR_TRUST_STALE."""

if TYPE_CHECKING:
    from gateway.server.calls import WatchCalls
    from gateway.server.certificates import (
        FollowedFiles,
        HubCertificates,
        ServerCertificates,
        StartReads,
    )
    from gateway.server.metrics import PrometheusObserver
    from gateway.server.probe import HealthPort


def register(commands: Subparsers) -> None:
    p = commands.add_parser("serve", help="run the gateway (gRPC)")
    p.add_argument("--listen", default=DEFAULT_GATEWAY, help="verification address (port 0 picks)")
    p.add_argument(
        "--registry-listen",
        default=DEFAULT_REGISTRY,
        help="registry address for operators (mutual TLS)",
    )
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="registry and secrets")
    p.add_argument(
        "--tls-dir",
        type=Path,
        default=DEFAULT_PKI,
        help="ca.pem, gateway.pem, gateway.key (as `huren pki init` makes them)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext on --listen only, and every registry change refused (a replica "
        "dials its hub in plaintext too, unless --hub-ca is given)",
    )
    defaults = Limits()
    p.add_argument(
        "--max-batch",
        type=int,
        default=defaults.max_batch,
        help="codes per VerifyBatch or Recognise",
    )
    p.add_argument(
        "--max-code-chars",
        type=int,
        default=defaults.max_code_chars,
        help="characters of one code (longer: ERR_TOO_LARGE)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=defaults.max_message_bytes,
        help="bytes of one gRPC message (larger: RESOURCE_EXHAUSTED)",
    )
    p.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=defaults.max_concurrent_rpcs,
        help="unary calls in flight at once; more are refused RESOURCE_EXHAUSTED at once "
        "(default %(default)s)",
    )
    p.add_argument(
        "--max-concurrent-streams",
        type=int,
        default=defaults.max_concurrent_streams,
        help="streams (VerifyStream, WatchTrustList) open at once, counted apart; more are "
        "refused RESOURCE_EXHAUSTED (default %(default)s)",
    )
    p.add_argument(
        "--max-pending-calls",
        type=int,
        default=defaults.max_pending_calls,
        help="calls waiting in gRPC's core for the server to take them up; past this, new calls "
        "are ended at once (CANCELLED) rather than queued (default %(default)s)",
    )
    p.add_argument(
        "--leeway-seconds",
        type=int,
        default=int(defaults.leeway.total_seconds()),
        help="clock skew tolerated for codes issued in the future",
    )
    p.add_argument(
        "--stale-grace-seconds",
        type=int,
        default=int(defaults.stale_grace.total_seconds()),
        help="how long codes are judged on the last good trust after the registry stopped "
        "verifying; then every code is ERR_TRUST_STALE (default %(default)s)",
    )
    budget = RegistrarLimits()
    p.add_argument(
        "--denied-burst",
        type=int,
        default=budget.burst,
        help="denied or refused changes an operator may make in a row before the next ones are "
        "answered RESOURCE_EXHAUSTED and only counted (default %(default)s)",
    )
    p.add_argument(
        "--denied-refill-seconds",
        type=float,
        default=budget.refill_seconds,
        help="one more denied or refused change allowed every so many seconds "
        "(default %(default)s)",
    )
    p.add_argument(
        "--web-listen",
        metavar="HOST:PORT",
        help="also serve the checkpoint page and the JSON API there (docs/web.md), as a client "
        "of this gateway (trusting its certificate through the --tls-dir CA)",
    )
    p.add_argument(
        "--tls-check-seconds",
        type=float,
        default=TLS_CHECK_SECONDS,
        help="how often the TLS files in --tls-dir (and a replica's --hub-ca, --replica-cert and "
        "--replica-key) are looked at, and re-read when they changed (SIGHUP: at once; 0: only "
        "on SIGHUP) (default %(default)s)",
    )
    p.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (plain HTTP, no personal "
        "data: docs/scaling.md, Metrics)",
    )
    p.add_argument(
        "--health-listen",
        metavar="HOST:PORT",
        help="also serve the standard gRPC health service alone there, in plaintext, for "
        "probes that cannot speak TLS (Kubernetes' gRPC probes); nothing else is served on it",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per call (method, gRPC status, duration; never the request)",
    )
    p.add_argument(
        "--trust-fresh-for",
        type=_duration,
        default="15m",
        metavar="DURATION",
        help="how long each signed trust list may be judged on by replicas (its fresh_until); "
        "renewed by heartbeat every third of it: '30s', '15m', '1h' (default %(default)s)",
    )
    replica = p.add_argument_group(
        "replica", "a verification-only gateway fed by a hub's signed trust list (docs/scaling.md)"
    )
    replica.add_argument(
        "--replica-of",
        metavar="HUB",
        help="serve as a replica of the hub at HUB (its verification address host:port); "
        "--state-dir then holds the replica's last good trust list (and, without "
        "--replica-cert, copies of the hub's subject.key and link.key), never a registry",
    )
    replica.add_argument(
        "--trust-list-key",
        type=Path,
        help="the hub's trustlist-key.jwk, pinned: every trust list must verify with it",
    )
    replica.add_argument(
        "--workers",
        type=workers.count,
        default=workers.AUTO,
        metavar="N",
        help="replica processes serving --listen together (SO_REUSEPORT), supervised: "
        "'auto' is one per usable core; a hub is always one process (docs/scaling.md)",
    )
    replica.add_argument(
        "--hub-ca",
        type=Path,
        help="the CA certificate that signed the hub's (default: ca.pem in --tls-dir); given, "
        "the hub is dialled over TLS even with --insecure (plaintext behind a front on "
        "loopback)",
    )
    replica.add_argument(
        "--replica-cert",
        type=Path,
        metavar="FILE",
        help="this replica's certificate (pinned at the hub with `huren registry replica add`): "
        "with it the replica fetches the replica secrets (identity keys, pseudonym keys, online "
        "credentials) from --hub-registry over mutual TLS and keeps them in memory only",
    )
    replica.add_argument(
        "--replica-key", type=Path, metavar="FILE", help="the private key of --replica-cert"
    )
    replica.add_argument(
        "--hub-registry",
        metavar="HOST:PORT",
        help="the hub's mutual-TLS registry address, where --replica-cert fetches the replica "
        "secrets",
    )
    replica.add_argument(
        "--replica-secrets-max-age",
        type=_secrets_max_age,
        default=format_duration(MAX_AGE),
        metavar="DURATION",
        help="how long the replica secrets are kept without an answered fetch from the hub; "
        "then they are dropped (every code ERR_SECRET_UNAVAILABLE) until the hub answers again: "
        "'3m' to '24h' (default %(default)s)",
    )
    p.add_argument(
        "--init",
        action="store_true",
        help="create the state directory and an empty registry if there is none",
    )
    p.add_argument(
        "--accept-rollback",
        action="store_true",
        help="serve a registry older than its state record (a restored backup), audited",
    )
    p.set_defaults(handler=_serve)

    v = commands.add_parser(
        "verify",
        help="verify codes through a gateway (arguments, or one per line on stdin, each "
        "answered as soon as its line is complete)",
    )
    v.add_argument(
        "codes", nargs="*", metavar="CODE", help="codes to verify, each quoted (default: stdin)"
    )
    v.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway address host:port")
    v.add_argument("--at", default="", metavar="REGION", help="destination region code")
    v.add_argument("--json", action="store_true", help="one JSON object per line per code")
    v.add_argument(
        "--require",
        choices=sorted(REQUIREMENTS),
        default="valid",
        help="what exit status 0 needs of every code: 'valid' (verified, any colour) or "
        "'green' (verified and GREEN: the one a gate script should use) (default %(default)s)",
    )
    v.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for each answer (default %(default)s)",
    )
    add_tls_options(v, mutual=False)
    v.set_defaults(handler=_verify)

    h = commands.add_parser("health", help="exit 0 if the gateway's health check is SERVING")
    h.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway address host:port")
    h.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    h.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep asking for up to this long until it is SERVING (a gateway just started)",
    )
    add_tls_options(h, mutual=False)
    h.add_argument(
        "--name-from-certificate",
        dest="server_certificate",
        type=Path,
        metavar="FILE",
        help="check for the name this certificate carries (its first DNS name or address): "
        "the gateway's own gateway.pem, for a check from inside its container whatever the "
        "PKI (--server-name wins)",
    )
    h.set_defaults(handler=_health)


def _duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value is None or not MIN_FRESH_FOR <= value <= MAX_FRESH_FOR:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a duration from {MIN_FRESH_FOR} to {MAX_FRESH_FOR} such as '30s', "
            "'15m' or '1h'"
        )
    return value


def _secrets_max_age(text: str) -> timedelta:
    value = parse_duration(text)
    if value is None or not MIN_MAX_AGE <= value <= MAX_MAX_AGE:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a duration from {format_duration(MIN_MAX_AGE)} to "
            f"{format_duration(MAX_MAX_AGE)} such as '15m' or '1h'"
        )
    return value


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_batch=args.max_batch,
        max_code_chars=args.max_code_chars,
        max_message_bytes=args.max_message_bytes,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        max_concurrent_streams=args.max_concurrent_streams,
        max_pending_calls=args.max_pending_calls,
        leeway=timedelta(seconds=args.leeway_seconds),
        stale_grace=timedelta(seconds=args.stale_grace_seconds),
    )


def _serve(args: argparse.Namespace) -> int:
    from gateway.server.app import GatewayServer, open_gateway

    if args.replica_of:
        return _serve_replica(args)
    if (
        args.trust_list_key
        or args.hub_ca
        or args.replica_cert
        or args.replica_key
        or args.hub_registry
    ):
        raise RequestInvalid(
            "--trust-list-key, --hub-ca, --replica-cert, --replica-key and --hub-registry go "
            "with --replica-of"
        )
    if args.workers not in (None, 1):
        raise RequestInvalid(
            f"--workers {args.workers}: a hub is one process (its registry has one writer); "
            "serve checkpoints from replicas (--replica-of), which take --workers "
            "(docs/scaling.md)"
        )

    limits = _limits(args)
    certificates = _server_certificates(args)
    if args.init and not StateFiles(args.state_dir).database.exists():
        initialise(args.state_dir, local_actor())
    metrics = _metrics("hub") if args.metrics_listen else None
    # Loading and verifying the registry makes an object or more per key, all kept: the cyclic
    # garbage collector would scan them again and again (a third of a snapshot's build at
    # 100,000 keys). It is paused until the gateway serves, and what was loaded is then frozen
    # out of its reach (gc.freeze), which also spares later collections the whole trust state.
    gc.disable()
    gateway = open_gateway(
        args.state_dir,
        limits,
        system_clock,
        registrar=RegistrarLimits(args.denied_burst, args.denied_refill_seconds),
        accept_rollback=local_actor() if args.accept_rollback else None,
        trust_fresh_for=args.trust_fresh_for,
        observer=metrics or NO_OBSERVER,
    )

    async def run() -> None:
        server = GatewayServer(
            gateway,
            args.listen,
            registry_listen=None if args.insecure else args.registry_listen,
            certificates=certificates,
            observer=metrics or NO_OBSERVER,
            calls=_calls(args, metrics),
        )
        port = await server.start()
        gc.freeze()
        gc.enable()
        trust = gateway.service.trust.current
        host = args.listen.rsplit(":", 1)[0]
        registry = (
            "registry changes disabled (--insecure)"
            if certificates is None
            else f"registry on {args.registry_listen.rsplit(':', 1)[0]}:{server.registry_port}"
        )
        print(
            f"huren gateway listening on {host}:{port} "
            f"(trust version {trust.version}, {len(trust.issuers)} issuers; {registry})",
            flush=True,
        )
        web = (
            await _start_web(args.web_listen, host, port, certificates) if args.web_listen else None
        )
        probe = await _start_health(server.health, args.health_listen)
        if metrics is not None:
            online = gateway.service.online
            metrics.watch(gateway.service, getattr(online, "breakers", None))
            _serve_metrics(metrics, args.metrics_listen)
        _reload_on_hangup(server.certificates)
        try:
            await until_terminated()
        finally:
            if metrics is not None:
                metrics.close()
            if web is not None:
                await web()
            if probe is not None:
                await probe.stop()
            await server.stop()

    try:
        asyncio.run(run())
    finally:
        gateway.hub.close()
    return EXIT_OK


def _serve_replica(args: argparse.Namespace) -> int:
    """``huren serve --replica-of HUB``: see gateway.server.replica and docs/scaling.md."""
    from gateway.cli.local import read_trust_list_key
    from gateway.clients.hubfeed import HubFeed
    from gateway.clients.hubsecrets import HubSecrets
    from gateway.clients.online import OnlineClient
    from gateway.registry import TrustHolder, TrustSnapshot
    from gateway.server.certificates import StartReads
    from gateway.server.replica import ReplicaServer
    from gateway.service import VerificationService

    if args.trust_list_key is None:
        raise RequestInvalid("a replica needs --trust-list-key: the hub's trustlist-key.jwk")
    if args.init or args.accept_rollback:
        raise RequestInvalid("--init and --accept-rollback are for a hub, not a replica")
    key = read_trust_list_key(args.trust_list_key)
    start = StartReads()  # each TLS file read once, what is checked here is what is served
    certificates = _server_certificates(args, start)
    hub = _hub_certificates(args, certificates, start)
    files = StateFiles(args.state_dir)
    files.check_private()
    secrets = hub is not None and hub.mutual
    identities = None
    if not secrets:
        try:
            identities = files.identities()
        except StorageUnavailable as e:
            raise StorageUnavailable(
                "a replica needs the hub's identity secrets: give it a replica certificate "
                "(--replica-cert, --replica-key, --hub-registry), or copy subject.key and "
                f"link.key from the hub's state directory into {args.state_dir} (mode 0600) ({e})"
            ) from e
    elif files.subject_key.exists() or files.link_key.exists():
        print(
            f"huren: warning: {files.subject_key.name} and {files.link_key.name} in "
            f"{args.state_dir} are not used (the hub hands them with --replica-cert): remove them",
            file=sys.stderr,
            flush=True,
        )
    # What could be checked is checked once, here; the workers check it again.
    count = workers.usable_cores() if args.workers is None else args.workers
    if count > 1:
        return workers.supervise(
            args.command_line,
            args.listen,
            args.metrics_listen,
            bool(args.web_listen),
            count,
            health=bool(args.health_listen),
        )
    slot = workers.as_worker()  # None unless a supervisor started this process
    holder = TrustHolder(TrustSnapshot.empty(), fresh_until=NEVER_FRESH)
    metrics = _metrics("replica") if args.metrics_listen else None
    service = VerificationService(
        holder,
        _limits(args),
        identities,
        system_clock,
        OnlineClient(observer=metrics or NO_OBSERVER) if secrets else None,
    )

    async def run() -> None:
        server = ReplicaServer(
            service,
            key,
            args.state_dir,
            HubFeed(args.replica_of, hub.credentials if hub is not None else None),
            args.listen,
            clock=system_clock,
            certificates=certificates,
            observer=metrics or NO_OBSERVER,
            calls=_calls(args, metrics),
            secrets=HubSecrets(args.hub_registry, hub.credentials) if hub and secrets else None,
            share_port=slot is not None,
            hub_certificates=hub,
            secrets_max_age=args.replica_secrets_max_age,
        )
        port = await server.start()
        held = (
            f"trust version {server.held.version} from disk"
            if server.held is not None
            else "no trust list yet"
        )
        host = args.listen.rsplit(":", 1)[0]
        print(
            f"huren replica listening on {host}:{port} (replica of {args.replica_of}; {held})",
            flush=True,
        )
        web = (
            await _start_web(args.web_listen, host, port, certificates) if args.web_listen else None
        )
        probe = await _start_health(server.health, args.health_listen)
        if metrics is not None:
            metrics.watch(service, getattr(service.online, "breakers", None))
            _serve_metrics(metrics, args.metrics_listen)
        _reload_on_hangup(server.certificates, hub)
        try:
            await until_terminated()
        finally:
            if metrics is not None:
                metrics.close()
            if web is not None:
                await web()
            if probe is not None:
                await probe.stop()
            await server.stop()

    asyncio.run(run())
    return EXIT_OK


def _server_certificates(
    args: argparse.Namespace, start: StartReads | None = None
) -> ServerCertificates | None:
    """The server's TLS files (``--tls-dir``), read now, so that a missing or unusable file
    fails the start with a clear message rather than at bind time, and followed from then on
    (None with ``--insecure``).

    Raises:
        TlsFilesInvalid: naming a file that is missing or cannot be used.
    """
    if args.insecure:
        return None
    from gateway.server.app import TlsFiles
    from gateway.server.certificates import ServerCertificates

    return ServerCertificates(TlsFiles(args.tls_dir), args.tls_check_seconds, start=start)


def _hub_certificates(
    args: argparse.Namespace, server: ServerCertificates | None, start: StartReads
) -> HubCertificates | None:
    """What a replica dials its hub with, re-read like the server's TLS files (None with
    ``--insecure`` and no ``--hub-ca``: plaintext): the hub's CA (by default the ``server``'s
    CA file, as ``start`` read it) and, with ``--replica-cert``, the replica's certificate and
    key, with which it fetches the replica secrets. A replica serving plaintext on loopback
    behind ``huren front`` still dials its hub over TLS when ``--hub-ca`` is given.

    Raises:
        RequestInvalid: for an incomplete set of options.
        TlsFilesInvalid: for files that cannot be read or do not belong together.
    """
    given = (args.replica_cert, args.replica_key, args.hub_registry)
    if any(given) and not all(given):
        raise RequestInvalid("--replica-cert, --replica-key and --hub-registry go together")
    ca = args.hub_ca or (server.tls.ca if server is not None else None)
    if ca is None:
        if any(given):
            raise RequestInvalid(
                "the replica secrets travel over mutual TLS only: not --insecure without --hub-ca"
            )
        return None
    from gateway.server.certificates import HubCertificates, HubTlsFiles

    files = HubTlsFiles(ca, args.replica_cert, args.replica_key)
    return HubCertificates(files, args.tls_check_seconds, start=start)


async def _start_health(servicer: object, listen: str | None) -> HealthPort | None:
    """The plaintext health port (``--health-listen``), if asked for."""
    if not listen:
        return None
    from gateway.server.probe import HealthPort

    probe = HealthPort(servicer, listen)
    port = await probe.start()
    print(f"huren health (plaintext, health only) on {listen.rsplit(':', 1)[0]}:{port}", flush=True)
    return probe


def _reload_on_hangup(*followed: FollowedFiles | None) -> None:
    """SIGHUP: read the TLS files again now (see gateway.server.certificates)."""
    watched = [files for files in followed if files is not None]
    if watched:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGHUP, lambda: [files.check(force=True) for files in watched]
        )


def _metrics(role: str) -> PrometheusObserver:
    from gateway.server.metrics import PrometheusObserver

    return PrometheusObserver(system_clock, role)


def _serve_metrics(metrics: PrometheusObserver, listen: str) -> None:
    port = metrics.serve(listen)
    host = listen.rsplit(":", 1)[0]
    print(f"huren metrics on http://{host}:{port}/metrics", flush=True)


def _calls(args: argparse.Namespace, metrics: PrometheusObserver | None) -> WatchCalls | None:
    """What watches the calls: nothing (and nothing paid per call) without metrics or the
    access log."""
    if metrics is None and not args.access_log:
        return None
    from gateway.server.calls import WatchCalls

    return WatchCalls(metrics, access=args.access_log)


REQUIREMENTS: dict[str, Callable[[Verdict], bool]] = {
    "valid": lambda v: v.status is Status.VALID,
    "green": lambda v: v.status is Status.VALID and v.colour is Colour.GREEN,
}
"""``huren verify --require``: what a verdict must be for the command to exit 0."""


async def _start_web(
    listen: str, host: str, port: int, certificates: ServerCertificates | None
) -> Callable[[], Awaitable[None]]:
    """The web edge beside the server, a client of its verification port trusting the CA the
    server holds (``ca.pem``, as read at start); what stops it."""
    from gateway.clients.aio import AsyncGatewayClient
    from gateway.web import checkpoint_app, start

    target = f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    credentials = None if certificates is None else TlsCredentials(certificates.ca)
    client = AsyncGatewayClient(target, credentials)
    app = checkpoint_app(client)

    async def close_client(_: object) -> None:
        await client.close()

    app.on_cleanup.append(close_client)
    runner, url = await start(app, listen)
    print(f"huren web listening on {url} (checkpoint: {url}/checkpoint?at=REGION)", flush=True)
    return runner.cleanup


def _verify(args: argparse.Namespace) -> int:
    required = REQUIREMENTS[args.require]
    with GatewayClient(args.gateway, tls_credentials(args), timeout=args.timeout) as client:
        if not args.codes:
            return _verify_lines(client, args, required)
        verdicts = client.verify_many(read_codes(list(args.codes)), args.at)
    for verdict in verdicts:
        _print_verdict(verdict, args.json)
    return EXIT_OK if all(required(v) for v in verdicts) else EXIT_FAILED


def _verify_lines(
    client: GatewayClient, args: argparse.Namespace, required: Callable[[Verdict], bool]
) -> int:
    """Standard input over one ``VerifyStream``: each line is answered when it is complete
    (a hand-held scanner types a code and Enter). A line that is not a code, or that the
    gateway did not answer, is reported (on stderr, or as a JSON ``error`` object on stdout
    with ``--json`` so that every line has its answer) and the next line goes on; the exit
    status is then 2."""
    status, seen = EXIT_OK, False
    with client.stream(args.at) as stream:
        for number, line in code_lines(sys.stdin.buffer):
            seen = True
            if isinstance(line, RequestInvalid):
                status = EXIT_ERROR
                _print_error(number, line, str(line), args.json)
                continue
            try:
                verdict = stream.verify(line)
            except HurenError as e:
                status = EXIT_ERROR
                _print_error(number, e, f"line {number}: {e}", args.json)
                continue
            _print_verdict(verdict, args.json)
            if not required(verdict) and status == EXIT_OK:
                status = EXIT_FAILED
    if not seen:
        raise RequestInvalid("no codes given (as arguments, or one per line on standard input)")
    return status


def _print_verdict(verdict: Verdict, as_json: bool) -> None:
    line = (
        json.dumps(verdict_json(verdict), ensure_ascii=False) if as_json else verdict_line(verdict)
    )
    print(line, flush=True)


def _print_error(number: int, error: HurenError, message: str, as_json: bool) -> None:
    if as_json:
        reason = getattr(error, "reason", None)
        body = {"reason": reason.value if reason else type(error).__name__, "message": message}
        print(json.dumps({"line": number, "error": body}, ensure_ascii=False), flush=True)
    else:
        print(f"huren: {message}", file=sys.stderr, flush=True)


def _health(args: argparse.Namespace) -> int:
    credentials = tls_credentials(args)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            with GatewayClient(args.gateway, credentials, timeout=args.timeout) as client:
                serving = client.serving()
        except CallFailed:
            if time.monotonic() >= deadline:
                raise
            serving = False
        if serving or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    print("SERVING" if serving else "NOT_SERVING")
    return EXIT_OK if serving else EXIT_FAILED
