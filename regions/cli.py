"""The ``huren region`` and ``huren demo`` commands (plugged into ``huren`` by entry point)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web

from gateway.clock import system_clock
from gateway.lifecycle import until_terminated
from regions import REGIONS, load_region
from regions.common.keys import load_or_create
from regions.common.service import make_app

DEFAULT_STATE = Path(".huren/regions")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    region = commands.add_parser("region", help="run a simulated regional issuer")
    sub = region.add_subparsers(dest="region_command", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="serve a region's issuer API over HTTP")
    serve.add_argument("name", choices=REGIONS)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument(
        "--state-dir", type=Path, help=f"keys and data (default {DEFAULT_STATE}/NAME)"
    )
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo", help="start the regions and a gateway on loopback and run a scenario"
    )
    demo.add_argument("--json", action="store_true", help="print only the verdicts, as JSON")
    demo.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    region = load_region(args.name)
    state_dir = args.state_dir or DEFAULT_STATE / region.spec.name
    signing = load_or_create(state_dir, region.spec.name, region.spec.algorithm)
    app = make_app(region, signing, system_clock)

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(
            f"region {region.spec.name} ({region.spec.code}) listening on http://{host}:{port}"
            f" kid={signing.kid}",
            flush=True,
        )
        await until_terminated()
        await runner.cleanup()

    asyncio.run(run())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from regions.demo import run_demo

    return run_demo(json_output=args.json)
