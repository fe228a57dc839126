"""Verifier replicas against a real hub on loopback: fed by WatchTrustList, refusing what does
not verify or is not newer, stale past fresh_until, recovering, restarting from disk.

Both share the test's clock, which a test moves forward to cross ``fresh_until`` (the hub's
heartbeat and the replica's freshness read the same instant); propagation is measured in real
time."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import trustlist
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.cli.serve import NEVER_FRESH
from gateway.clients import TlsCredentials, new_request_id
from gateway.clients.hubfeed import HubFeed
from gateway.crypto import Algorithm, PrivateKey, load_jwk
from gateway.metrics import NO_OBSERVER, Observer
from gateway.model import Colour, Reason, Status, Verdict
from gateway.registry import TrustHolder, TrustSnapshot
from gateway.server.app import GatewayServer, TlsFiles
from gateway.server.certificates import ServerCertificates
from gateway.server.metrics import PrometheusObserver
from gateway.server.replica import ReplicaServer
from gateway.service import VerificationService
from gateway.storage.files import StateFiles
from gateway.wire import verdict_from_pb
from tests.integration.cli import huren, running
from tests.integration.conftest import GATEWAY_LIMITS, Hub, MutableClock, running_hub

pytestmark = pytest.mark.asyncio
DEADLINE = 10.0
"""A bound for conditions that should hold within about a second: a timeout, not a target."""


class VerifierClient:
    """A client of a replica's Verifier and health services at ``address``."""

    def __init__(self, address: str, pki: Path) -> None:
        self.address = address
        self.channel = grpc.aio.secure_channel(self.address, TlsCredentials.from_pki(pki).channel())
        self.stub = verifier_pb2_grpc.VerifierServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def verify(self, code: str) -> Verdict:
        answer = await self.stub.Verify(pb.VerifyRequest(code=code))
        return verdict_from_pb(answer.verdict)

    async def serving(self) -> bool:
        answer = await self.health.Check(health_pb2.HealthCheckRequest(service=""))
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


class Replica(VerifierClient):
    """A replica server in this process, and a client of it."""

    def __init__(self, server: ReplicaServer, pki: Path) -> None:
        super().__init__(f"127.0.0.1:{server.port}", pki)
        self.server = server


def replica_dir(hub: Hub, base: Path) -> Path:
    """What the administrator provisions: a private folder with the hub's identity secrets."""
    files = StateFiles(base / "replica")
    files.make_directory()
    for secret in (hub.files.subject_key, hub.files.link_key):
        shutil.copy2(secret, files.directory / secret.name)
    return files.directory


@asynccontextmanager
async def running_replica(
    hub: Hub,
    state: Path,
    clock: MutableClock,
    target: str | None = None,
    observer: Observer = NO_OBSERVER,
) -> AsyncIterator[Replica]:
    service = VerificationService(
        TrustHolder(TrustSnapshot.empty(), fresh_until=NEVER_FRESH),
        GATEWAY_LIMITS,
        StateFiles(state).identities(),
        clock,
    )
    key = load_jwk(json.loads(hub.files.trust_list_public.read_text()))
    feed = HubFeed(target or hub.address, TlsCredentials.from_pki(hub.pki), max_backoff=1.0)
    server = ReplicaServer(
        service,
        key,
        state,
        feed,
        "127.0.0.1:0",
        clock=clock,
        certificates=ServerCertificates(TlsFiles(hub.pki)),
        observer=observer,
    )
    await server.start()
    replica = Replica(server, hub.pki)
    try:
        yield replica
    finally:
        await replica.channel.close(None)
        await server.stop(0)


async def in_step(replica: Replica, hub: Hub) -> bool:
    """True once the replica serves the hub's current trust version."""
    held = replica.server.held
    current = hub.service.trust.current.version
    return held is not None and held.version == current and await replica.serving()


