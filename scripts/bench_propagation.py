#!/usr/bin/env python3
"""How fast the hub's trust reaches its verifier replicas (issue 15), on loopback.

A hub (``huren serve`` with TLS, a SQLite registry holding Hangzhou with one key per
revocation to come and Hangzhou's operator pinned) and N replica processes (``huren serve
--replica-of``), each replica asked by a client of its own without pause (every call is a real
``Verify``, which is also the load the replicas carry while the trust changes):

- **propagation**, R times: a key revoked by Hangzhou's operator through the hub's
  RegistryService (mutual TLS, as ``huren operator revoke-key`` does); for each replica, the
  seconds from sending the revocation to that replica's first ``ERR_KEY_REVOKED`` for a code
  the key signed. Reported: p50 and max over every (revocation, replica), and the hub's own
  answer time.
- **recovery**, S times: the hub stopped (SIGTERM) until every replica answers
  ``ERR_TRUST_STALE`` (``--trust-fresh-for`` is short here), then started again on its state
  and port; for each replica, the seconds from the new hub's first line (it serves) to that
  replica's first GREEN. Reported: p50 and max. It is mostly the replicas' reconnection backoff
  (0.25 s doubling to 5 s, full jitter), which has reached its cap by the time they are stale.

Absolute times, not ratios: they are correctness bounds of the deployment (the issue's "about a
second"), not throughput, and they come from waits (publication, backoff) far more than from
CPU. Usage: python scripts/bench_propagation.py [--quick] [--replicas N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from gateway._generated.huren.v1 import verifier_pb2 as pb  # noqa: E402
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc  # noqa: E402
from gateway.cli.pki import create_development_pki  # noqa: E402
from gateway.clients import RegistryClient, TlsCredentials, new_request_id  # noqa: E402
from gateway.clock import system_clock  # noqa: E402
from gateway.crypto import PrivateKey  # noqa: E402
from gateway.hub import initialise, open_hub  # noqa: E402
from gateway.identity import resident_id_check_char  # noqa: E402
from gateway.model import Colour, Reason  # noqa: E402
from gateway.registry.admission import offers_from_file  # noqa: E402
from gateway.registry.authority import Actor, Role  # noqa: E402
from gateway.registry.commands import (  # noqa: E402
    CreateOperator,
    CreateRegion,
    RegisterIssuer,
    RevokeKey,
)
from gateway.wire import verdict_from_pb  # noqa: E402
from regions.common.keys import key_id  # noqa: E402
from regions.common.spec import Holder, Secrets  # noqa: E402
from regions.hangzhou import SPEC, Hangzhou  # noqa: E402

HUREN = (sys.executable, "-m", "gateway")
OPERATOR = "hangzhou-ops"
FRESH_FOR = 3
"""The hub's ``--trust-fresh-for`` in seconds: short, so that a stopped hub's replicas go stale
within seconds (recovery is measured from stale)."""
TIMEOUT = 60.0


@dataclass(frozen=True)
class World:
    pki: Path
    state: Path
    kids: list[str]
    codes: list[str]
    """A green code of each key, in the order of ``kids``; key 0 is never revoked."""


def provision(work: Path, revocations: int, replicas: int) -> World:
    """A PKI, a hub state with Hangzhou's ``revocations + 1`` keys and operator, and
    ``replicas`` replica folders holding the hub's identity secrets."""
    pki, state = work / "pki", work / "hub"
    create_development_pki(pki)
    local = Actor(Role.LOCAL, "bench")
    initialise(state, local)
    keys = [PrivateKey.generate(SPEC.algorithm) for _ in range(revocations + 1)]
    kids = [key_id("hangzhou", key) for key in keys]
    jwks = json.dumps(
        {"keys": [{**k.public_key().jwk(), "kid": kid} for k, kid in zip(keys, kids, strict=True)]}
    ).encode()
    offers = offers_from_file(jwks, keys, issuer=SPEC.issuer, request_id="issuer")
    operator = (pki / "operators" / f"{OPERATOR}.pem").read_bytes()
    with open_hub(state) as hub:
        submit = hub.registrar.submit
        submit(local, "region", CreateRegion(SPEC.code, SPEC.display_name))
        submit(
            local,
            "issuer",
            RegisterIssuer(
                SPEC.issuer, SPEC.code, SPEC.display_name, SPEC.profile_text(), tuple(offers)
            ),
        )
        submit(local, "operator", CreateOperator(OPERATOR, SPEC.code, operator))
    for n in range(replicas):
        folder = work / f"replica-{n}"
        folder.mkdir(mode=0o700)
        for secret in ("subject.key", "link.key"):
            (folder / secret).write_bytes((state / secret).read_bytes())
            os.chmod(folder / secret, 0o600)
    first17 = "33010619900307122"
    holder = Holder(first17 + resident_id_check_char(first17), "测试")
    codes = [
        Hangzhou().issue(holder, "绿码", system_clock(), Secrets(key, kid), "bench").code
        for key, kid in zip(keys, kids, strict=True)
    ]
    return World(pki, state, kids, codes)


