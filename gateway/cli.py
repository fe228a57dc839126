"""The ``huren`` command line.

Gateway commands live here; other packages add theirs through the ``huren.commands`` entry-point
group (``regions`` adds ``region`` and ``demo``), so the gateway never imports them.

Exit status: 0 on success (for ``verify``: every code VALID), 1 when a verified code was not
VALID, 2 for usage errors or an unreachable gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path

import grpc

from gateway import crypto
from gateway.client import GatewayClient
from gateway.clock import system_clock
from gateway.errors import ConfigurationInvalid, HurenError
from gateway.keyfiles import MAX_KEY_FILE_BYTES, read_keys
from gateway.lifecycle import until_terminated
from gateway.limits import Limits
from gateway.model import IssuerId, ProfileId, Reason, RegionCode, Status
from gateway.profiles import load_profile
from gateway.registry import Issuer, IssuerKey, OnlineEndpoint
from gateway.report import verdict_json, verdict_line
from gateway.storage.sqlite import ProfileSource, RegistryStore

DEFAULT_GATEWAY = "127.0.0.1:50051"
DEFAULT_STATE = Path(".huren/gateway")
EXIT_OK, EXIT_NOT_VALID, EXIT_ERROR = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except HurenError as e:
        print(f"huren: {e}", file=sys.stderr)
        return EXIT_ERROR
    except grpc.RpcError as e:
        print(f"huren: gateway call failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huren", description="互认 huren: cross-region health-code gateway"
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_verify(commands)
    _add_health(commands)
    _add_registry(commands)
    _add_profile(commands)
    for entry in sorted(entry_points(group="huren.commands"), key=lambda e: e.name):
        entry.load()(commands)
    return parser


# ---------------------------------------------------------------------------- serve


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("serve", help="run the gateway (gRPC)")
    p.add_argument("--listen", default=DEFAULT_GATEWAY, help="host:port (port 0 picks one)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="registry and secrets")
    defaults = Limits()
    p.add_argument("--max-batch", type=int, default=defaults.max_batch)
    p.add_argument("--max-code-chars", type=int, default=defaults.max_code_chars)
    p.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    p.add_argument("--max-concurrent-rpcs", type=int, default=defaults.max_concurrent_rpcs)
    p.add_argument("--leeway-seconds", type=int, default=int(defaults.leeway.total_seconds()))
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from gateway.server.app import GatewayServer, StateFiles, open_service

    limits = Limits(
        max_batch=args.max_batch,
        max_code_chars=args.max_code_chars,
        max_message_bytes=args.max_message_bytes,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        leeway=timedelta(seconds=args.leeway_seconds),
    )
    service, store = open_service(StateFiles(args.state_dir), limits, system_clock)

    async def run() -> None:
        server = GatewayServer(service, args.listen)
        port = await server.start()
        trust = service.trust.current
        host = args.listen.rsplit(":", 1)[0]
        print(
            f"huren gateway listening on {host}:{port} "
            f"(trust version {trust.version}, {len(trust.issuers)} issuers)",
            flush=True,
        )
        await until_terminated()
        await server.stop()

    try:
        asyncio.run(run())
    finally:
        store.close()
    return EXIT_OK


# ---------------------------------------------------------------------------- verify


def _add_verify(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "verify", help="verify codes through a gateway (arguments, or one per line on stdin)"
    )
    p.add_argument("codes", nargs="*", metavar="CODE")
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway address host:port")
    p.add_argument("--at", default="", metavar="REGION", help="destination region code")
    p.add_argument("--json", action="store_true", help="one JSON object per line per code")
    p.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    codes: list[str] = list(args.codes)
    if not codes:
        # Line terminators are not part of a code; blank lines are not codes.
        codes = [line for line in sys.stdin.read().splitlines() if line]
    if not codes:
        print("huren verify: no codes given", file=sys.stderr)
        return EXIT_ERROR
    with GatewayClient(args.gateway) as client:
        verdicts = client.verify_many(codes, args.at)
    for verdict in verdicts:
        if args.json:
            print(json.dumps(verdict_json(verdict), ensure_ascii=False))
        else:
            print(verdict_line(verdict))
    return EXIT_OK if all(v.status is Status.VALID for v in verdicts) else EXIT_NOT_VALID


def _add_health(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("health", help="exit 0 if the gateway's health check is SERVING")
    p.add_argument("--gateway", default=DEFAULT_GATEWAY)
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(handler=_health)


def _health(args: argparse.Namespace) -> int:
    with GatewayClient(args.gateway, timeout=args.timeout) as client:
        serving = client.serving()
    print("SERVING" if serving else "NOT_SERVING")
    return EXIT_OK if serving else EXIT_NOT_VALID


# ---------------------------------------------------------------------------- profile


def _add_profile(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("profile", help="work with translation profiles")
    sub = p.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a profile file and summarise it")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_profile_check)


def _profile_check(args: argparse.Namespace) -> int:
    profile = load_profile(args.file.read_text("utf-8"))
    envelope, validity = profile.envelope, profile.validity
    print(f"profile {profile.label}: valid")
    print(
        f"  envelope  {envelope.format.value} / {envelope.text.value} / {envelope.payload.value}"
        + (f", codes start with {envelope.prefix!r}" if envelope.prefix else "")
    )
    print(f"  issuer    {profile.issuer.text if profile.issuer else '(named by key id only)'}")
    expiry = [f"field {profile.expires_at.path.text}"] if profile.expires_at else []
    if validity.duration:
        expiry.append(f"issue + {_span(validity.duration)}")
    if validity.end_of_day:
        expiry.append(f"end of day in {validity.end_of_day.key}")
    print(f"  expiry    earliest of: {', '.join(expiry)}")
    if validity.max:
        print(f"  at most   {_span(validity.max)} of validity")
    for rule in validity.degrade:
        print(f"  degrade   {rule.source.value} -> {rule.target.value} after {_span(rule.after)}")
    print(f"  identity  {profile.identity.scheme.value}")
    for local, colour in profile.states.items():
        print(f"  state     {local!r} -> {colour.value}")
    print("  anything else -> refused (ERR_COLOUR_UNKNOWN)")
    return EXIT_OK


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---------------------------------------------------------------------------- registry


def _add_registry(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("registry", help="local registry administration (offline)")
    sub = p.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    add = sub.add_parser(
        "add-issuer",
        help="register an issuer, its profile and keys in a gateway's registry file",
    )
    add.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    add.add_argument("--id", required=True, help="issuer id, such as hangzhou")
    add.add_argument("--region", required=True, help="GB/T 2260 region code, such as 330100")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--profile", type=Path, required=True, help="profile TOML file")
    add.add_argument(
        "--keys", required=True, help="JWKS/JWK/PEM/X.509 file, or an http(s) URL of a JWKS"
    )
    add.add_argument("--kid", help="key id for a PEM or X.509 key")
    add.add_argument(
        "--algorithm", choices=[a.value for a in crypto.ADMISSIBLE], help="for RSA keys"
    )
    online = add.add_argument_group("online issuers (profile format 'online')")
    online.add_argument("--online-code-prefix", help="URL the issuer's codes start with")
    online.add_argument("--online-verify-url", help="the issuer's verification API")
    online.add_argument(
        "--online-client", type=Path, help='JSON file {"client_id", "secret"} the issuer issued'
    )
    add.add_argument(
        "--pseudonym-key-file", type=Path, help="the issuer's pseudonym key (hex), if it uses one"
    )
    add.set_defaults(handler=_registry_add_issuer)


def _read_source(source: str) -> bytes:
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


def _online_endpoint(args: argparse.Namespace) -> OnlineEndpoint | None:
    given = (args.online_code_prefix, args.online_verify_url, args.online_client)
    if not any(given):
        return None
    if not all(given):
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER,
            "an online issuer needs --online-code-prefix, --online-verify-url and --online-client",
        )
    try:
        client = json.loads(args.online_client.read_text())
        client_id, secret = str(client["client_id"]), bytes.fromhex(client["secret"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER, "--online-client must hold JSON with client_id and secret (hex)"
        ) from e
    return OnlineEndpoint(args.online_code_prefix, args.online_verify_url, client_id, secret)


def _registry_add_issuer(args: argparse.Namespace) -> int:
    from gateway.server.app import StateFiles

    profile = ProfileSource.parse(args.profile.read_text("utf-8"))
    algorithm = crypto.Algorithm(args.algorithm) if args.algorithm else None
    entries = read_keys(_read_source(args.keys), kid=args.kid, algorithm=algorithm)
    issuer = Issuer(
        id=IssuerId(args.id),
        region=RegionCode(args.region),
        name=args.name,
        profile_id=ProfileId(profile.profile.id),
        profile_version=profile.profile.version,
        online=_online_endpoint(args),
        pseudonym_key=read_hex(args.pseudonym_key_file) if args.pseudonym_key_file else None,
    )
    keys = [IssuerKey(issuer.id, e.kid, e.public_key, e.not_before, e.not_after) for e in entries]
    files = StateFiles(args.state_dir).ensure()
    with contextlib.closing(RegistryStore(files.database)) as store:
        snapshot = store.register_issuer(issuer, profile, keys, at=system_clock())
    print(
        f"registered issuer {issuer.id} ({issuer.region}) with profile "
        f"{profile.profile.label} and {len(keys)} key(s); trust version {snapshot.version}"
    )
    return EXIT_OK
