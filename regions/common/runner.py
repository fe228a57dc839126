"""Starting a region's service on a socket: shared by ``huren region serve``, the demo and tests."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.clock import Clock
from regions import build_region, look_of, spec_of
from regions.common.keys import load_secrets
from regions.common.outbound import Outbound
from regions.common.pages import add_pages
from regions.common.rules import Rules
from regions.common.service import Operators, make_app
from regions.common.spec import Region, RegionContext, Secrets
from regions.common.store import RegionStore
from regions.common.transfers import Transfers


@dataclass
class RunningRegion:
    region: Region
    url: str
    secrets: Secrets
    state_dir: Path
    store: RegionStore
    runner: web.AppRunner

    @property
    def operator_token(self) -> str:
        return (self.state_dir / "operator.token").read_text().strip()

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_region(
    name: str,
    *,
    state_dir: Path,
    clock: Clock,
    link_key: bytes | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    public_url: str | None = None,
    transfers: Transfers | None = None,
    outbound: Outbound | None = None,
) -> RunningRegion:
    """Start region ``name`` on ``host:port`` (0 picks a free port) and return it running."""
    spec = spec_of(name)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)  # an issuer holds personal data: nobody else reads its state
    secrets = load_secrets(spec, state_dir, link_key)
    rules = Rules.load(spec)
    store = RegionStore(state_dir / "region.db")
    operators = Operators.load_or_create(state_dir)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    url = public_url or f"http://{host}:{bound}"
    region = build_region(name, RegionContext(store, url, state_dir))
    app = make_app(
        region, rules, secrets, store, clock, operators, look_of(name), transfers, outbound
    )
    add_pages(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return RunningRegion(region, f"http://{host}:{bound}", secrets, state_dir, store, runner)
