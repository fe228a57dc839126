"""What the hub administrator does over the network that was once done only on the hub's host
(docs/operators.md §4a, docs/transfer.md): read the issuance log of transfer attestations
(``ListAttestations``, ``huren operator attestations``) and pin, unpin and list verifier
replicas (``AddReplica``, ``RemoveReplica``, ``ListReplicas``, ``huren operator add-replica``
...). A real hub over mutual TLS with certificates from ``huren pki``, real regions issuing
codes, real ``Attest`` calls, and the registry and issuance log in their SQLite files."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from gateway import wire
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway._generated.huren.v1 import registry_pb2_grpc as rpb_grpc
from gateway._generated.huren.v1 import verifier_pb2 as vpb
from gateway.clients import TlsCredentials, new_request_id
from gateway.clients.tls import replica_files
from gateway.registry.commands import SetPolicy
from tests.conftest import REPO, resident_id
from tests.integration.cli import huren
from tests.integration.conftest import Hub, running_hub
from tests.integration.test_replica_secrets import issue_replica_certificate
from tests.integration.transferworld import TransferWorld, macau_policy, transfer_world

pytestmark = pytest.mark.asyncio
TRAVELLERS = [resident_id("440106", "19850101", f"{n:03d}") for n in range(11, 16)]


@pytest_asyncio.fixture
async def world(tmp_path: Path):
    async with transfer_world(tmp_path) as started:
        yield started


async def denied(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code()


async def set_policy(hub: Hub, operator: str, text: str) -> None:
    message = wire.request(new_request_id(), SetPolicy(text))
    assert isinstance(message, rpb.SetPolicyRequest)
    await hub.registry(operator).SetPolicy(message)


async def attest(world: TransferWorld, traveller: str, destination: str) -> tuple[str, str]:
    """A Guangdong code for ``traveller``, attested for ``destination`` over gRPC: the
    attestation's code_ref and its source's."""
    code = (await world.declare("guangdong", id_number=traveller))["code"]
    answer = await world.hub.stub.Attest(vpb.AttestRequest(codes=[code], destination=destination))
    assert answer.attestation.startswith("HR1:"), answer.refusal_detail
    source = (await world.hub.verify(code)).provenance.code_ref
    assert source
    return answer.code_ref, source


async def remote(hub: Hub, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``huren operator ARGS`` as ``who``, in its own process, while this loop serves the hub."""
    return await asyncio.to_thread(huren, "operator", *args, *connection(hub, who))


def connection(hub: Hub, who: str) -> tuple[str, ...]:
    return ("--pki", str(hub.pki), "--as", who, "--gateway", hub.registry_address)


