"""A hub whose registry is larger than the trust list format before compression allowed (4 MiB:
about 8,900 EU DCC signer certificates) feeds a replica; a list over the limit is not published
and says so; a replica restarts from a list saved before compression.

Real hub and replica on loopback, a real SQLite registry filled through the Registrar as the
host's ``huren registry import-certificates`` does (one audited change per issuer's batch)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import trustlist
from gateway._generated.huren.v1 import registry_pb2 as rpb
from gateway.codecs import cose, textform
from gateway.crypto import Algorithm, PrivateKey, pki
from gateway.hub import open_hub
from gateway.model import Colour, Status
from gateway.registry.authority import Actor, Role
from gateway.registry.commands import CreateRegion, ImportCertificates, RegisterIssuer, RevokeKey
from gateway.server.metrics import PrometheusObserver
from gateway.server.replica import TRUST_LIST_FILE
from tests.integration.conftest import MutableClock, running_hub
from tests.integration.test_replica import in_step, replica_dir, running_replica, until

pytestmark = pytest.mark.asyncio
OLD_LIMIT = 4 * 1024 * 1024
"""The trust list's size limit before compression (and gRPC's default message size)."""
ISSUERS, PER_ISSUER = 10, 1000
"""10,000 signer certificates: 4.7 MB of list uncompressed, over the old limit."""
HOST = Actor(Role.LOCAL, "host")
PROFILE = (Path(__file__).parents[2] / "gateway/profiles/formats/eu-dcc.toml").read_text()


def _certificates(count: int, now: Any) -> Iterator[tuple[PrivateKey, bytes]]:
    """Signer certificates (DER), each of its own key pair, as a country's list holds them."""
    for n in range(count):
        key = PrivateKey.generate(Algorithm.ES256)
        raw = serialization.load_pem_private_key(key.pem(), None)
        assert isinstance(raw, ec.EllipticCurvePrivateKey)
        certificate = pki.self_signed(
            raw,
            f"DSC {n}",
            not_before=now - timedelta(days=30),
            not_after=now + timedelta(days=300),
        )
        yield key, certificate.public_bytes(serialization.Encoding.DER)


