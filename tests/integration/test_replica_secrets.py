"""The replica secrets over mutual TLS: a hub on loopback with real regions (Beijing and Macau
seal pseudonyms, Zhejiang answers online), replicas run as ``huren serve --replica-of``
processes with certificates from the development PKI (``huren pki init``, ``huren pki issue
--replica``), pinned and unpinned with ``huren registry replica``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import registry_pb2_grpc as rpb_grpc
from gateway.clients import TlsCredentials, new_request_id
from gateway.model import IssuerId, Reason, Status, Verdict
from gateway.storage.files import StateFiles
from tests.integration.cli import huren, running
from tests.integration.conftest import Hub, running_hub
from tests.integration.test_replica import VerifierClient

pytestmark = pytest.mark.asyncio
DEADLINE = 15.0
"""A bound for what should happen within about a second: a timeout, not a target."""
NAMES = ("beijing", "macau", "zhejiang", "hangzhou")


def issue_replica_certificate(pki: Path, name: str) -> tuple[Path, Path]:
    made = huren("pki", "issue", str(pki), "--name", name, "--replica")
    assert made.returncode == 0, made.stderr
    return pki / "replicas" / f"{name}.pem", pki / "replicas" / f"{name}.key"


def pin(hub: Hub, name: str, certificate: Path) -> None:
    added = huren(
        *("registry", "replica", "add", name, "--certificate", str(certificate)),
        *("--state-dir", str(hub.files.directory)),
    )
    assert added.returncode == 0, added.stderr
    assert f"pinned replica {name}" in added.stdout


def empty_state(base: Path) -> Path:
    files = StateFiles(base)
    files.make_directory()
    return files.directory


def replica_options(hub: Hub, state: Path, *extra: str) -> tuple[str, ...]:
    return (
        *("serve", "--replica-of", hub.address, "--listen", "127.0.0.1:0", "--workers", "1"),
        *("--trust-list-key", str(hub.files.trust_list_public), "--tls-dir", str(hub.pki)),
        *("--state-dir", str(state), *extra),
    )


def with_certificate(hub: Hub, certificate: Path, key: Path) -> tuple[str, ...]:
    return (
        *("--replica-cert", str(certificate), "--replica-key", str(key)),
        *("--hub-registry", hub.registry_address),
    )


@contextlib.contextmanager
def replica_process(*options: str) -> Iterator[str]:
    """A ``huren serve --replica-of`` process; yields its verification address."""
    with running(*options) as line:
        assert "huren replica listening on" in line, line
        yield line.split("listening on ")[1].split()[0]


@contextlib.asynccontextmanager
async def client(address: str, pki: Path) -> AsyncIterator[VerifierClient]:
    replica = VerifierClient(address, pki)
    try:
        yield replica
    finally:
        await replica.channel.close(None)


async def until(check, what: str) -> None:
    for _ in range(int(DEADLINE / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"not within {DEADLINE} s: {what}")


def same(mine: Verdict, theirs: Verdict) -> bool:
    """The same judgement: status, reason, the whole canonical code (colour, identity and
    subject reference, times, local state) and the issuer and key it was verified with."""
    return (mine.status, mine.reason, mine.code, mine.provenance.issuer, mine.provenance.kid) == (
        theirs.status,
        theirs.reason,
        theirs.code,
        theirs.provenance.issuer,
        theirs.provenance.kid,
    )


def audit(hub: Hub) -> list[dict[str, object]]:
    listed = huren("audit", "log", "--state-dir", str(hub.files.directory), "--json")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    return sorted(entries, key=lambda e: int(e["seq"]))


async def test_a_pinned_replica_judges_pseudonym_and_online_codes_as_the_hub(
    tmp_path, clock, caplog
):
    caplog.set_level(logging.INFO, logger="huren.secrets")
    async with running_hub(tmp_path, clock, names=NAMES) as hub:
        certificate, key = issue_replica_certificate(hub.pki, "edge-1")
        pin(hub, "edge-1", certificate)
        codes = [
            await hub.regions["beijing"].issue(),
            await hub.regions["macau"].issue(),
            await hub.regions["zhejiang"].issue(),
            await hub.regions["hangzhou"].issue(),
        ]
        state = empty_state(tmp_path / "edge-1")
        options = replica_options(hub, state, *with_certificate(hub, certificate, key))
        with replica_process(*options) as address:
            async with client(address, hub.pki) as replica:
                await until(replica.serving, "the replica serves with the hub's secrets")
                for code in codes:
                    mine, theirs = await replica.verify(code), await hub.verify(code)
                    assert mine.status is Status.VALID, mine
                    assert same(mine, theirs), (mine, theirs)
        # Memory only: nothing secret was written to the replica's folder.
        assert sorted(p.name for p in state.iterdir()) == ["trustlist.jws"]
    lines = [r.getMessage() for r in caplog.records if r.name == "huren.secrets"]
    assert any("sent to replica:edge-1" in line for line in lines), lines
    secret = hub.files.subject_key.read_text().strip()
    assert not any(secret in line for line in lines)


async def test_without_the_secrets_those_codes_are_unavailable_and_an_operator_gets_nothing(
    tmp_path, clock
):
    async with running_hub(tmp_path, clock, names=NAMES) as hub:
        beijing, macau = await hub.regions["beijing"].issue(), await hub.regions["macau"].issue()
        zhejiang = await hub.regions["zhejiang"].issue()
        # The old way: identity secrets copied by hand, no replica certificate.
        copied = empty_state(tmp_path / "copied")
        for secret in (hub.files.subject_key, hub.files.link_key):
            shutil.copy2(secret, copied / secret.name)
        with replica_process(*replica_options(hub, copied)) as address:
            async with client(address, hub.pki) as replica:
                await until(replica.serving, "the replica serves the hub's list")
                for code in (beijing, macau, zhejiang):
                    verdict = await replica.verify(code)
                    assert (verdict.status, verdict.reason) == (
                        Status.UNVERIFIABLE,
                        Reason.ERR_SECRET_UNAVAILABLE,
                    ), verdict
        # An operator's certificate given as a replica's: the hub refuses it the secrets.
        operator = hub.pki / "operators" / "beijing-ops"
        options = with_certificate(hub, operator.with_suffix(".pem"), operator.with_suffix(".key"))
        bare = empty_state(tmp_path / "bare")
        with replica_process(*replica_options(hub, bare, *options)) as address:
            async with client(address, hub.pki) as replica:
                await asyncio.sleep(1.0)
                assert not await replica.serving()
                verdict = await replica.verify(beijing)
                assert (verdict.status, verdict.reason) == (
                    Status.UNVERIFIABLE,
                    Reason.ERR_SECRET_UNAVAILABLE,
                ), verdict


async def test_only_a_pinned_replica_is_handed_the_secrets(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("beijing",)) as hub:
        certificate, key = issue_replica_certificate(hub.pki, "edge-2")
        request = rpb.GetReplicaSecretsRequest()

        async def status_of(stub: rpb_grpc.RegistryServiceAsyncStub) -> grpc.StatusCode:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetReplicaSecrets(request)
            return refused.value.code()

        credentials = TlsCredentials(
            (hub.pki / "ca.pem").read_bytes(), certificate.read_bytes(), key.read_bytes()
        )
        channel = grpc.aio.secure_channel(hub.registry_address, credentials.channel())
        replica: rpb_grpc.RegistryServiceAsyncStub = rpb_grpc.RegistryServiceStub(channel)
        try:
            # Not pinned yet; an operator; the hub administrator; anonymous on the TLS port.
            assert await status_of(replica) is grpc.StatusCode.UNAUTHENTICATED
            assert await status_of(hub.registry("beijing-ops")) is grpc.StatusCode.PERMISSION_DENIED
            assert await status_of(hub.registry("hub-admin")) is grpc.StatusCode.PERMISSION_DENIED
            assert await status_of(hub.registry(None)) is grpc.StatusCode.PERMISSION_DENIED
            pin(hub, "edge-2", certificate)
            answer = await replica.GetReplicaSecrets(request)
            assert answer.subject_key == bytes.fromhex(hub.files.subject_key.read_text().strip())
            assert [i.issuer_id for i in answer.issuers] == ["beijing"]
            assert len(answer.issuers[0].pseudonym_key) == 64
            again = await replica.GetReplicaSecrets(
                rpb.GetReplicaSecretsRequest(known_digest=answer.digest)
            )
            assert again.unchanged
            assert not again.subject_key
            assert not again.issuers
            # A replica changes nothing, and each attempt is audited as denied (the calls run
            # at once, in any order).
            denied: list[Any] = [
                replica.CreateRegion(
                    rpb.CreateRegionRequest(request_id=new_request_id(), region="320000", name="x")
                ),
                replica.RevokeKey(
                    rpb.RevokeKeyRequest(
                        request_id=new_request_id(), issuer_id="beijing", kid="any"
                    )
                ),
                replica.RemoveOperator(
                    rpb.RemoveOperatorRequest(request_id=new_request_id(), name="beijing-ops")
                ),
                replica.ListAudit(rpb.ListAuditRequest()),
            ]
            for call in denied:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        finally:
            await channel.close(None)
        entries = audit(hub)
        mine = [(e["action"], e["outcome"]) for e in entries if e["actor"] == "replica:edge-2"]
        assert sorted(mine) == [
            ("create-region", "denied"),
            ("remove-operator", "denied"),
            ("revoke-key", "denied"),
        ]
        assert hub.service.trust.current.issuers[IssuerId("beijing")].pseudonym_key is not None


async def test_an_unpinned_replica_drops_the_secrets_and_the_audit_log_shows_it(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("beijing", "hangzhou")) as hub:
        certificate, key = issue_replica_certificate(hub.pki, "edge-3")
        pin(hub, "edge-3", certificate)
        beijing = await hub.regions["beijing"].issue()
        state = empty_state(tmp_path / "edge-3")
        options = replica_options(hub, state, *with_certificate(hub, certificate, key))
        with replica_process(*options) as address:
            async with client(address, hub.pki) as replica:
                await until(replica.serving, "the replica serves with the hub's secrets")
                assert (await replica.verify(beijing)).status is Status.VALID
                removed = huren(
                    *("registry", "replica", "remove", "edge-3"),
                    *("--state-dir", str(hub.files.directory)),
                )
                assert removed.returncode == 0, removed.stderr

                async def dropped() -> bool:
                    verdict = await replica.verify(beijing)
                    return verdict.reason is Reason.ERR_SECRET_UNAVAILABLE

                await until(dropped, "the unpinned replica drops its secrets")
                assert not await replica.serving()
                hangzhou = await replica.verify(await hub.regions["hangzhou"].issue())
                assert hangzhou.reason is Reason.ERR_SECRET_UNAVAILABLE
        listed = huren("registry", "replica", "list", "--state-dir", str(hub.files.directory))
        assert listed.stdout.startswith("edge-3\tremoved"), listed.stdout
    changes = [
        (str(e["actor"]).split(":")[0], e["action"], e["target"], e["outcome"])
        for e in audit(hub)
        if e["action"] in ("add-replica", "remove-replica")
    ]
    assert changes == [
        ("local", "add-replica", "edge-3", "ok"),
        ("local", "remove-replica", "edge-3", "ok"),
    ]
