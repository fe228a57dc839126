"""Real components on loopback: the seven regional issuers (aiohttp), a gateway (grpc.aio) and
its SQLite registry file, all on 127.0.0.1 with ports chosen by the OS, sharing one clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio

from gateway import wire
from gateway._generated.huren.v1 import registry_pb2 as registry_pb
from gateway._generated.huren.v1 import registry_pb2_grpc, verifier_pb2_grpc
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway.cli.local import read_trust_list_key
from gateway.cli.pki import create_development_pki
from gateway.clients import TlsCredentials, new_request_id
from gateway.clients.hubfeed import HubFeed
from gateway.clients.online import OnlineClient
from gateway.clock import system_clock
from gateway.hub import initialise, open_hub
from gateway.limits import Limits
from gateway.model import Verdict
from gateway.registry.authority import Actor, Role
from gateway.registry.commands import CreateOperator
from gateway.server.app import Gateway, GatewayServer, TlsFiles, open_gateway
from gateway.server.certificates import ServerCertificates
from gateway.service import VerificationService
from gateway.storage.files import StateFiles
from gateway.wire import verdict_from_pb
from regions import REGIONS, spec_of
from regions.common.onboarding import registration_command
from regions.common.outbound import Outbound
from regions.common.runner import RunningRegion, start_region
from regions.common.transfers import HubTrust, Transfers
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
    """Seven regions and a gateway that knows them all, every issuer registered by its own
    operator over mutual TLS."""

    regions: dict[str, RegionHandle]
    address: str
    registry_address: str
    pki: Path
    channel: grpc.aio.Channel
    stub: verifier_pb2_grpc.VerifierServiceAsyncStub
    service: VerificationService
    gateway: Gateway
    files: StateFiles
    online: OnlineClient
    _channels: list[grpc.aio.Channel]
    server: GatewayServer

    async def verify(self, code: str, destination: str = "") -> Verdict:
        response = await self.stub.Verify(pb.VerifyRequest(code=code, destination=destination))
        return verdict_from_pb(response.verdict)

    def registry(self, operator: str | None) -> registry_pb2_grpc.RegistryServiceAsyncStub:
        """A Registry stub as ``operator`` (mutual TLS), or anonymous on the TLS port (None)."""
        if operator is None:
            channel = grpc.aio.secure_channel(
                self.address, TlsCredentials.from_pki(self.pki).channel()
            )
        else:
            credentials = TlsCredentials.from_pki(self.pki, operator).channel()
            channel = grpc.aio.secure_channel(self.registry_address, credentials)
        self._channels.append(channel)
        return registry_pb2_grpc.RegistryServiceStub(channel)


async def register_region(hub: Hub, name: str, handle: RegionHandle) -> registry_pb.RegistryChange:
    """What a regional operator does: publish keys, hand over profile and credentials, prove the
    keys are held (RegisterIssuer over mutual TLS)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{handle.url}/api/keys") as response,
    ):
        jwks = await response.read()
    request = registration_request(name, handle, new_request_id(), jwks)
    change: registry_pb.RegistryChange = (
        await hub.registry(f"{name}-ops").RegisterIssuer(request)
    ).change
    return change


def registration_request(
    name: str, handle: RegionHandle, request_id: str, jwks: bytes | None = None
) -> registry_pb.RegisterIssuerRequest:
    """The RegisterIssuer message region ``name``'s operator sends (keys from ``jwks``, or the
    region's own published keys)."""
    if jwks is None:
        public = handle.running.secrets.key.public_key()
        jwks = json.dumps({"keys": [{**public.jwk(), "kid": handle.kid}]}).encode()
    command = registration_command(name, handle.url, handle.running.state_dir, jwks, request_id)
    message = wire.request(request_id, command)
    assert isinstance(message, registry_pb.RegisterIssuerRequest)
    return message


LOCAL = Actor(Role.LOCAL, "test")


def new_state(directory: Path) -> StateFiles:
    """A new hub state directory (``huren registry init``)."""
    return initialise(directory, LOCAL)


def bootstrap_admin(files: StateFiles, pki: Path) -> None:
    """The one offline step: pin the hub administrator's certificate."""
    certificate = (pki / "operators" / "hub-admin.pem").read_bytes()
    with open_hub(files.directory) as hub:
        hub.registrar.submit(LOCAL, "bootstrap", CreateOperator("hub-admin", None, certificate))


