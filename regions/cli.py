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


def _demo(args: argparse.Namespace) -> int:
    from regions.demo import run_demo

    return run_demo(json_output=args.json)