async def test_the_hub_administrator_pages_and_filters_the_issuance_log(world):
    hub = world.hub
    guangdong = (REPO / "regions" / "guangdong" / "policy.toml").read_text("utf-8")
    await set_policy(hub, "guangdong-ops", guangdong + "\n[transfer]\nattest = true\n")
    start = world.clock()
    made = [  # seq 1 to 3: under version 1 of each policy
        await attest(world, TRAVELLERS[0], "820000"),
        await attest(world, TRAVELLERS[1], "820000"),
        await attest(world, TRAVELLERS[2], "440000"),
    ]
    world.clock.advance(timedelta(minutes=10))
    await set_policy(hub, "macau-ops", macau_policy().replace("version = 1", "version = 2", 1))
    made += [  # seq 4 and 5: Macau's policy at version 2
        await attest(world, TRAVELLERS[3], "820000"),
        await attest(world, TRAVELLERS[4], "440000"),
    ]
    admin = hub.registry("hub-admin")
    audited = len((await admin.ListAudit(rpb.ListAuditRequest())).entries)

    async def seqs(**fields: Any) -> list[int]:
        answer = await admin.ListAttestations(rpb.ListAttestationsRequest(**fields))
        return [e.seq for e in answer.entries]

    everything = await admin.ListAttestations(rpb.ListAttestationsRequest())
    assert [e.seq for e in everything.entries] == [5, 4, 3, 2, 1]
    assert (everything.kept, everything.max_kept, everything.next_before) == (5, 100_000, 0)
    for entry, (code_ref, source) in zip(everything.entries, reversed(made), strict=True):
        assert (entry.code_ref, list(entry.source_code_refs)) == (code_ref, [source])
        assert entry.kid == world.kid
        assert entry.expires_at.ToDatetime() > entry.issued_at.ToDatetime()
    newest = everything.entries[0]
    assert (newest.destination, newest.policy_id, newest.policy_version) == (
        "440000",
        "guangdong",
        1,
    )
    assert (everything.entries[1].policy_id, everything.entries[1].policy_version) == ("macau", 2)
    # Nothing of a traveller: no identity number, no name, in any entry.
    served = everything.SerializeToString()
    assert not any(number.encode() in served for number in TRAVELLERS)
    assert "王".encode() not in served

    # Pages of two, each naming where the next starts, until none does.
    pages, before = [], 0
    while True:
        page = await admin.ListAttestations(rpb.ListAttestationsRequest(limit=2, before=before))
        pages.append([e.seq for e in page.entries])
        if not page.next_before:
            break
        before = page.next_before
    assert pages == [[5, 4], [3, 2], [1]]

    # Each filter, and two together.
    assert await seqs(destination="820000") == [4, 2, 1]
    assert await seqs(policy_id="macau") == [4, 2, 1]
    assert await seqs(policy_id="macau", policy_version=1) == [2, 1]
    assert await seqs(policy_id="macau", policy_version=2) == [4]
    assert await seqs(policy_id="guangdong", destination="440000") == [5, 3]
    later = wire.timestamp(start + timedelta(minutes=5))
    assert await seqs(issued_from=later) == [5, 4]
    assert await seqs(issued_until=later) == [3, 2, 1]
    assert await seqs(code_ref=made[1][0]) == [2]  # the attestation's own reference
    assert await seqs(code_ref=made[3][1]) == [4]  # the source code it was made from
    assert await seqs(destination="820000", code_ref=made[2][0]) == []

    # The bound on a page, and a filter that cannot be, are clear refusals.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin.ListAttestations(rpb.ListAttestationsRequest(limit=1001))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000 entries per call" in (refused.value.details() or "")
    for impossible in (
        rpb.ListAttestationsRequest(destination="Macau"),
        rpb.ListAttestationsRequest(code_ref="c1." + "A" * 300),
        rpb.ListAttestationsRequest(policy_version=2),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin.ListAttestations(impossible)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, impossible

    # Only the hub administrator reads it; reading it changes nothing and is not audited.
    request = rpb.ListAttestationsRequest()
    macau = hub.registry("macau-ops")
    assert await denied(macau.ListAttestations(request)) is grpc.StatusCode.PERMISSION_DENIED
    # A regional operator learns nothing of the request, not even that it is malformed.
    bad = rpb.ListAttestationsRequest(limit=5000)
    assert await denied(macau.ListAttestations(bad)) is grpc.StatusCode.PERMISSION_DENIED
    anonymous = hub.registry(None)  # the verification port: no client certificate
    assert await denied(anonymous.ListAttestations(request)) is grpc.StatusCode.UNAUTHENTICATED
    assert len((await admin.ListAudit(rpb.ListAuditRequest())).entries) == audited

    # The remote command prints what the one on the hub's host prints.
    by_admin = await remote(
        hub, "hub-admin", "attestations", "--destination", "820000", "--limit", "2"
    )
    local = huren(
        *("registry", "attestations", "--state-dir", str(hub.files.directory)),
        *("--destination", "820000", "--limit", "2"),
    )
    assert by_admin.returncode == 0, by_admin.stderr
    assert local.returncode == 0, local.stderr
    assert by_admin.stdout == local.stdout
    lines = by_admin.stdout.splitlines()
    assert lines[0].startswith(f"#4 {(start + timedelta(minutes=10)).isoformat()} {made[3][0]}")
    assert (
        lines[-1] == "2 shown of 5 kept (the log keeps the latest 100000); older ones: --before 2"
    )
    as_json = await remote(hub, "hub-admin", "attestations", "--json")
    assert as_json.returncode == 0, as_json.stderr
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [o["seq"] for o in objects] == [5, 4, 3, 2, 1]
    assert objects[1]["policy"] == "macau@2"
    by_operator = await remote(hub, "macau-ops", "attestations")
    assert by_operator.returncode != 0
    assert "only the hub administrator reads the issuance log" in by_operator.stderr


async def test_the_hub_administrator_pins_and_unpins_a_replica_over_the_network(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("beijing",)) as hub:
        certificate, key = issue_replica_certificate(hub.pki, "edge-7")
        credentials = TlsCredentials(
            (hub.pki / "ca.pem").read_bytes(), certificate.read_bytes(), key.read_bytes()
        )
        channel = grpc.aio.secure_channel(hub.registry_address, credentials.channel())
        replica: rpb_grpc.RegistryServiceAsyncStub = rpb_grpc.RegistryServiceStub(channel)
        admin, beijing = hub.registry("hub-admin"), hub.registry("beijing-ops")
        secrets = rpb.GetReplicaSecretsRequest()
        try:
            # An operator can neither pin a replica nor see the replicas.
            pin = rpb.AddReplicaRequest(
                request_id=new_request_id(), name="edge-7", certificate_pem=certificate.read_bytes()
            )
            assert await denied(beijing.AddReplica(pin)) is grpc.StatusCode.PERMISSION_DENIED
            listing = rpb.ListReplicasRequest()
            assert await denied(beijing.ListReplicas(listing)) is grpc.StatusCode.PERMISSION_DENIED
            assert (
                await denied(replica.GetReplicaSecrets(secrets)) is grpc.StatusCode.UNAUTHENTICATED
            )

            # The hub administrator pins it from elsewhere, with the remote command.
            added = await remote(
                hub,
                "hub-admin",
                "add-replica",
                "--name",
                "edge-7",
                "--certificate",
                str(certificate),
            )
            assert added.returncode == 0, added.stderr
            assert added.stdout.startswith("add-replica edge-7: replica, key ")
            answer = await replica.GetReplicaSecrets(secrets)
            assert answer.subject_key == bytes.fromhex(hub.files.subject_key.read_text().strip())
            assert [i.issuer_id for i in answer.issuers] == ["beijing"]
            # A pinned replica still reads nothing of the administrator's.
            assert await denied(replica.ListReplicas(listing)) is grpc.StatusCode.PERMISSION_DENIED
            attestations = rpb.ListAttestationsRequest()
            assert (
                await denied(replica.ListAttestations(attestations))
                is grpc.StatusCode.PERMISSION_DENIED
            )

            listed = await admin.ListReplicas(listing)
            assert [(r.name, r.active) for r in listed.replicas] == [("edge-7", True)]
            by_admin = await remote(hub, "hub-admin", "list-replicas")
            local = huren("registry", "replica", "list", "--state-dir", str(hub.files.directory))
            assert by_admin.returncode == 0, by_admin.stderr
            assert by_admin.stdout == local.stdout
            assert by_admin.stdout.startswith("edge-7\tactive\tkey ")

            removed = await admin.RemoveReplica(
                rpb.RemoveReplicaRequest(request_id=new_request_id(), name="edge-7")
            )
            assert removed.change.audit.actor == "admin:hub-admin"
            assert (
                await denied(replica.GetReplicaSecrets(secrets)) is grpc.StatusCode.UNAUTHENTICATED
            )
            listed = await admin.ListReplicas(listing)
            assert [(r.name, r.active) for r in listed.replicas] == [("edge-7", False)]
        finally:
            await channel.close(None)
        entries = (await admin.ListAudit(rpb.ListAuditRequest())).entries
        about = [(e.action, e.actor, e.outcome) for e in entries if e.target == "edge-7"]
        assert about == [
            ("add-replica", "operator:110000:beijing-ops", rpb.AUDIT_OUTCOME_DENIED),
            ("add-replica", "admin:hub-admin", rpb.AUDIT_OUTCOME_OK),
            ("remove-replica", "admin:hub-admin", rpb.AUDIT_OUTCOME_OK),
        ]


NO_CERTIFICATE = "this call needs an operator's client certificate (mTLS port)"
NOT_PINNED = "the certificate's key is not a registered operator's"
NOT_A_REPLICA = "only a pinned replica's certificate fetches the replica secrets"
ONLY_SECRETS = "a replica's certificate only fetches the replica secrets"
ANONYMOUS = "call without a client certificate"
UNKNOWN = "client certificate"
WHO_READS_WHAT = [
    # (caller, call, status, details, the security log's kind)
    (
        None,
        "GetReplicaSecrets",
        grpc.StatusCode.PERMISSION_DENIED,
        "the replica secrets go only to a pinned replica's certificate, on the hub's "
        "mutual-TLS registry port",
        "replica secrets asked without a certificate",
    ),
    (None, "ListReplicas", grpc.StatusCode.UNAUTHENTICATED, NO_CERTIFICATE, ANONYMOUS),
    (None, "ListAttestations", grpc.StatusCode.UNAUTHENTICATED, NO_CERTIFICATE, ANONYMOUS),
    ("unpinned", "GetReplicaSecrets", grpc.StatusCode.UNAUTHENTICATED, NOT_PINNED, UNKNOWN),
    ("unpinned", "ListReplicas", grpc.StatusCode.UNAUTHENTICATED, NOT_PINNED, UNKNOWN),
    (
        "beijing-ops",
        "GetReplicaSecrets",
        grpc.StatusCode.PERMISSION_DENIED,
        NOT_A_REPLICA,
        "replica secrets asked by a non-replica",
    ),
    (
        "beijing-ops",
        "ListReplicas",
        grpc.StatusCode.PERMISSION_DENIED,
        "only the hub administrator reads the replicas",
        "the replicas asked by a non-administrator",
    ),
    (
        "beijing-ops",
        "ListAttestations",
        grpc.StatusCode.PERMISSION_DENIED,
        "only the hub administrator reads the issuance log",
        "the issuance log asked by a non-administrator",
    ),
    (
        "hub-admin",
        "GetReplicaSecrets",
        grpc.StatusCode.PERMISSION_DENIED,
        NOT_A_REPLICA,
        "replica secrets asked by a non-replica",
    ),
    ("hub-admin", "ListReplicas", grpc.StatusCode.OK, "", None),
    ("hub-admin", "ListAttestations", grpc.StatusCode.OK, "", None),
    ("edge-8", "GetReplicaSecrets", grpc.StatusCode.OK, "", None),
    (
        "edge-8",
        "ListReplicas",
        grpc.StatusCode.PERMISSION_DENIED,
        ONLY_SECRETS,
        "the replicas asked by a non-administrator",
    ),
    (
        "edge-8",
        "ListAttestations",
        grpc.StatusCode.PERMISSION_DENIED,
        ONLY_SECRETS,
        "the issuance log asked by a non-administrator",
    ),
]
REQUESTS: dict[str, Any] = {
    "GetReplicaSecrets": rpb.GetReplicaSecretsRequest(),
    "ListReplicas": rpb.ListReplicasRequest(),
    "ListAttestations": rpb.ListAttestationsRequest(),
}


async def test_who_may_read_what_each_refusal_answered_and_counted(tmp_path, clock):
    """Every reading call that only some callers may make, by every kind of caller: the status,
    the message, and what the security log counts (refusals without a certificate or by an
    unknown one included)."""
    async with running_hub(tmp_path, clock, names=("beijing",)) as hub:
        channels: list[grpc.aio.Channel] = []

        def as_replica(name: str) -> rpb_grpc.RegistryServiceAsyncStub:
            certificate, key = replica_files(hub.pki, name)
            credentials = TlsCredentials(
                (hub.pki / "ca.pem").read_bytes(), certificate.read_bytes(), key.read_bytes()
            )
            channels.append(grpc.aio.secure_channel(hub.registry_address, credentials.channel()))
            return rpb_grpc.RegistryServiceStub(channels[-1])

        certificate, _ = issue_replica_certificate(hub.pki, "edge-8")
        issue_replica_certificate(hub.pki, "unpinned")
        await hub.registry("hub-admin").AddReplica(
            rpb.AddReplicaRequest(
                request_id=new_request_id(), name="edge-8", certificate_pem=certificate.read_bytes()
            )
        )
        callers = {
            None: hub.registry(None),
            "unpinned": as_replica("unpinned"),
            "beijing-ops": hub.registry("beijing-ops"),
            "hub-admin": hub.registry("hub-admin"),
            "edge-8": as_replica("edge-8"),
        }
        try:
            for caller, call, status, details, kind in WHO_READS_WHAT:
                counted = dict(hub.server.security.counts)
                try:
                    await getattr(callers[caller], call)(REQUESTS[call])
                    answer = (grpc.StatusCode.OK, "")
                except grpc.aio.AioRpcError as refused:
                    answer = (refused.code(), refused.details() or "")
                assert answer == (status, details), (caller, call)
                more = hub.server.security.counts - Counter(counted)
                assert more == (Counter({kind: 1}) if kind else Counter()), (caller, call)
        finally:
            for channel in channels:
                await channel.close(None)
