"""Real components on loopback: the Hangzhou issuer (aiohttp), a gateway (grpc.aio) and its
SQLite registry file, all on 127.0.0.1 with ports chosen by the OS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from aiohttp import web

from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.clock import system_clock
from gateway.keyfiles import read_keys
from gateway.limits import Limits
from gateway.model import ProfileId
from gateway.registry import Issuer, IssuerKey
from gateway.server.app import GatewayServer, StateFiles, open_service
from gateway.service import VerificationService
from gateway.storage.sqlite import ProfileSource, RegistryStore
from regions.common.keys import SigningKey, load_or_create
from regions.common.service import make_app
from regions.hangzhou import REGION
from tests.conftest import resident_id


class MutableClock:
    """One clock for the issuer and the gateway, which a test may move forward."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock(system_clock().replace(microsecond=0))


@dataclass
class RegionHandle:
    url: str
    signing: SigningKey
    state_dir: Path

    async def declare(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = f"{self.url}/api/declarations"
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
            return response.status, await response.json()

    async def issue(self, **body: Any) -> str:
        status, answer = await self.declare(declaration(**body))
        assert status == 201, answer
        code: str = answer["code"]
        return code


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


@pytest_asyncio.fixture
async def hangzhou(tmp_path: Path, clock: MutableClock) -> AsyncIterator[RegionHandle]:
    state_dir = tmp_path / "hangzhou"
    signing = load_or_create(state_dir, "hangzhou", REGION.spec.algorithm)
    runner = web.AppRunner(make_app(REGION, signing, clock), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield RegionHandle(f"http://127.0.0.1:{port}", signing, state_dir)
    await runner.cleanup()


@dataclass
class GatewayHandle:
    address: str
    channel: grpc.aio.Channel
    stub: verifier_pb2_grpc.VerifierAsyncStub
    service: VerificationService
    store: RegistryStore
    files: StateFiles


GATEWAY_LIMITS = Limits(max_batch=10, max_message_bytes=64 * 1024)


async def register_from_region(store: RegistryStore, region_url: str) -> None:
    """What an operator does: take the issuer's published keys and its profile file."""
    url = f"{region_url}/api/keys"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        jwks = await response.read()
    profile = ProfileSource.parse(REGION.spec.profile_text())
    spec = REGION.spec
    issuer = Issuer(spec.issuer, spec.code, spec.display_name, ProfileId(profile.profile.id), 1)
    keys = [IssuerKey(issuer.id, k.kid, k.public_key) for k in read_keys(jwks)]
    store.register_issuer(issuer, profile, keys, at=system_clock())


@pytest_asyncio.fixture
async def gateway(
    tmp_path: Path, clock: MutableClock, hangzhou: RegionHandle
) -> AsyncIterator[GatewayHandle]:
    files = StateFiles(tmp_path / "gateway")
    files.ensure()
    store = RegistryStore(files.database)
    await register_from_region(store, hangzhou.url)
    store.close()
    service, store = open_service(files, GATEWAY_LIMITS, clock)
    server = GatewayServer(service, "127.0.0.1:0")
    port = await server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(address)
    stub = verifier_pb2_grpc.VerifierStub(channel)
    yield GatewayHandle(address, channel, stub, service, store, files)
    await channel.close(None)
    await server.stop(0)
    store.close()