def _import(directory: Path, clock: MutableClock, issuers: range) -> tuple[PrivateKey, bytes]:
    """Countries ``QA``, ``QB``... each with an EU DCC issuer of :data:`PER_ISSUER` signer
    certificates; returns one key and certificate of the last issuer."""
    with open_hub(directory, clock=clock) as hub:
        for n in issuers:
            country = "Q" + chr(ord("A") + n)
            hub.registrar.submit(HOST, f"region-{n}", CreateRegion(country, country))
            issuer = f"eu-dcc-{n}"
            hub.registrar.submit(HOST, issuer, RegisterIssuer(issuer, country, country, PROFILE))
            made = list(_certificates(PER_ISSUER, clock()))
            batch = tuple(der for _, der in made)
            hub.registrar.submit(HOST, f"dsc-{n}", ImportCertificates(issuer, batch))
    return made[PER_ISSUER // 2]


def _revoke(directory: Path, clock: MutableClock, kid: str) -> None:
    with open_hub(directory, clock=clock) as hub:
        hub.registrar.submit(HOST, f"revoke-{kid}", RevokeKey("eu-dcc-0", kid, "compromised"))


def _dcc(key: PrivateKey, certificate: bytes, country: str, now: Any) -> str:
    kid = hashlib.sha256(certificate).digest()[:8]  # the EU DCC key id of the certificate
    hcert = {
        "ver": "1.3.0",
        "nam": {"fnt": "MUSTER", "gnt": "ERIKA"},
        "dob": "1964-08-12",
        "v": [{"dn": 2, "sd": 2, "dt": "2021-05-29", "tg": "840539006"}],
    }
    at = int(now.timestamp())
    payload = {1: country, 4: at + 86400, 6: at - 60, -260: {1: hcert}}
    return textform.encode("HC1:", cose.sign(cbor2.dumps(payload), key, kid))


async def test_a_hub_over_the_old_limit_feeds_its_replica(tmp_path, clock, caplog):
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        key, certificate = await asyncio.to_thread(
            _import, hub.files.directory, clock, range(ISSUERS)
        )
        code = _dcc(key, certificate, "Q" + chr(ord("A") + ISSUERS - 1), clock())
        await until(
            lambda: len(hub.service.trust.current.keys) >= ISSUERS * PER_ISSUER,
            "the hub serves the imported certificates",
        )
        assert (await hub.verify(code)).colour is Colour.GREEN
        state = replica_dir(hub, tmp_path)
        async with running_replica(hub, state, clock) as replica:
            await until(lambda: in_step(replica, hub), "the replica serves the hub's list")
            held = replica.server.held
            assert held is not None
            assert len(held.snapshot.keys) == len(hub.service.trust.current.keys)
            # Before compression this list was over the limit every replica refused.
            content = trustlist.document(held.snapshot, held.issued_at, held.fresh_until)
            signer = hub.gateway.hub.signer.key
            before = trustlist.sign(content, signer, deflate=False)
            assert len(before) > OLD_LIMIT
            assert len(held.text) < len(before) / 2
            verdict = await replica.verify(code)
            assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN), verdict
            assert verdict.provenance.issuer == f"eu-dcc-{ISSUERS - 1}"

            # Over the limit the hub publishes nothing new, and says so (once per version).
            metrics = PrometheusObserver(clock, "hub")
            hub.server.observer = metrics
            signer_of = hub.gateway.hub.signer
            signer_of.max_chars = len(held.text) + 1000
            caplog.set_level(logging.ERROR, logger="gateway.server.app")
            await asyncio.to_thread(
                _import, hub.files.directory, clock, range(ISSUERS, ISSUERS + 1)
            )
            await until(
                lambda: metrics.registry.get_sample_value("huren_trust_list_over_limit") == 1,
                "the hub reports the list over the limit",
            )
            grown = hub.service.trust.current.version
            assert grown > held.version
            size = metrics.registry.get_sample_value("huren_trust_list_bytes")
            assert size is not None
            assert size > signer_of.max_chars
            await asyncio.sleep(1.0)  # publication rounds pass; nothing more is logged
            alarms = [r.getMessage() for r in caplog.records if "ALARM" in r.getMessage()]
            assert len(alarms) == 1, alarms
            assert f"trust list of version {grown} is {int(size)} characters" in alarms[0]
            # The last list that fit (perhaps the new issuer, registered before its certificates).
            last = hub.server.feed.latest
            assert last is not None
            assert held.version <= last.version < grown
            assert f"the list of version {last.version}" in alarms[0]

            def holds_last() -> bool:
                taken = replica.server.held
                return taken is not None and taken.text == last.jws

            await until(holds_last, "the replica holds the last list that fit")
            polled = await hub.registry(None).GetTrustList(rpb.GetTrustListRequest())
            assert (polled.version, polled.jws) == (last.version, last.jws)
            await asyncio.sleep(0.5)
            assert holds_last()  # nothing larger reached it

            # A hub that never signed a list within the limit has none to give.
            fresh = trustlist.TrustListSigner(signer_of.key, max_chars=1000)
            hub.gateway.hub.signer = fresh
            with pytest.raises(grpc.aio.AioRpcError) as none:
                await hub.registry(None).GetTrustList(rpb.GetTrustListRequest())
            assert none.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "no trust list within the size limit" in (none.value.details() or "")
            hub.gateway.hub.signer = signer_of

            # Back within the limit (here the limit restored), the next change is published.
            signer_of.max_chars = trustlist.MAX_TRUST_LIST_CHARS
            revoked = next(k for i, k in hub.service.trust.current.keys if i == "eu-dcc-0")
            await asyncio.to_thread(_revoke, hub.files.directory, clock, revoked)
            await until(lambda: in_step(replica, hub), "the replica takes the list that fits")
            assert metrics.registry.get_sample_value("huren_trust_list_over_limit") == 0
            assert (await replica.verify(code)).colour is Colour.GREEN

        # A replica upgraded from before compression restarts from the list it saved then.
        clock.advance(timedelta(seconds=1))
        now = clock()
        current = replica.server.held
        assert current is not None
        older_format = trustlist.sign(
            trustlist.document(current.snapshot, now, now + timedelta(minutes=15)),
            signer,
            deflate=False,
        )
        (state / TRUST_LIST_FILE).write_text(older_format + "\n")
        async with running_replica(hub, state, clock, "127.0.0.1:1") as again:
            assert again.server.held is not None
            assert again.server.held.text == older_format
            assert await again.serving()
            assert (await again.verify(code)).colour is Colour.GREEN
