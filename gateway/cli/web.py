"""``huren web``: the checkpoint's pages and JSON API (:mod:`gateway.web`), a client of a
gateway's Verifier service."""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli.common import (
    DEFAULT_GATEWAY,
    EXIT_OK,
    Subparsers,
    add_tls_options,
    tls_credentials,
)
from gateway.clients.aio import AsyncGatewayClient
from gateway.lifecycle import until_terminated
from gateway.web import checkpoint_app, start

DEFAULT_WEB = "127.0.0.1:8080"


def register(commands: Subparsers) -> None:
    p = commands.add_parser(
        "web",
        help="serve the checkpoint page and the JSON API (a client of a gateway)",
        description="Serve GET /checkpoint?at=REGION and POST /api/verify, /api/recognise and "
        "/api/decode (docs/web.md), asking the gateway at --gateway for every decision.",
    )
    p.add_argument("--listen", default=DEFAULT_WEB, help="HOST:PORT to serve on (port 0: any)")
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway address host:port")
    add_tls_options(p, mutual=False)
    p.set_defaults(handler=_web)


def _web(args: argparse.Namespace) -> int:
    credentials = tls_credentials(args)

    async def run() -> None:
        async with AsyncGatewayClient(args.gateway, credentials) as client:
            runner, url = await start(checkpoint_app(client), args.listen)
            print(
                f"huren web listening on {url} (checkpoint: {url}/checkpoint?at=REGION)", flush=True
            )
            try:
                await until_terminated()
            finally:
                await runner.cleanup()

    asyncio.run(run())
    return EXIT_OK
