"""The replica secrets over mutual TLS: a hub on loopback with real regions (Beijing and Macau
seal pseudonyms, Zhejiang answers online), replicas run as ``huren serve --replica-of``
processes with certificates from the development PKI (``huren pki init``, ``huren pki issue
--replica``), pinned and unpinned with ``huren registry replica``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway import trustlist
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import registry_pb2_grpc as rpb_grpc
from gateway.cli.serve import NEVER_FRESH
from gateway.clients import TlsCredentials, new_request_id
from gateway.clients.hubfeed import HubFeed
from gateway.clients.hubsecrets import HubSecrets
from gateway.clients.tls import read_tls_file
from gateway.crypto import load_jwk, pki
from gateway.crypto.pki import TlsFile
from gateway.errors import TlsFilesInvalid
from gateway.hub import trust_list_key
from gateway.model import IssuerId, Reason, Status, Verdict
from gateway.registry import TrustHolder, TrustSnapshot
from gateway.server.app import TlsFiles
from gateway.server.certificates import (
    HubCertificates,
    HubTlsFiles,
    ServerCertificates,
    StartReads,
)
from gateway.server.metrics import PrometheusObserver
from gateway.server.replica import HEALTH_SECONDS, ReplicaServer
from gateway.service import VerificationService
from gateway.storage.files import StateFiles
from tests.conftest import REPO
from tests.integration.cli import Served, huren, running, serving
from tests.integration.conftest import GATEWAY_LIMITS, Hub, MutableClock, running_hub
from tests.integration.scrape import sample, scrape, scrape_text
from tests.integration.test_replica import Replica, VerifierClient

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


FAILURES = "huren_replica_secrets_fetch_failures_total"
REASONS = ("refused", "unreachable", "malformed", "error")


def documented_metrics() -> set[str]:
    """The metric names of docs/scaling.md's table (Metrics)."""
    text = (REPO / "docs" / "scaling.md").read_text("utf-8")
    table = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(huren_\w+)`", table, re.MULTILINE))


def family(sample_key: str) -> str:
    """The metric a scraped sample belongs to, as the docs name it."""
    name = sample_key.split("{", 1)[0]
    return re.sub(r"_(bucket|count|sum)$", "", name)


def measured_replica(*options: str) -> contextlib.AbstractContextManager[Served]:
    """A replica process (``replica_options``) with its metrics on a port of its own."""
    assert options[0] == "serve"
    return serving(None, None, *options[1:], "--metrics-listen", "127.0.0.1:0")


async def stopped(served: Served) -> None:
    """Stop a replica process, the hub (in this event loop) answering while it drains."""
    served.process.terminate()
    for _ in range(int(DEADLINE / 0.1)):
        if served.process.poll() is not None:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the replica did not stop within {DEADLINE} s")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_metrics_say_whether_a_replica_holds_its_secrets_and_why_fetches_failed(
    tmp_path, clock
):
    async with running_hub(tmp_path, clock, names=("beijing",)) as hub:
        certificate, key = issue_replica_certificate(hub.pki, "edge-5")
        pin(hub, "edge-5", certificate)
        state = empty_state(tmp_path / "edge-5")
        options = replica_options(hub, state, *with_certificate(hub, certificate, key))
        with measured_replica(*options) as served:

            async def held() -> bool:
                return scrape(served.metrics).get("huren_replica_secrets_held") == 1

            await until(held, "the metrics show the secrets held")

            async def current() -> bool:
                version = scrape(served.metrics).get("huren_replica_secrets_version")
                return version == hub.service.trust.current.version

            await until(current, "the secrets are vouched for at the hub's trust version")
            figures = scrape(served.metrics)
            assert 0 <= figures["huren_replica_secrets_last_fetch_seconds"] < DEADLINE
            assert [figures[sample(FAILURES, reason=r)] for r in REASONS] == [0, 0, 0, 0]
            # Every metric the replica serves is described in docs/scaling.md.
            served_names = {family(k) for k in figures if k.startswith("huren_")}
            assert served_names - documented_metrics() == set()
            assert {"huren_replica_secrets_held", FAILURES} <= served_names

            removed = huren(
                *("registry", "replica", "remove", "edge-5"),
                *("--state-dir", str(hub.files.directory)),
            )
            assert removed.returncode == 0, removed.stderr

            async def dropped() -> bool:
                return scrape(served.metrics).get("huren_replica_secrets_held") == 0

            await until(dropped, "the metrics show the secrets dropped")
            after = scrape(served.metrics)
            assert after[sample(FAILURES, reason="refused")] >= 1
            assert after[sample(FAILURES, reason="unreachable")] == 0
            assert "huren_replica_secrets_version" not in after
            assert "huren_replica_secrets_last_fetch_seconds" in after  # the last answer's age
            await stopped(served)
        # A replica whose hub's registry port does not answer: never held, counted as such.
        lost = empty_state(tmp_path / "edge-6")
        certificate, key = issue_replica_certificate(hub.pki, "edge-6")
        pin(hub, "edge-6", certificate)
        options = replica_options(
            hub,
            lost,
            *("--replica-cert", str(certificate), "--replica-key", str(key)),
            *("--hub-registry", f"127.0.0.1:{unused_port()}"),
        )
        with measured_replica(*options) as served:

            async def unreachable() -> bool:
                return scrape(served.metrics).get(sample(FAILURES, reason="unreachable"), 0) >= 1

            await until(unreachable, "the failed fetch is counted")
            figures = scrape(served.metrics)
            assert figures["huren_replica_secrets_held"] == 0
            assert "huren_replica_secrets_last_fetch_seconds" not in figures
            text = scrape_text(served.metrics)
            await stopped(served)
        assert hub.files.subject_key.read_text().strip() not in text


async def test_a_rotated_replica_certificate_is_taken_on_sighup_and_a_broken_one_is_not(
    tmp_path, clock, caplog
):
    """The replica's certificate and key are re-read as the server's TLS files are: rotated at
    the hub (the new one pinned, the old one removed) and on disk, then SIGHUP, the replica
    fetches its secrets again with the new one, without a restart; files that do not go
    together are refused and the ones in use stay."""
    caplog.set_level(logging.INFO, logger="huren.secrets")
    async with running_hub(tmp_path, clock, names=("beijing", "zhejiang")) as hub:
        old_certificate, old_key = issue_replica_certificate(hub.pki, "edge-a")
        new_certificate, new_key = issue_replica_certificate(hub.pki, "edge-b")
        pin(hub, "edge-a", old_certificate)
        served_files = tmp_path / "replica-tls"
        served_files.mkdir()
        certificate, key = served_files / "replica.pem", served_files / "replica.key"
        shutil.copy2(old_certificate, certificate)
        shutil.copy2(old_key, key)
        beijing = await hub.regions["beijing"].issue()  # needs a pseudonym key
        zhejiang = await hub.regions["zhejiang"].issue()  # needs the online credential
        state = empty_state(tmp_path / "edge")
        options = replica_options(
            hub, state, *with_certificate(hub, certificate, key), "--tls-check-seconds", "0"
        )
        with measured_replica(*options) as served:
            async with client(served.address, hub.pki) as replica:

                async def verifies() -> bool:
                    verdicts = [await replica.verify(beijing), await replica.verify(zhejiang)]
                    return all(v.status is Status.VALID for v in verdicts)

                async def lacks_secrets() -> bool:
                    verdict = await replica.verify(beijing)
                    return verdict.reason is Reason.ERR_SECRET_UNAVAILABLE

                await until(verifies, "the replica verifies with the first certificate")
                # Rotation at the hub: the new certificate pinned, the old one removed. The
                # replica, still on the old one, is refused and drops its secrets.
                pin(hub, "edge-b", new_certificate)
                removed = huren(
                    *("registry", "replica", "remove", "edge-a"),
                    *("--state-dir", str(hub.files.directory)),
                )
                assert removed.returncode == 0, removed.stderr
                await until(lacks_secrets, "the replica on the unpinned certificate is refused")

                # Files that do not go together: refused, logged, and the process serves on.
                certificate.write_bytes(new_certificate.read_bytes())  # the old key stays
                served.process.send_signal(signal.SIGHUP)

                async def refused_files() -> bool:
                    return any("TLS files not taken" in line for line in served.log_lines())

                await until(refused_files, "the mismatched key is refused")
                assert served.process.poll() is None
                assert (await replica.verify(beijing)).reason is Reason.ERR_SECRET_UNAVAILABLE
                online = await replica.verify(zhejiang)
                assert online.status is Status.UNVERIFIABLE

                # The new key beside it, and SIGHUP: the replica fetches with the new pair.
                key.write_bytes(new_key.read_bytes())
                served.process.send_signal(signal.SIGHUP)
                await until(verifies, "the replica verifies again with the new certificate")
                assert await replica.serving()

                # An unreadable certificate later: the pair in use stays, nothing is dropped.
                certificate.write_bytes(b"not a certificate")
                served.process.send_signal(signal.SIGHUP)

                async def refused_twice() -> bool:
                    lines = served.log_lines()
                    return sum("TLS files not taken" in line for line in lines) == 2

                await until(refused_twice, "the unreadable certificate is refused")
                assert await verifies()
                figures = scrape(served.metrics)
                assert figures["huren_replica_secrets_held"] == 1
            lines = served.log_lines()
            await stopped(served)
    assert sum("re-read: new connections use them" in line for line in lines) == 1, lines
    assert any("not a PEM certificate" in line for line in lines), lines
    sent = [r.getMessage() for r in caplog.records if r.name == "huren.secrets"]
    assert any("sent to replica:edge-a" in line for line in sent), sent
    assert any("sent to replica:edge-b" in line for line in sent), sent


async def test_replica_files_are_taken_only_when_they_pass(tmp_path, caplog):
    """What the replica's files are checked for before they are used: an expired certificate,
    and a CA file with no certificate in it, are refused and the credentials in use stay; a
    good new pair is taken, and the replica told."""
    ca = pki.new_ca()
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)

    def write(issued: pki.Issued) -> None:
        (tmp_path / "replica.pem").write_bytes(issued.certificate_pem)
        (tmp_path / "replica.key").write_bytes(issued.key_pem)

    write(pki.issue_replica(ca, "edge-7"))
    files = HubTlsFiles(tmp_path / "ca.pem", tmp_path / "replica.pem", tmp_path / "replica.key")
    followed = HubCertificates(files, check_seconds=0)
    told: list[int] = []
    followed.changed.append(lambda: told.append(followed.generation))
    first = followed.credentials()
    assert followed.mutual
    assert first.certificate == (tmp_path / "replica.pem").read_bytes()

    write(pki.issue_replica(ca, "edge-7", days=0))  # expired by the time it is read
    assert not followed.check(force=True)
    assert followed.credentials() is first
    assert "the certificate expired" in caplog.text

    renewed = pki.issue_replica(ca, "edge-8")
    write(renewed)
    assert followed.check(force=True)
    assert followed.credentials().certificate == renewed.certificate_pem
    assert followed.credentials().key == renewed.key_pem
    assert told == [1]

    (tmp_path / "ca.pem").write_bytes(b"")
    assert not followed.check(force=True)
    assert followed.credentials().certificate == renewed.certificate_pem
    assert "no PEM certificate" in caplog.text
    assert told == [1]


async def test_the_servers_and_a_replicas_tls_files_are_read_alike(tmp_path):
    """One reading for both sets of files: the same contents, and a missing file named with
    how to make it (the server's from ``huren pki init``, the hub's CA from --hub-ca; a
    replica's own certificate and key with no hint)."""
    ca = pki.new_ca()
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)
    server, replica = pki.issue_server(ca, ["127.0.0.1"]), pki.issue_replica(ca, "edge-9")
    (tmp_path / "gateway.pem").write_bytes(server.certificate_pem)
    (tmp_path / "gateway.key").write_bytes(server.key_pem)
    (tmp_path / "replica.pem").write_bytes(replica.certificate_pem)
    (tmp_path / "replica.key").write_bytes(replica.key_pem)
    tls = TlsFiles(tmp_path)
    hub = HubTlsFiles(tmp_path / "ca.pem", tmp_path / "replica.pem", tmp_path / "replica.key")
    assert tls.read() == (ca.certificate_pem, server.certificate_pem, server.key_pem)
    assert hub.read() == (ca.certificate_pem, replica.certificate_pem, replica.key_pem)
    assert HubTlsFiles(tmp_path / "ca.pem").read() == (ca.certificate_pem,)

    (tmp_path / "replica.key").unlink()
    with pytest.raises(TlsFilesInvalid) as missing:
        hub.read()
    assert str(missing.value).endswith("replica.key: cannot be read (No such file or directory)")
    (tmp_path / "ca.pem").unlink()
    for files, hint in (
        (tls, f"; create them with `huren pki init {tmp_path}`, or run with --insecure"),
        (hub, "; give the hub's CA with --hub-ca"),
    ):
        with pytest.raises(TlsFilesInvalid) as missing:
            files.read()
        unread = f"{tmp_path / 'ca.pem'}: cannot be read (No such file or directory)"
        assert str(missing.value) == unread + hint


async def test_files_replaced_during_a_start_are_served_as_the_start_read_them(tmp_path):
    """A replica's start reads each file once and every use takes what it read: its TLS files
    replaced (new CA, certificate and key) just after its server's were read, its hub's CA
    (the same ca.pem) is still the one its server's start checked, not the new one; the next
    look at the files takes the new ones for both (the start stamped them before reading)."""

    def write(ca: pki.Issued) -> None:
        issued = pki.issue_server(ca, ["127.0.0.1"])
        for name, content in (
            ("ca.pem", ca.certificate_pem),
            ("gateway.pem", issued.certificate_pem),
            ("gateway.key", issued.key_pem),
        ):
            (tmp_path / f".{name}").write_bytes(content)
            (tmp_path / f".{name}").replace(tmp_path / name)

    old, new = pki.new_ca(), pki.new_ca()
    write(old)
    reads: list[str] = []

    def read_then_rotate(path: Path, hint: str) -> TlsFile:
        read = read_tls_file(path, hint)
        reads.append(path.name)
        if path.name == "gateway.key":  # the server's files are read: rotate them all
            write(new)
        return read

    start = StartReads(read_then_rotate)
    server = ServerCertificates(TlsFiles(tmp_path), check_seconds=0, start=start)
    hub = HubCertificates(HubTlsFiles(tmp_path / "ca.pem"), check_seconds=0, start=start)
    assert reads == ["ca.pem", "gateway.pem", "gateway.key"]
    assert server.ca == hub.credentials().ca == old.certificate_pem

    assert server.check()
    assert hub.check()
    assert server.ca == hub.credentials().ca == new.certificate_pem
    assert reads == ["ca.pem", "gateway.pem", "gateway.key"]  # the start's reader is done


@contextlib.asynccontextmanager
async def replica_in_process(
    hub: Hub,
    state: Path,
    clock: MutableClock,
    files: HubTlsFiles,
    observer: PrometheusObserver,
    max_age: timedelta,
) -> AsyncIterator[tuple[Replica, HubCertificates]]:
    """A replica in this process on the test's clock, fetching its secrets with ``files``
    (followed: a test changes them and calls ``check(force=True)``, as SIGHUP does); its trust
    list comes on a feed of its own, untouched by ``files``."""
    certificates = HubCertificates(files, check_seconds=0)
    service = VerificationService(
        TrustHolder(TrustSnapshot.empty(), fresh_until=NEVER_FRESH), GATEWAY_LIMITS, None, clock
    )
    server = ReplicaServer(
        service,
        load_jwk(json.loads(hub.files.trust_list_public.read_text())),
        state,
        HubFeed(hub.address, TlsCredentials.from_pki(hub.pki), max_backoff=1.0),
        "127.0.0.1:0",
        clock=clock,
        certificates=ServerCertificates(TlsFiles(hub.pki)),
        observer=observer,
        secrets=HubSecrets(hub.registry_address, certificates.credentials),
        hub_certificates=certificates,
        secrets_max_age=max_age,
    )
    await server.start()
    observer.watch(service)
    replica = Replica(server, hub.pki)
    try:
        yield replica, certificates
    finally:
        await replica.channel.close(None)
        await server.stop(0)


async def test_secrets_the_hub_no_longer_vouches_for_are_dropped_past_their_maximum_age(
    tmp_path, clock, caplog
):
    """The hub's CA rotated without the replica: every fetch fails its handshake (UNAVAILABLE,
    not a refusal). The replica keeps its secrets within their maximum age (an outage is not a
    revocation), drops them all past it (fail closed, while its trust list is still fresh), and
    takes them again at the next answered fetch."""
    max_age = timedelta(minutes=5)
    async with running_hub(tmp_path, clock, names=("beijing", "hangzhou")) as hub:
        certificate, key = issue_replica_certificate(hub.pki, "edge-9")
        pin(hub, "edge-9", certificate)
        beijing = await hub.regions["beijing"].issue()  # needs the issuer's pseudonym key
        hangzhou = await hub.regions["hangzhou"].issue()  # needs the identity keys only
        ca = tmp_path / "hub-ca.pem"
        shutil.copy2(hub.pki / "ca.pem", ca)
        metrics = PrometheusObserver(clock, "replica")

        def figures() -> dict[str, float]:
            return {name: value for name, _, value in metrics.trust_figures()}

        state = empty_state(tmp_path / "edge-9")
        files = HubTlsFiles(ca, certificate, key)
        async with replica_in_process(hub, state, clock, files, metrics, max_age) as (
            replica,
            followed,
        ):

            async def verifies() -> bool:
                verdicts = [await replica.verify(beijing), await replica.verify(hangzhou)]
                return all(v.status is Status.VALID for v in verdicts) and await replica.serving()

            async def dropped() -> bool:
                verdicts = [await replica.verify(beijing), await replica.verify(hangzhou)]
                return all(
                    (v.status, v.reason) == (Status.UNVERIFIABLE, Reason.ERR_SECRET_UNAVAILABLE)
                    for v in verdicts
                )

            await until(verifies, "the replica verifies with its hub's secrets")
            assert figures()["huren_replica_secrets_held"] == 1

            # Another CA: the replica no longer trusts the hub's certificate.
            ca.write_bytes(pki.new_ca().certificate_pem)
            assert followed.check(force=True)

            async def failing() -> bool:
                counted = metrics.registry.get_sample_value(FAILURES, {"reason": "unreachable"})
                return bool(counted)

            await until(failing, "the fetches fail")
            clock.advance(max_age - timedelta(seconds=30))
            await asyncio.sleep(2 * HEALTH_SECONDS)
            assert await verifies(), "dropped within their maximum age"
            assert replica.server.secrets is not None

            clock.advance(timedelta(seconds=31))
            await until(dropped, "past their maximum age, the secrets are not used")

            async def gone() -> bool:
                return replica.server.secrets is None

            await until(gone, "and the replica's watch drops them")
            assert replica.server.service.identities is None
            assert not await replica.serving()
            assert replica.server.fresh  # the list is still fresh: only the secrets went
            assert figures()["huren_replica_secrets_held"] == 0
            verdict = await replica.verify(hangzhou)
            assert "maximum age" in verdict.detail
            clock.advance(timedelta(minutes=1))
            await asyncio.sleep(2 * HEALTH_SECONDS)
            alarms = [r.getMessage() for r in caplog.records if "ALARM" in r.getMessage()]
            assert len(alarms) == 1, alarms  # logged once, however long it lasts
            assert "maximum age (5m)" in alarms[0]

            # The hub's CA again: the next fetch is answered and the secrets are back.
            shutil.copy2(hub.pki / "ca.pem", ca)
            assert followed.check(force=True)
            await until(verifies, "an answered fetch restores the secrets")
            assert figures()["huren_replica_secrets_held"] == 1
            # The age counts from that answer: the old one does not drop them again at once.
            await asyncio.sleep(2 * HEALTH_SECONDS)
            assert replica.server.secrets is not None


async def test_an_online_issuer_left_unverified_is_logged_once_per_change(tmp_path, clock, caplog):
    """A list that names no verify URL for Zhejiang (as an older hub signed it) leaves its codes
    unverified with the secrets held: said once, not at each list that changes nothing of it
    (heartbeats), again when it agrees, and again when it disagrees anew."""
    caplog.set_level(logging.WARNING, logger="gateway.server.replica")
    async with running_hub(tmp_path, clock, names=("zhejiang",)) as hub:
        certificate, key = issue_replica_certificate(hub.pki, "edge-10")
        pin(hub, "edge-10", certificate)
        files = HubTlsFiles(hub.pki / "ca.pem", certificate, key)
        metrics = PrometheusObserver(clock, "replica")
        state = empty_state(tmp_path / "edge-10")
        signing = trust_list_key(hub.files)

        def signed(*, with_url: bool) -> str:
            clock.advance(timedelta(seconds=1))  # each list issued later than the one before
            content = trustlist.document(
                hub.service.trust.current, clock(), clock() + timedelta(minutes=15)
            )
            if not with_url:
                for issuer in content["issuers"]:
                    issuer.pop("online_verify_url", None)
            return trustlist.sign(content, signing)

        def lines(text: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if text in r.getMessage()]

        async with replica_in_process(hub, state, clock, files, metrics, timedelta(minutes=15)) as (
            replica,
            _,
        ):

            async def held() -> bool:
                return replica.server.secrets is not None and replica.server.held is not None

            await until(held, "the replica holds a list and its secrets")
            for _ in range(3):  # the older hub's list, and two of its heartbeats
                assert await replica.server.offer(signed(with_url=False))
            code = await hub.regions["zhejiang"].issue()
            verdict = await replica.verify(code)
            assert verdict.reason is Reason.ERR_SECRET_UNAVAILABLE, verdict
            assert len(lines("online codes not verified")) == 1
            assert await replica.server.offer(signed(with_url=True))
            assert await replica.server.offer(signed(with_url=True))
            assert len(lines("online codes of issuer zhejiang are verified again")) == 1
            assert await replica.server.offer(signed(with_url=False))
            assert len(lines("online codes not verified")) == 2