class Process:
    """A ``huren serve`` process; its first line says where it listens."""

    def __init__(self, *args: str) -> None:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self.proc = subprocess.Popen(
            [*HUREN, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline()
        self.ready_at = time.monotonic()
        found = re.search(r"listening on (\S+) .*?(?:registry on (\S+)\))?$", self.line.strip())
        if found is None:
            self.stop()
            self.errors.seek(0)
            raise SystemExit(f"huren serve did not start: {self.errors.read().decode()}")
        self.address, self.registry = found.group(1), found.group(2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()


@contextmanager
def serving(*args: str) -> Iterator[Process]:
    process = Process(*args)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.stop()


class Probe:
    """A client of one replica alone."""

    def __init__(self, address: str, pki: Path) -> None:
        self.channel = grpc.secure_channel(address, TlsCredentials.from_pki(pki).channel())
        self.stub = pb_grpc.VerifierServiceStub(self.channel)

    def until(self, code: str, wanted: Reason | Colour) -> float:
        """The monotonic time at which this replica first answered ``code`` with ``wanted``
        (a reason or a colour), taken when the answering call was sent."""
        deadline = time.monotonic() + TIMEOUT
        request = pb.VerifyRequest(code=code)
        while time.monotonic() < deadline:
            sent = time.monotonic()
            answer = self.stub.Verify(request, timeout=10, wait_for_ready=True)
            verdict = verdict_from_pb(answer.verdict)
            if wanted in (verdict.reason, verdict.colour):
                return sent
        raise SystemExit(f"no {wanted.name} within {TIMEOUT} s")


def propagation(hub: Process, probes: list[Probe], world: World, count: int) -> dict[str, Any]:
    """Seconds from revoking each of ``count`` keys to each replica's first refusal."""
    delays: list[list[float]] = []
    answers: list[float] = []
    credentials = TlsCredentials.from_pki(world.pki, OPERATOR)
    assert hub.registry is not None
    with (
        RegistryClient(hub.registry, credentials) as registry,
        ThreadPoolExecutor(len(probes)) as pool,
    ):
        for n in range(1, count + 1):
            code = world.codes[n]
            refused = [pool.submit(p.until, code, Reason.ERR_KEY_REVOKED) for p in probes]
            time.sleep(0.2)  # every replica is being asked
            sent = time.monotonic()
            registry.submit(new_request_id(), RevokeKey(SPEC.issuer, world.kids[n], "bench"))
            answers.append(time.monotonic() - sent)
            delays.append([future.result() - sent for future in refused])
            time.sleep(0.3)
    every = sorted(d for row in delays for d in row)
    return {
        "revocations": count,
        "p50_s": statistics.median(every),
        "max_s": every[-1],
        "last_replica_p50_s": statistics.median(max(row) for row in delays),
        "hub_answer_p50_s": statistics.median(answers),
        "delays_s": delays,
    }


def recovery(
    hub: Process,
    probes: list[Probe],
    world: World,
    hub_args: tuple[str, ...],
    count: int,
    outage: float,
) -> tuple[Process, dict[str, Any]]:
    """Seconds from the hub serving again to each replica's first GREEN, ``count`` times."""
    delays: list[list[float]] = []
    outages: list[float] = []
    host, registry = hub.address, hub.registry
    assert registry is not None
    listen = ("--listen", host, "--registry-listen", registry)
    with ThreadPoolExecutor(len(probes)) as pool:
        for _ in range(count):
            stopped = time.monotonic()
            hub.stop()
            stale = [pool.submit(p.until, world.codes[0], Reason.ERR_TRUST_STALE) for p in probes]
            for future in stale:
                future.result()
            time.sleep(max(0.5, outage - (time.monotonic() - stopped)))
            green = [pool.submit(p.until, world.codes[0], Colour.GREEN) for p in probes]
            hub = Process(*hub_args, *listen)
            delays.append([max(0.0, future.result() - hub.ready_at) for future in green])
            outages.append(hub.ready_at - stopped)
    every = sorted(d for row in delays for d in row)
    return hub, {
        "restarts": count,
        "p50_s": statistics.median(every),
        "max_s": every[-1],
        "outage_p50_s": statistics.median(outages),
        "delays_s": delays,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 revocations, 1 restart")
    parser.add_argument("--replicas", type=int, default=3, help="replica processes (default 3)")
    parser.add_argument("--revocations", type=int, default=10, help="keys revoked (default 10)")
    parser.add_argument("--restarts", type=int, default=3, help="hub restarts (default 3)")
    parser.add_argument(
        "--outage",
        type=float,
        default=0.0,
        help="seconds the hub stays down (at least until the replicas are stale)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    if args.quick:
        args.revocations, args.restarts = 2, 1
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        work = Path(folder)
        world = provision(work, args.revocations, args.replicas)
        pki, state = world.pki, world.state
        hub_args = (
            *("--state-dir", str(state), "--tls-dir", str(pki)),
            *("--trust-fresh-for", f"{FRESH_FOR}s"),
        )
        hub = Process(*hub_args, "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0")
        replica_args = [
            (
                *("--replica-of", hub.address, "--listen", "127.0.0.1:0", "--workers", "1"),
                *("--trust-list-key", str(state / "trustlist-key.jwk")),
                *("--state-dir", str(work / f"replica-{n}"), "--tls-dir", str(pki)),
            )
            for n in range(args.replicas)
        ]
        with ThreadPoolExecutor(args.replicas) as pool:
            replicas = list(pool.map(lambda a: stack.enter_context(serving(*a)), replica_args))
        probes = [Probe(r.address, pki) for r in replicas]
        for probe in probes:
            probe.until(world.codes[0], Colour.GREEN)
        try:
            spread = propagation(hub, probes, world, args.revocations)
            hub, back = recovery(hub, probes, world, hub_args, args.restarts, args.outage)
        finally:
            if hub.proc.poll() is None:
                hub.stop()
            for probe in probes:
                probe.channel.close()
    cpus = len(os.sched_getaffinity(0))
    print(f"{args.replicas} replicas on loopback, {cpus} CPUs, --trust-fresh-for {FRESH_FOR}s")
    print(
        f"revocation to each replica's first refusal ({spread['revocations']} revocations): "
        f"p50 {spread['p50_s'] * 1000:.0f} ms, max {spread['max_s'] * 1000:.0f} ms; "
        f"to the last replica p50 {spread['last_replica_p50_s'] * 1000:.0f} ms; "
        f"the hub answers the operator in {spread['hub_answer_p50_s'] * 1000:.0f} ms (p50)"
    )
    print(
        f"recovery after a hub restart ({back['restarts']} restarts, "
        f"outage p50 {back['outage_p50_s']:.1f} s): from the hub serving to each replica's "
        f"first GREEN p50 {back['p50_s']:.2f} s, max {back['max_s']:.2f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"propagation": spread, "recovery": back, "cpus": cpus}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
