#!/usr/bin/env python3
"""Benchmarks, reported as ratios against floors measured in the same run (never absolute goals).

1. In-process: ``verify_code`` on a Hangzhou code (compact JWS, ES256, JSON) against the raw ES256
   verify of the same signing input with pyca/cryptography and a cached key object, measured in
   alternating CPU-time slices (see ../shared/docs/performance.md, R1).
2. Over gRPC, against one gateway server process (the real ``huren serve``, pinned to one CPU
   when the machine has two): ``Verify`` RPCs against the empty-RPC floor on the same server and
   channel (the standard ``grpc.health.v1.Health/Check``), alternating slices at N concurrent calls
   (R2); and ``VerifyBatch`` codes/s against the same floor (R3-style: how far batching moves
   verification from the transport floor). Server CPU time per call comes from /proc.

3. EU DCC, in process: ``verify_code`` on ``HC1:`` codes (base45, zlib, COSE_Sign1 ES256, CWT,
   colour rules) against the raw ES256 verify of the same Sig_structure (R4); and the ``cwt``
   library (the maintained Python peer) on the same codes against the same floor, measured in its
   own virtualenv (``.venv-peer``, as cwt needs cbor2 < 6). Their quotient compares the gateway
   with the peer on equal terms (P1).

Usage: python scripts/bench.py [--quick] [--json FILE] [--peer-python PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.clock import system_clock
from gateway.codecs import base64url, cose, textform
from gateway.crypto import Algorithm, PrivateKey, pki
from gateway.hub import initialise, open_hub
from gateway.identity import IdentityKeys, resident_id_check_char
from gateway.limits import Limits
from gateway.model import IssuerId, KeyId, ProfileId, RegionCode
from gateway.profiles import load_profile
from gateway.registry import Issuer, IssuerKey, TrustState
from gateway.registry.admission import certificate_key, offers_from_file
from gateway.registry.authority import Actor, Role
from gateway.registry.commands import CreateRegion, RegisterIssuer
from gateway.registry.model import Region
from gateway.verify import verify_code
from regions.common.spec import Holder, Level, Secrets
from regions.hangzhou import SPEC, Hangzhou

ROOT = Path(__file__).resolve().parent.parent
HUREN = [sys.executable, "-m", "gateway"]


_USABLE = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
"""The CPUs this benchmark may use, read before it pins itself to one of them."""


def _pin(pid: int, cpu: int) -> bool:
    """Every thread of process ``pid`` on ``cpu`` (an affinity is a thread's own: setting the
    process id's sets only its first thread, and gRPC's threads, already started, would go on
    running on any core; threads started later inherit their creator's)."""
    try:
        if len(_USABLE) < 2:
            return False
        for thread in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setaffinity(int(thread), {cpu})
        return True
    except (AttributeError, OSError):
        return False


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _codes(key: PrivateKey, kid: str, count: int) -> list[str]:
    """Hangzhou codes for ``count`` different people, mostly green, minted as the region does."""
    now, region, secrets = system_clock(), Hangzhou(), Secrets(key, kid)
    codes = []
    for i in range(count):
        first17 = f"330106199003{i % 28 + 1:02d}{i % 1000:03d}"
        holder = Holder(first17 + resident_id_check_char(first17), "测试")
        level = Level.RED if i % 5 == 0 else Level.GREEN
        codes.append(region.issue(holder, SPEC.states[level], now, secrets, f"bench-{i}").code)
    return codes


# ----------------------------------------------------------------------------- in process


def interleaved_ratio(
    fa: Callable[[], object], fb: Callable[[], object], pairs: int, slice_s: float
) -> dict[str, float]:
    """rate(fa) / rate(fb) in alternating CPU-time slices; median, min and max of the pairs."""

    def rate(f: Callable[[], object]) -> float:
        n, start = 0, time.thread_time()
        while True:
            for _ in range(10):
                f()
            n += 10
            spent = time.thread_time() - start
            if spent >= slice_s:
                return n / spent

    rate(fa), rate(fb)  # warm-up
    rates = [(rate(fa), rate(fb)) for _ in range(pairs)]
    ratios = sorted(a / b for a, b in rates)
    return {
        "median": statistics.median(ratios),
        "min": ratios[0],
        "max": ratios[-1],
        "a_per_s": statistics.median(a for a, _ in rates),
        "b_per_s": statistics.median(b for _, b in rates),
    }


def bench_in_process(pairs: int, slice_s: float) -> dict[str, float]:
    key = PrivateKey.generate(Algorithm.ES256)
    kid = KeyId("bench-1")
    state = TrustState()
    profile = load_profile(SPEC.profile_text())
    state.add_profile(profile)
    spec = SPEC
    state.add_region(Region(spec.code, spec.display_name))
    state.add_issuer(Issuer(spec.issuer, spec.code, spec.display_name, ProfileId(profile.id), 1))
    state.add_key(IssuerKey(spec.issuer, kid, key.public_key()))
    trust, limits = state.snapshot(), Limits()
    identities = IdentityKeys(os.urandom(32), os.urandom(32))
    code = _codes(key, kid, 1)[0]
    now = system_clock()
    assert verify_code(code, trust=trust, now=now, limits=limits, identities=identities).code

    # The floor: pyca/cryptography's ES256 verify of the same bytes with a cached key object.
    head, body, sig = code.split(".")
    signing_input = f"{head}.{body}".encode()
    raw = base64url.decode(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = serialization.load_der_public_key(key.public_key().spki_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    algorithm = ec.ECDSA(hashes.SHA256())

    def gateway() -> object:
        return verify_code(code, trust=trust, now=now, limits=limits, identities=identities)

    def floor() -> None:
        public.verify(der, signing_input, algorithm)

    return interleaved_ratio(gateway, floor, pairs, slice_s)


# ----------------------------------------------------------------------------- over gRPC


class _Server:
    """``huren serve`` in its own process, with Hangzhou registered."""

    def __init__(self, work: Path, key: PrivateKey, kid: str, extra: tuple[str, ...] = ()) -> None:
        state = work / "gateway"
        local = Actor(Role.LOCAL, "bench")
        initialise(state, local)
        spec = SPEC
        jwks = json.dumps({"keys": [{**key.public_key().jwk(), "kid": kid}]}).encode()
        offers = offers_from_file(jwks, [key], issuer=spec.issuer, request_id="bench")
        with open_hub(state) as hub:
            hub.registrar.submit(local, "region", CreateRegion(spec.code, spec.display_name))
            registration = RegisterIssuer(
                spec.issuer, spec.code, spec.display_name, spec.profile_text(), tuple(offers)
            )
            hub.registrar.submit(local, "bench", registration)
        self.proc = subprocess.Popen(
            # Plaintext, like the reference floors in ../shared/docs/performance.md.
            [
                *HUREN,
                "serve",
                "--insecure",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                str(state),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        match = re.search(r"listening on (\S+)", self.proc.stdout.readline())
        if match is None:
            self.stop()
            raise SystemExit("the gateway did not start")
        self.address = match.group(1)
        self.pinned = _pin(self.proc.pid, 0) and _pin(os.getpid(), 1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()


async def _interleaved_rpc(
    a: Callable[[], Awaitable[int]],
    b: Callable[[], Awaitable[int]],
    *,
    concurrency: int,
    pairs: int,
    slice_s: float,
    server_pid: int,
) -> dict[str, float]:
    """Alternate slices of workload a and b at ``concurrency`` calls in flight.

    Each callable performs one call and returns how many units (codes) it covered. Returns the
    median ratio of unit rates and the server CPU-µs per unit of each side.
    """

    async def run(call: Callable[[], Awaitable[int]], seconds: float) -> tuple[float, float]:
        units = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal units
            while time.perf_counter() < stop_at:
                done = await call()  # not `units += await ...`: that reads units before awaiting
                units += done

        cpu0, t0 = _cpu_seconds(server_pid), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(server_pid) - cpu0
        return units / wall, (cpu * 1e6 / units if units else float("nan"))

    await run(a, slice_s / 2)
    await run(b, slice_s / 2)  # warm-up
    results = [(await run(a, slice_s), await run(b, slice_s)) for _ in range(pairs)]
    ratios = sorted(ra[0] / rb[0] for ra, rb in results)
    return {
        "median": statistics.median(ratios),
        "min": ratios[0],
        "max": ratios[-1],
        "a_per_s": statistics.median(ra[0] for ra, _ in results),
        "b_per_s": statistics.median(rb[0] for _, rb in results),
        "a_server_us": statistics.median(ra[1] for ra, _ in results),
        "b_server_us": statistics.median(rb[1] for _, rb in results),
    }


async def bench_grpc(
    address: str, codes: list[str], server_pid: int, pairs: int, slice_s: float, batch: int
) -> dict[str, dict[str, float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.VerifierServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="")
        requests = [pb.VerifyRequest(code=c) for c in codes]
        batch_request = pb.VerifyBatchRequest(codes=codes[:batch])
        counter = iter(range(1 << 62))

        async def empty() -> int:
            await health.Check(check)
            return 1

        async def verify() -> int:
            response = await stub.Verify(requests[next(counter) % len(requests)])
            assert response.verdict.reason == 1  # REASON_OK: the bench measures real work
            return 1

        async def verify_batch() -> int:
            response = await stub.VerifyBatch(batch_request)
            return len(response.verdicts)

        common = {"pairs": pairs, "slice_s": slice_s, "server_pid": server_pid}
        unary = await _interleaved_rpc(verify, empty, concurrency=16, **common)  # type: ignore[arg-type]
        batched = await _interleaved_rpc(verify_batch, empty, concurrency=4, **common)  # type: ignore[arg-type]
    return {"verify_vs_empty": unary, "batch_vs_empty": batched}


def _dcc_issuer() -> tuple[PrivateKey, bytes]:
    """A signer key and its self-signed certificate (PEM), as a country's DSC would be."""
    key = PrivateKey.generate(Algorithm.ES256)
    raw = serialization.load_pem_private_key(key.pem(), None)
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    now = system_clock()
    certificate = pki.self_signed(
        raw,
        "huren bench DSC",
        not_before=now - timedelta(days=30),
        not_after=now + timedelta(days=365),
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def _dcc_codes(key: PrivateKey, certificate: bytes, count: int) -> list[str]:
    """HC1: codes for ``count`` people: a complete vaccination series each."""
    now = int(system_clock().timestamp())
    kid = base64.b64decode(certificate_key(IssuerId("bench"), certificate).kid)
    codes = []
    for i in range(count):
        hcert = {
            "ver": "1.3.0",
            "nam": {"fn": "Muster", "fnt": "MUSTER", "gn": f"Erika{i}", "gnt": f"ERIKA{i}"},
            "dob": "1964-08-12",
            "v": [{"tg": "840539006", "dn": 2, "sd": 2, "dt": "2021-05-29", "co": "XX"}],
        }
        payload = cbor2.dumps({1: "XX", 4: now + 86400 * 180, 6: now - 3600, -260: {1: hcert}})
        codes.append(textform.encode("HC1:", cose.sign(payload, key, kid)))
    return codes


def bench_dcc(pairs: int, slice_s: float, peer_python: Path | None) -> dict[str, Any]:
    key, certificate = _dcc_issuer()
    profile = load_profile((ROOT / "gateway" / "profiles" / "formats" / "eu-dcc.toml").read_text())
    state = TrustState()
    state.add_profile(profile)
    issuer = Issuer(IssuerId("eu-dcc-xx"), RegionCode("XX"), "bench", profile.id, profile.version)
    state.add_region(Region(issuer.region, str(issuer.region)))
    state.add_issuer(issuer)
    state.add_key(certificate_key(issuer.id, certificate))
    trust, limits = state.snapshot(), Limits()
    identities = IdentityKeys(os.urandom(32), os.urandom(32))
    codes = _dcc_codes(key, certificate, 4)
    code, now = codes[0], system_clock()
    verdict = verify_code(code, trust=trust, now=now, limits=limits, identities=identities)
    assert verdict.code is not None, verdict.detail

    message = cose.parse(textform.decode(code, "HC1:", limits), limits)
    to_be_signed, raw = message.to_be_signed(), message.signature
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = serialization.load_der_public_key(key.public_key().spki_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    algorithm = ec.ECDSA(hashes.SHA256())

    def gateway() -> object:
        return verify_code(code, trust=trust, now=now, limits=limits, identities=identities)

    def floor() -> object:
        public.verify(der, to_be_signed, algorithm)
        return None

    result: dict[str, Any] = {"in_process": interleaved_ratio(gateway, floor, pairs, slice_s)}
    if peer_python is None or not peer_python.exists():
        result["peer"] = None
        return result
    with tempfile.TemporaryDirectory(prefix="huren-bench-peer-") as tmp:
        source = Path(tmp) / "codes.json"
        source.write_text(json.dumps({"codes": codes, "certificate_pem": certificate.decode()}))
        run = subprocess.run(
            [
                *(str(peer_python), str(ROOT / "scripts" / "bench_peer_cwt.py")),
                *(str(source), str(pairs), str(slice_s)),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    result["peer"] = json.loads(run.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short slices (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=ROOT / ".venv-peer" / "bin" / "python",
        help="the interpreter of the cwt peer's virtualenv (skipped if it does not exist)",
    )
    args = parser.parse_args()
    pairs, slice_s = (2, 0.2) if args.quick else (7, 1.0)
    batch = 64

    results: dict[str, Any] = {"cpus": len(os.sched_getaffinity(0))}
    results["in_process"] = bench_in_process(pairs, slice_s / 4 if args.quick else 0.25)
    results["dcc"] = bench_dcc(pairs, slice_s / 4 if args.quick else 0.25, args.peer_python)
    key = PrivateKey.generate(Algorithm.ES256)
    kid = "bench-1"
    codes = _codes(key, kid, 256)
    with tempfile.TemporaryDirectory(prefix="huren-bench-") as tmp:
        server = _Server(Path(tmp), key, kid)
        try:
            results["pinned"] = server.pinned
            results.update(
                asyncio.run(
                    bench_grpc(server.address, codes, server.proc.pid, pairs, slice_s, batch)
                )
            )
        finally:
            server.stop()

    r1, r2, r3 = results["in_process"], results["verify_vs_empty"], results["batch_vs_empty"]
    pin = "server on cpu0, client on cpu1" if results["pinned"] else "not pinned"
    print(f"huren bench ({results['cpus']} CPUs; {pin}); ratios are medians of interleaved pairs")
    print(
        f"  R1 in-process verify ÷ raw ES256 verify      {r1['median']:.3f}"
        f"  (min {r1['min']:.3f}, max {r1['max']:.3f}; {r1['a_per_s']:,.0f} codes/s vs"
        f" {r1['b_per_s']:,.0f} verifies/s)"
    )
    print(
        f"  R2 Verify RPC/s ÷ empty RPC/s (N=16)         {r2['median']:.3f}"
        f"  (min {r2['min']:.3f}, max {r2['max']:.3f}; {r2['a_per_s']:,.0f} vs"
        f" {r2['b_per_s']:,.0f} RPC/s; server {r2['a_server_us']:.0f} vs"
        f" {r2['b_server_us']:.0f} CPU-µs per RPC)"
    )
    print(
        f"  R3 VerifyBatch codes/s ÷ empty RPC/s ({batch}/call) {r3['median']:.3f}"
        f"  (min {r3['min']:.3f}, max {r3['max']:.3f}; {r3['a_per_s']:,.0f} codes/s vs"
        f" {r3['b_per_s']:,.0f} RPC/s; server {r3['a_server_us']:.0f} CPU-µs per code)"
    )
    print(
        f"     VerifyBatch codes/s ÷ in-process codes/s     {r3['a_per_s'] / r1['a_per_s']:.3f}"
        "  (how close batching gets to the in-process rate)"
    )
    r4, peer = results["dcc"]["in_process"], results["dcc"]["peer"]
    print(
        f"  R4 EU DCC in-process verify ÷ raw ES256      {r4['median']:.3f}"
        f"  (min {r4['min']:.3f}, max {r4['max']:.3f}; {r4['a_per_s']:,.0f} codes/s vs"
        f" {r4['b_per_s']:,.0f} verifies/s)"
    )
    if peer is None:
        print("  P1 peer (cwt) not measured: run `make bench` (it sets up .venv-peer)")
    else:
        print(
            f"     cwt {peer['cwt']} decode ÷ raw ES256 (its own venv) {peer['median']:.3f}"
            f"  (min {peer['min']:.3f}, max {peer['max']:.3f}; {peer['a_per_s']:,.0f} codes/s vs"
            f" {peer['b_per_s']:,.0f} verifies/s)"
        )
        quotient = r4["median"] / peer["median"]
        print(f"  P1 huren ÷ cwt on the same codes (each ÷ its floor) {quotient:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
