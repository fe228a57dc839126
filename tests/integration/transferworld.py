"""转码 on loopback: a gateway with an attestation key, Guangdong and Macau following its signed
trust list (each converts attestations and offers the other on its page), Macau's policy at
version 2 allowing transfer, and the checkpoint's web edge as the gateway's client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway import transfer, wire
from gateway._generated.huren.v1 import registry_pb2 as registry_pb
from gateway.clients import TlsCredentials, new_request_id
from gateway.clients.aio import AsyncGatewayClient
from gateway.clock import system_clock
from gateway.hub import new_attestation_key
from gateway.registry.commands import RevokeKey, SetPolicy
from gateway.web import checkpoint_app, start
from regions.common.service import OUTBOUND, TRANSFERS
from regions.common.transfers import HubTrust
from regions.demo import MACAU_TRANSFER
from tests.integration.conftest import LOCAL, Hub, MutableClock, declaration, running_hub

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 15.0


@dataclass
class TransferWorld:
    hub: Hub
    clock: MutableClock
    kid: str
    checkpoint: str
    """The checkpoint web edge's base URL."""

    def url(self, region: str) -> str:
        return self.hub.regions[region].url

    def trust(self, region: str) -> HubTrust:
        found = self.hub.regions[region].running.runner.app[TRANSFERS]
        assert found is not None
        return found.trust

    def peers(self, region: str) -> dict[str, str]:
        outbound = self.hub.regions[region].running.runner.app[OUTBOUND]
        assert outbound is not None
        assert isinstance(outbound.peers, dict)
        return outbound.peers

    def trust_version(self) -> int:
        return self.hub.gateway.hub.store.state.snapshot().version

    async def synced(self) -> None:
        """Until both regions hold the hub's current trust list."""
        await until(
            lambda: all(
                (held := self.trust(r).held) is not None and held.version >= self.trust_version()
                for r in ("guangdong", "macau")
            )
        )

    async def post(self, base: str, path: str, body: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(base + path, json=body) as response,
        ):
            return response.status, await response.json()

    async def get(self, base: str, path: str) -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session, session.get(base + path) as response:
            return response.status, await response.read()

    async def declare(self, region: str, **overrides: Any) -> dict[str, Any]:
        status, answer = await self.post(
            self.url(region), "/api/declarations", declaration(**overrides)
        )
        assert status == 201, answer
        return dict(answer)

    async def attestation(self, code: str) -> str:
        outcome = await self.hub.service.attest_async([code], "820000")
        assert outcome.attestation is not None, outcome.refused
        return outcome.attestation

    async def new_key(self) -> str:
        kid, _ = new_attestation_key(self.hub.gateway.hub, LOCAL)
        return kid

    def revoke(self, kid: str) -> None:
        self.hub.gateway.hub.registrar.submit(
            LOCAL, new_request_id(), RevokeKey(transfer.ISSUER, kid, "key exposed")
        )


async def until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


def macau_policy() -> str:
    """Macau's shipped policy with the demo's ``[transfer]`` section (its first version here)."""
    return (REPO / "regions" / "macau" / "policy.toml").read_text("utf-8") + MACAU_TRANSFER


@asynccontextmanager
async def transfer_world(base: Path) -> AsyncIterator[TransferWorld]:
    clock = MutableClock(system_clock().replace(microsecond=0))
    names = ("guangdong", "macau")
    async with running_hub(base, clock, names=names, transfer=names) as hub:
        kid, _ = new_attestation_key(hub.gateway.hub, LOCAL)
        message = wire.request(new_request_id(), SetPolicy(macau_policy()))
        assert isinstance(message, registry_pb.SetPolicyRequest)
        await hub.registry("macau-ops").SetPolicy(message)
        client = AsyncGatewayClient(hub.address, TlsCredentials.from_pki(hub.pki))
        runner, url = await start(checkpoint_app(client), "127.0.0.1:0")
        world = TransferWorld(hub, clock, kid, url)
        try:
            await world.synced()
            yield world
        finally:
            await runner.cleanup()
            await client.close()