@asynccontextmanager
async def running_hub(
    base: Path,
    clock: MutableClock,
    *,
    names: tuple[str, ...] = REGIONS,
    online: OnlineClient | None = None,
    verify_urls: dict[str, str] | None = None,
    transfer: tuple[str, ...] = (),
) -> AsyncIterator[Hub]:
    """Regions ``names`` and a gateway that knows them, all on loopback, TLS everywhere.

    Regions in ``transfer`` (转码) follow the hub's signed trust list, convert attestations
    (``POST /api/transfers``) and offer each other on their pages (``--transfer-peer``)."""
    files = new_state(base / "gateway")
    pki = base / "pki"
    create_development_pki(pki)
    bootstrap_admin(files, pki)
    link_key = bytes.fromhex(files.link_key.read_text().strip())
    online = online or OnlineClient(timeout=1.0, breaker_failures=1000)
    gateway = open_gateway(files.directory, GATEWAY_LIMITS, clock, online)
    server = GatewayServer(
        gateway,
        "127.0.0.1:0",
        registry_listen="127.0.0.1:0",
        certificates=ServerCertificates(TlsFiles(pki)),
    )
    port = await server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.aio.secure_channel(address, TlsCredentials.from_pki(pki).channel())
    hub = Hub(
        {},
        address,
        f"127.0.0.1:{server.registry_port}",
        pki,
        channel,
        verifier_pb2_grpc.VerifierServiceStub(channel),
        gateway.service,
        gateway,
        files,
        online,
        [],
        server,
    )
    peers: dict[str, dict[str, str]] = {}
    """Each transfer region's peers (code -> address), filled as the others start."""
    try:
        admin = hub.registry("hub-admin")
        for name in names:
            spec = spec_of(name)
            await admin.CreateRegion(
                registry_pb.CreateRegionRequest(
                    request_id=new_request_id(), region=spec.code, name=spec.display_name
                )
            )
            certificate = (pki / "operators" / f"{name}-ops.pem").read_bytes()
            await admin.CreateOperator(
                registry_pb.CreateOperatorRequest(
                    request_id=new_request_id(),
                    name=f"{name}-ops",
                    region=spec.code,
                    certificate_pem=certificate,
                )
            )
            handle = RegionHandle(
                await start_region(
                    name,
                    state_dir=base / name,
                    clock=clock,
                    link_key=link_key,
                    **_transfer_parts(hub, link_key, peers.setdefault(name, {}))
                    if name in transfer
                    else {},
                )
            )
            hub.regions[name] = handle
            for other, offered in peers.items():  # each transfer region offers the others
                if other != name and name in transfer:
                    offered[spec_of(name).code] = handle.url
                    peers[name][spec_of(other).code] = hub.regions[other].url
            if name in (verify_urls or {}):
                # The operator registers the API address the hub must use (here: a test proxy).
                await _register_with_verify_url(hub, name, handle, (verify_urls or {})[name])
            else:
                await register_region(hub, name, handle)
        yield hub
    finally:
        await channel.close(None)
        for extra in hub._channels:
            await extra.close(None)
        await hub.server.stop(0)
        gateway.hub.close()
        for handle in hub.regions.values():
            await handle.running.stop()


def _transfer_parts(hub: Hub, link_key: bytes, peers: dict[str, str]) -> dict[str, Any]:
    """What ``huren region serve --hub --hub-key --hub-ca --transfer-peer`` gives a region: its
    own view of the hub's trust list (pinned key, TLS), and the other transfer regions."""
    credentials = TlsCredentials.from_pki(hub.pki)
    trust = HubTrust(
        read_trust_list_key(hub.files.trust_list_public), HubFeed(hub.address, credentials)
    )
    return {
        "transfers": Transfers(trust, link_key),
        "outbound": Outbound(trust, peers, hub.address, credentials),
    }


async def _register_with_verify_url(
    hub: Hub, name: str, handle: RegionHandle, verify_url: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{handle.url}/api/keys") as response,
    ):
        jwks = await response.read()
    request = registration_request(name, handle, new_request_id(), jwks)
    request.online.verify_url = verify_url
    await hub.registry(f"{name}-ops").RegisterIssuer(request)


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