async def until(condition: Callable[[], object], what: str) -> float:
    """Seconds until ``condition()`` (awaited if it is a coroutine) holds; fails after
    :data:`DEADLINE`."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {DEADLINE} s: {what}")


async def test_a_replica_serves_nothing_before_its_first_list(tmp_path, clock):
    async with (
        running_hub(tmp_path, clock, names=("hangzhou",)) as hub,
        running_replica(hub, replica_dir(hub, tmp_path), clock, "127.0.0.1:1") as replica,
    ):
        code = await hub.regions["hangzhou"].issue()
        assert not await replica.serving()
        verdict = await replica.verify(code)
        assert (verdict.status, verdict.reason) == (Status.UNVERIFIABLE, Reason.ERR_TRUST_STALE)
        assert "no verified trust list" in verdict.detail
        assert replica.server.held is None


async def test_a_replica_verifies_as_the_hub_and_follows_a_revocation(tmp_path, clock):
    async with (
        running_hub(tmp_path, clock, names=("hangzhou", "beijing")) as hub,
        running_replica(hub, replica_dir(hub, tmp_path), clock) as replica,
    ):
        await until(lambda: in_step(replica, hub), "the replica serves the hub's list")
        code = await hub.regions["hangzhou"].issue()
        mine, theirs = await replica.verify(code), await hub.verify(code)
        assert (mine.status, mine.colour) == (Status.VALID, Colour.GREEN), mine
        assert mine.code == theirs.code  # the same subject reference too
        assert mine.provenance == theirs.provenance
        # A pseudonymous region: its key is not in the trust list.
        pseudonymous = await replica.verify(await hub.regions["beijing"].issue())
        assert (pseudonymous.status, pseudonymous.reason) == (
            Status.UNVERIFIABLE,
            Reason.ERR_SECRET_UNAVAILABLE,
        )
        assert (await hub.verify(await hub.regions["beijing"].issue())).status is Status.VALID

        await hub.registry("hangzhou-ops").RevokeKey(
            rpb.RevokeKeyRequest(
                request_id=new_request_id(), issuer_id="hangzhou", kid=hub.regions["hangzhou"].kid
            )
        )
        revoked_at = time.monotonic()
        assert (await hub.verify(code)).reason is Reason.ERR_KEY_REVOKED

        async def refused() -> bool:
            return (await replica.verify(code)).reason is Reason.ERR_KEY_REVOKED

        await until(refused, "the replica refuses the revoked key's code")
        print(f"revocation reached the replica in {time.monotonic() - revoked_at:.3f} s")
        assert replica.server.feed.connected  # pushed on the stream, not polled

        def saved() -> bool:  # the list is written after it is swapped in (step 4)
            held = replica.server.held
            return held is not None and replica.server.saved.read_text() == held.text

        await until(saved, "the last good list is on disk")


async def test_a_replica_refuses_rollbacks_replays_and_strangers(tmp_path, clock):
    async with (
        running_hub(tmp_path, clock, names=("hangzhou",)) as hub,
        running_replica(hub, replica_dir(hub, tmp_path), clock) as replica,
    ):
        await until(lambda: in_step(replica, hub), "the replica serves the hub's list")
        first = replica.server.held
        assert first is not None
        await hub.registry("hangzhou-ops").RevokeKey(
            rpb.RevokeKeyRequest(
                request_id=new_request_id(), issuer_id="hangzhou", kid=hub.regions["hangzhou"].kid
            )
        )
        await until(lambda: replica.server.held is not first, "the revocation arrives")
        held = replica.server.held
        assert held is not None
        code = await hub.regions["hangzhou"].issue()
        signer = hub.gateway.hub.signer.key
        clock.advance(timedelta(seconds=1))
        now = clock()
        # The old list, as a backup restored on the hub or an attacker in between serves it.
        assert not await replica.server.offer(first.text)
        # The old content signed again with the real key, later: still a lower version.
        older = trustlist.document(first.snapshot, now, now + timedelta(minutes=15))
        assert not await replica.server.offer(trustlist.sign(older, signer))
        # The current content signed by another key.
        current = trustlist.document(held.snapshot, now, now + timedelta(minutes=15))
        stranger = PrivateKey.generate(Algorithm.ES256)
        assert not await replica.server.offer(trustlist.sign(current, stranger))
        assert replica.server.held is held
        assert (await replica.verify(code)).reason is Reason.ERR_KEY_REVOKED
        # The same content with the real key and a later issued_at: a heartbeat, taken.
        assert await replica.server.offer(trustlist.sign(current, signer))
        assert replica.server.held is not held
        assert replica.server.held.fresh_until == now + timedelta(minutes=15)


async def test_a_replica_goes_stale_without_its_hub_and_recovers(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        state = replica_dir(hub, tmp_path)
        code = await hub.regions["hangzhou"].issue()
        async with running_replica(hub, state, clock) as replica:
            await until(lambda: in_step(replica, hub), "the replica serves the hub's list")
            held = replica.server.held
            assert held is not None
            await hub.server.stop(0)
            clock.advance(held.fresh_until - clock() - timedelta(seconds=1))
            assert (await replica.verify(code)).colour is Colour.GREEN
            assert await replica.serving()
            clock.advance(timedelta(seconds=1))  # now fresh_until: no longer fresh
            stale = await replica.verify(code)
            assert (stale.status, stale.reason) == (Status.UNVERIFIABLE, Reason.ERR_TRUST_STALE)
            assert "was fresh until" in stale.detail
            await until(lambda: _not(replica.serving), "health turns NOT_SERVING")

            hub.server = GatewayServer(
                hub.gateway,
                hub.address,
                registry_listen="127.0.0.1:0",
                certificates=ServerCertificates(TlsFiles(hub.pki)),
            )
            await hub.server.start()
            await until(replica.serving, "the replica recovers when the hub is back")
            assert (await replica.verify(code)).colour is Colour.GREEN
            await hub.server.stop(0)

        # Restarted without its hub: the list saved on disk, verified again, still fresh.
        clock.advance(timedelta(minutes=2))
        metrics = PrometheusObserver(clock, "replica")
        async with running_replica(hub, state, clock, observer=metrics) as again:
            assert again.server.held is not None
            assert again.server.held.text == replica.server.held.text  # type: ignore[union-attr]
            assert await again.serving()
            assert (await again.verify(code)).colour is Colour.GREEN
            # Its trust gauges from the start: served since now, confirmed when the hub signed it.
            metrics.watch(again.server.service)
            figures = {name: value for name, _, value in metrics.trust_figures()}
            signed = (clock() - again.server.held.issued_at).total_seconds()
            assert signed >= 120
            assert 0 <= figures["huren_trust_age_seconds"] < DEADLINE
            assert signed <= figures["huren_trust_last_refresh_seconds"] < signed + DEADLINE
            assert figures["huren_trust_stale"] == 0


async def _not(check: Callable[[], object]) -> bool:
    value = check()
    return not (await value if asyncio.iscoroutine(value) else value)


async def test_huren_serve_replica_of_serves_the_hubs_verdicts(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        code = await hub.regions["hangzhou"].issue()
        bare = tmp_path / "bare"
        StateFiles(bare).make_directory()
        options = (
            *("serve", "--replica-of", hub.address, "--listen", "127.0.0.1:0", "--workers", "1"),
            *("--trust-list-key", str(hub.files.trust_list_public), "--tls-dir", str(hub.pki)),
        )
        refused = await asyncio.to_thread(huren, *options, "--state-dir", str(bare))
        assert refused.returncode != 0
        assert "copy subject.key and link.key" in refused.stderr
        state = replica_dir(hub, tmp_path)
        with running(*options, "--state-dir", str(state)) as line:
            assert "replica of" in line
            assert "no trust list yet" in line
            address = line.split("listening on ")[1].split()[0]
            pki = ("--gateway", address, "--pki", str(hub.pki))
            healthy = await asyncio.to_thread(huren, "health", *pki, "--wait", str(DEADLINE))
            assert healthy.stdout.strip() == "SERVING", healthy.stderr
            checked = await asyncio.to_thread(huren, "verify", *pki, "--require", "green", code)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "GREEN" in checked.stdout
        assert (state / "trustlist.jws").is_file()


async def test_a_plaintext_replica_with_a_hub_ca_still_follows_its_hub_over_tls(tmp_path, clock):
    # A replica behind `huren front` on loopback (deploy/k8s): plaintext to the front, but the
    # trust list still comes from the TLS hub, checked against --hub-ca.
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        code = await hub.regions["hangzhou"].issue()
        options = (
            *("serve", "--replica-of", hub.address, "--listen", "127.0.0.1:0", "--workers", "1"),
            *("--trust-list-key", str(hub.files.trust_list_public), "--insecure"),
            *("--hub-ca", str(hub.pki / "ca.pem"), "--state-dir", str(replica_dir(hub, tmp_path))),
        )
        with running(*options) as line:
            address = line.split("listening on ")[1].split()[0]
            plain = ("--gateway", address, "--insecure")
            healthy = await asyncio.to_thread(huren, "health", *plain, "--wait", str(DEADLINE))
            assert healthy.stdout.strip() == "SERVING", healthy.stderr
            checked = await asyncio.to_thread(huren, "verify", *plain, "--require", "green", code)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "GREEN" in checked.stdout
