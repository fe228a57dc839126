"""Real components on loopback: the seven regional issuers (aiohttp), a gateway (grpc.aio) and
its SQLite registry file, all on 127.0.0.1 with ports chosen by the OS, sharing one clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.clock import system_clock
from gateway.limits import Limits
from gateway.model import Verdict
from gateway.online_client import OnlineClient
from gateway.server.app import GatewayServer, StateFiles, open_identities, open_service
from gateway.server.convert import verdict_from_pb
from gateway.service import VerificationService
from gateway.storage.sqlite import RegistryStore
from regions import REGIONS
from regions.common.onboarding import registration
from regions.common.runner import RunningRegion, start_region
from tests.conftest import resident_id


class MutableClock:
    """One clock for the issuers and the gateway, which a test may move forward."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock(system_clock().replace(microsecond=0))


def declaration(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id_number": resident_id(),
        "name": "王芳",
        "phone": "13800000001",
        "trips": [],
        "symptoms": [],
        "contact": False,
    }
    body.update(overrides)
    return body


@dataclass
class RegionHandle:
    running: RunningRegion

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def kid(self) -> str:
        return self.running.secrets.kid

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=body, headers=headers) as response,
        ):
            return response.status, await response.json()

    async def declare(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, answer = await self.request("POST", "/api/declarations", body)
        return status, answer

    async def issue(self, **body: Any) -> str:
        status, answer = await self.declare(declaration(**body))
        assert status == 201, answer
        code: str = answer["code"]
        return code


GATEWAY_LIMITS = Limits(max_batch=10, max_message_bytes=64 * 1024)


@dataclass
class Hub:
    """Seven regions and a gateway that knows them all."""

    regions: dict[str, RegionHandle]
    address: str
    channel: grpc.aio.Channel
    stub: verifier_pb2_grpc.VerifierAsyncStub
    service: VerificationService
    files: StateFiles
    online: OnlineClient

    async def verify(self, code: str, destination: str = "") -> Verdict:
        response = await self.stub.Verify(pb.VerifyRequest(code=code, destination=destination))
        return verdict_from_pb(response.verdict)


async def register_all(
    files: StateFiles, regions: dict[str, RegionHandle], verify_urls: dict[str, str]
) -> None:
    """What every regional operator does: publish keys, hand over profile and credentials."""
    with RegistryStore(files.database) as store:
        for name, handle in regions.items():
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{handle.url}/api/keys") as response,
            ):
                jwks = await response.read()
            found = registration(name, handle.url, handle.running.state_dir, jwks)
            issuer = found.issuer
            if name in verify_urls and issuer.online is not None:
                issuer = replace(
                    issuer, online=replace(issuer.online, verify_url=verify_urls[name])
                )
            store.register_issuer(issuer, found.profile, found.keys, at=system_clock())


@asynccontextmanager
async def running_hub(
    base: Path,
    clock: MutableClock,
    *,
    names: tuple[str, ...] = REGIONS,
    online: OnlineClient | None = None,
    verify_urls: dict[str, str] | None = None,
) -> AsyncIterator[Hub]:
    """Regions ``names`` and a gateway that knows them, all on loopback."""
    files = StateFiles(base / "gateway").ensure()
    open_identities(files)
    link_key = bytes.fromhex(files.link_key.read_text().strip())
    regions = {
        name: RegionHandle(
            await start_region(name, state_dir=base / name, clock=clock, link_key=link_key)
        )
        for name in names
    }
    await register_all(files, regions, verify_urls or {})
    online = online or OnlineClient(timeout=1.0, breaker_failures=1000)
    service, store = open_service(files, GATEWAY_LIMITS, clock, online)
    server = GatewayServer(service, "127.0.0.1:0")
    port = await server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(address)
    stub = verifier_pb2_grpc.VerifierStub(channel)
    try:
        yield Hub(regions, address, channel, stub, service, files, online)
    finally:
        await channel.close(None)
        await server.stop(0)
        store.close()
        for handle in regions.values():
            await handle.running.stop()


@pytest_asyncio.fixture
async def hub(tmp_path: Path, clock: MutableClock) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path, clock) as started:
        yield started


@pytest_asyncio.fixture
async def hangzhou(tmp_path: Path, clock: MutableClock) -> AsyncIterator[RegionHandle]:
    """The Hangzhou issuer alone (for tests of the regional HTTP API)."""
    handle = RegionHandle(await start_region("hangzhou", state_dir=tmp_path / "hz", clock=clock))
    yield handle
    await handle.running.stop()
