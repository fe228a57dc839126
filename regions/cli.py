"""The ``huren region`` and ``huren demo`` commands (plugged into ``huren`` by entry point)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from gateway.clock import system_clock
from gateway.lifecycle import until_terminated
from regions import REGIONS

DEFAULT_STATE = Path(".huren/regions")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    region = commands.add_parser("region", help="run a simulated regional issuer")
    sub = region.add_subparsers(dest="region_command", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="serve a region's issuer API over HTTP")
    serve.add_argument("name", choices=REGIONS)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument(
        "--state-dir", type=Path, help=f"keys and records (default {DEFAULT_STATE}/NAME)"
    )
    serve.add_argument(
        "--link-key-file",
        type=Path,
        help="the hub's linking key (hex), for regions that carry masked-link identities",
    )
    serve.add_argument("--public-url", help="the base URL travellers' codes point to (Zhejiang)")
    serve.set_defaults(handler=_serve)

    onboard = sub.add_parser(
        "register",
        help="register a running region with a gateway, as its operator (mutual TLS)",
    )
    onboard.add_argument("name", choices=REGIONS)
    onboard.add_argument("--url", required=True, help="the region's service URL")
    onboard.add_argument("--state-dir", type=Path, help=f"default {DEFAULT_STATE}/NAME")
    onboard.add_argument("--gateway", default="127.0.0.1:50052", help="the registry address")
    onboard.add_argument("--pki", type=Path, default=Path(".huren/pki"))
    onboard.add_argument("--as", dest="operator", required=True, help="operator name in --pki")
    onboard.set_defaults(handler=_register)

    demo = commands.add_parser(
        "demo", help="start the regions and a gateway on loopback and run a scenario"
    )
    demo.add_argument("--json", action="store_true", help="print only the verdicts, as JSON")
    demo.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    from regions.common.runner import start_region

    link_key = bytes.fromhex(args.link_key_file.read_text().strip()) if args.link_key_file else None

    async def run() -> None:
        running = await start_region(
            args.name,
            state_dir=args.state_dir or DEFAULT_STATE / args.name,
            clock=system_clock,
            link_key=link_key,
            host=args.host,
            port=args.port,
            public_url=args.public_url,
        )
        spec = running.region.spec
        kid = running.secrets.kid
        print(f"region {spec.name} ({spec.code}) listening on {running.url} kid={kid}", flush=True)
        await until_terminated()
        await running.stop()

    asyncio.run(run())
    return 0


def _register(args: argparse.Namespace) -> int:
    import urllib.request

    from gateway.clients import RegistryClient, TlsCredentials, new_request_id
    from regions.common.onboarding import registration_command

    state_dir = args.state_dir or DEFAULT_STATE / args.name
    url = args.url.rstrip("/")
    with urllib.request.urlopen(f"{url}/api/keys", timeout=10) as response:
        jwks = response.read(1 << 20)
    request_id = new_request_id()
    command = registration_command(args.name, url, state_dir, jwks, request_id)
    credentials = TlsCredentials.from_pki(args.pki, args.operator)
    with RegistryClient(args.gateway, credentials) as client:
        change = client.submit(request_id, command)
    print(
        f"registered {args.name}: {change.audit.detail} "
        f"(trust version {change.trust_version}, audit entry {change.audit.seq})"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from regions.demo import run_demo

    return run_demo(json_output=args.json)
