#!/usr/bin/env python3
"""One process per core: unary ``Verify`` and ``VerifyBatch`` throughput of a replica with 2
workers ÷ the same with 1 worker, measured in one run (issue 15).

A hub (``huren serve``, Hangzhou registered, plaintext as in ``scripts/bench.py``) and two
replicas of it, each the real ``huren serve --replica-of``: one with ``--workers 1``, one with
``--workers 2``. Alternating slices (closed loop) against each: ``Verify`` with 16 calls in
flight, ``VerifyBatch`` of 64 codes with 16 in flight, each call on one of 16 connections (the
kernel spreads *connections* over the workers, so one channel would reach one worker). The
median ratio of the pairs is reported, with the server and load-generator CPU time per call
(from /proc and the generator's own clock) and each worker's share of the server CPU.

Pinning on a 2-core machine: the 1-worker replica on CPU 0, the 2 workers on CPU 0 and CPU 1,
the load generator on CPU 1. There is no third core: with 2 workers the generator shares CPU 1
with worker 1, which is what stops the ratio short of 2 (see ``ceiling`` in the output: the rate
two cores can give when every call costs the server's CPU *and* the generator's). So unary
``Verify`` is measured a second time with h2load (nghttp2's load generator, in C; skipped with a
note when it is not installed: ``make bench`` installs it), whose CPU per call is a sixth of
grpc.aio's; its answers are checked by size (each a verdict's DATA frame, never an error).

Usage: python scripts/bench_workers.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import HUREN, ROOT, _codes, _cpu_seconds, _pin, _Server

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.crypto import Algorithm, PrivateKey

REASON_OK = 1
CONNECTIONS = 16
BATCH = 64


class Replica:
    """``huren serve --replica-of HUB --workers N --insecure`` in its own processes."""

    def __init__(self, hub: _Server, work: Path, workers: int, extra: tuple[str, ...] = ()) -> None:
        hub_state = work / "gateway"
        state = work / f"replica-{workers}-{len(list(work.glob('replica-*')))}"
        state.mkdir(mode=0o700)
        for secret in ("subject.key", "link.key"):
            shutil.copy2(hub_state / secret, state / secret)
        self.proc = subprocess.Popen(
            [
                *HUREN,
                *("serve", "--insecure", "--replica-of", hub.address),
                *("--trust-list-key", str(hub_state / "trustlist-key.jwk")),
                *("--state-dir", str(state), "--listen", "127.0.0.1:0"),
                *("--workers", str(workers), *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if match is None:
            self.stop()
            raise SystemExit(f"the replica with {workers} workers did not start")
        self.address = match.group(1)
        pids = re.search(r"workers, pids ([\d, ]+)\)", line)
        self.pids = [int(p) for p in pids.group(1).split(", ")] if pids else [self.proc.pid]

    def pin(self) -> bool:
        """Worker i on CPU i (mod the CPUs there are)."""
        cpus = len(os.sched_getaffinity(0))
        return all(_pin(pid, i % cpus) for i, pid in enumerate(self.pids))

    def cpu_seconds(self) -> list[float]:
        return [_cpu_seconds(pid) for pid in self.pids]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()


def channels(address: str, count: int = CONNECTIONS) -> list[grpc.aio.Channel]:
    """``count`` channels, each its own TCP connection (no shared subchannel)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    return [grpc.aio.insecure_channel(address, options=options) for _ in range(count)]


async def until_verifying(address: str, code: str, seconds: float = 30.0) -> None:
    """Wait until the replica is SERVING and verifies ``code`` (it has the hub's list)."""
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        stub = pb_grpc.VerifierServiceStub(channel)
        while time.monotonic() < deadline:
            with_list = await health.Check(health_pb2.HealthCheckRequest(service=""))
            if with_list.status == health_pb2.HealthCheckResponse.SERVING:
                answer = await stub.Verify(pb.VerifyRequest(code=code))
                if answer.verdict.reason == REASON_OK:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit(f"the replica at {address} did not verify within {seconds:g} s")


Call = Callable[[Any], Awaitable[int]]


async def _slice(replica: Replica, stubs: list[Any], call: Call, seconds: float) -> dict[str, Any]:
    """One closed-loop slice: one call in flight per stub; units/s and CPU per unit."""
    units = 0
    stop_at = time.perf_counter() + seconds

    async def loop(stub: Any) -> None:
        nonlocal units
        while time.perf_counter() < stop_at:
            done = await call(stub)
            units += done

    cpu0, own0, t0 = replica.cpu_seconds(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop(stub) for stub in stubs))
    wall, own = time.perf_counter() - t0, time.process_time() - own0
    spent = [after - before for after, before in zip(replica.cpu_seconds(), cpu0, strict=True)]
    return {
        "per_s": units / wall,
        "server_us": sum(spent) * 1e6 / units if units else float("nan"),
        "client_us": own * 1e6 / units if units else float("nan"),
        "shares": [s / sum(spent) if sum(spent) else 0.0 for s in spent],
    }


async def compare(
    two: Replica, one: Replica, call: Call, pairs: int, slice_s: float
) -> dict[str, Any]:
    """Throughput of ``two`` ÷ ``one`` in alternating slices (``call`` on each stub)."""
    opened = {r: channels(r.address) for r in (two, one)}
    stubs = {r: [pb_grpc.VerifierServiceStub(c) for c in opened[r]] for r in (two, one)}
    try:
        await _slice(two, stubs[two], call, slice_s / 2)
        await _slice(one, stubs[one], call, slice_s / 2)  # warm-up: every connection made
        results = [
            (
                await _slice(two, stubs[two], call, slice_s),
                await _slice(one, stubs[one], call, slice_s),
            )
            for _ in range(pairs)
        ]
    finally:
        for each in opened.values():
            for channel in each:
                await channel.close(None)
    return _summary(results)


def _summary(results: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """The median ratio of the pairs' rates, and the CPU per unit on each side."""
    ratios = sorted(a["per_s"] / b["per_s"] for a, b in results)

    def median(side: int, key: str) -> float:
        return float(statistics.median(pair[side][key] for pair in results))

    server2, client2 = median(0, "server_us"), median(0, "client_us")
    server1, client1 = median(1, "server_us"), median(1, "client_us")
    one_rate = median(1, "per_s")
    # What two cores can give when each call costs the server's and the generator's CPU time,
    # against the 1-worker rate actually measured.
    ceiling = 2e6 / (server2 + client2)
    return {
        "median": statistics.median(ratios),
        "min": ratios[0],
        "max": ratios[-1],
        "two_per_s": median(0, "per_s"),
        "one_per_s": one_rate,
        "two_server_us": server2,
        "one_server_us": server1,
        "two_client_us": client2,
        "one_client_us": client1,
        "worker_shares": [
            statistics.median(pair[0]["shares"][i] for pair in results) for i in range(2)
        ],
        "ceiling_per_s": ceiling,
        "ceiling_ratio": ceiling / one_rate,
    }


def h2load_slice(replica: Replica, body: Path, seconds: float, cpu: int | None) -> dict[str, Any]:
    """One closed-loop slice of unary ``Verify`` driven by h2load (nghttp2's HTTP/2 load
    generator, in C): ``CONNECTIONS`` connections, one call in flight on each, the same request
    (a gRPC frame of one ``VerifyRequest``) each time. h2load reads no gRPC status, so the caller
    checks the answers' bytes: a verdict's DATA frame, never a trailers-only error."""
    command = [
        *("h2load", "-c", str(CONNECTIONS), "-m", "1", "-D", f"{round(seconds * 1000)}ms"),
        *("-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers"),
        f"http://{replica.address}/huren.v1.VerifierService/Verify",
    ]
    before_children = os.times()
    cpu0, t0 = replica.cpu_seconds(), time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    wall = time.perf_counter() - t0
    after_children = os.times()
    spent = [after - before for after, before in zip(replica.cpu_seconds(), cpu0, strict=True)]
    out = done.stdout
    requests = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    finished = re.search(r"finished in ([\d.]+)(ms|s),", out)
    data = re.search(r"\((\d+)\) data", out)
    if not (requests and finished and data):
        raise SystemExit(f"h2load printed what this script cannot read:\n{out}")
    calls, data_bytes = int(requests.group(1)), int(data.group(1))
    duration = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    generator = (after_children.children_user + after_children.children_system) - (
        before_children.children_user + before_children.children_system
    )
    return {
        "per_s": calls / duration,
        "server_us": sum(spent) * 1e6 / calls if calls else float("nan"),
        "client_us": generator * 1e6 / calls if calls else float("nan"),
        "shares": [x / sum(spent) if sum(spent) else 0.0 for x in spent],
        "data_per_call": data_bytes / calls if calls else 0.0,
        "wall": wall,
    }


def compare_h2load(
    two: Replica, one: Replica, body: Path, answer_bytes: int, pairs: int, slice_s: float
) -> dict[str, Any]:
    """``compare`` for unary ``Verify`` with h2load as the generator, pinned to CPU 1."""
    cpu = 1 if len(os.sched_getaffinity(0)) > 1 else None
    h2load_slice(two, body, slice_s / 2, cpu)
    h2load_slice(one, body, slice_s / 2, cpu)
    results = [
        (h2load_slice(two, body, slice_s, cpu), h2load_slice(one, body, slice_s, cpu))
        for _ in range(pairs)
    ]
    for pair in results:
        for side in pair:
            # Every answer a verdict of the expected size (a gRPC error has no DATA frame):
            # the calls did the work they were timed for.
            if abs(side["data_per_call"] - answer_bytes) > 8:
                raise SystemExit(
                    f"h2load got {side['data_per_call']:.1f} bytes of answer per call, not the"
                    f" {answer_bytes} of a verdict: the calls failed"
                )
    return _summary(results)


async def measure(
    two: Replica, one: Replica, codes: list[str], pairs: int, slice_s: float
) -> dict[str, Any]:
    requests = [pb.VerifyRequest(code=c) for c in codes]
    batch = pb.VerifyBatchRequest(codes=codes[:BATCH])
    counter = iter(range(1 << 62))

    async def verify(stub: Any) -> int:
        answer = await stub.Verify(requests[next(counter) % len(requests)])
        assert answer.verdict.reason == REASON_OK  # real work
        return 1

    async def verify_batch(stub: Any) -> int:
        answer = await stub.VerifyBatch(batch)
        return len(answer.verdicts)

    for replica in (two, one):
        await until_verifying(replica.address, codes[1])
    results = {
        "verify": await compare(two, one, verify, pairs, slice_s),
        "batch": await compare(two, one, verify_batch, pairs, slice_s),
    }
    if shutil.which("h2load"):
        async with grpc.aio.insecure_channel(one.address) as channel:
            answer = await pb_grpc.VerifierServiceStub(channel).Verify(requests[1])
        assert answer.verdict.reason == REASON_OK
        message = requests[1].SerializeToString()
        with tempfile.NamedTemporaryFile(prefix="huren-verify-", suffix=".grpc") as body:
            body.write(b"\0" + len(message).to_bytes(4, "big") + message)
            body.flush()
            results["verify_h2load"] = compare_h2load(
                two, one, Path(body.name), 5 + answer.ByteSize(), pairs, slice_s
            )
    return results


def _line(name: str, r: dict[str, Any], unit: str) -> str:
    return (
        f"  {name:<11} 2 workers ÷ 1 worker {r['median']:.3f}  (min {r['min']:.3f}, max"
        f" {r['max']:.3f}; {r['two_per_s']:,.0f} vs {r['one_per_s']:,.0f} {unit}/s; server"
        f" {r['two_server_us']:.0f} vs {r['one_server_us']:.0f} CPU-µs, generator"
        f" {r['two_client_us']:.0f} vs {r['one_client_us']:.0f} CPU-µs per {unit[:-1]};"
        f" workers' shares {r['worker_shares'][0]:.2f}/{r['worker_shares'][1]:.2f};"
        f" two-core ceiling {r['ceiling_per_s']:,.0f}/s = {r['ceiling_ratio']:.2f}x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short slices (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    pairs, slice_s = (2, 0.4) if args.quick else (7, 1.5)
    key = PrivateKey.generate(Algorithm.ES256)
    kid = "bench-1"
    codes = _codes(key, kid, 256)
    every_cpu = os.sched_getaffinity(0)
    results: dict[str, Any] = {"cpus": len(every_cpu), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="huren-bench-workers-") as tmp:
        hub = _Server(Path(tmp), key, kid)  # pins the hub to CPU 0 and this process to CPU 1
        os.sched_setaffinity(0, every_cpu)  # the replicas' processes inherit it
        started: list[Replica] = []
        try:
            one = Replica(hub, Path(tmp), 1)
            started.append(one)
            two = Replica(hub, Path(tmp), 2)
            started.append(two)
            # The 1-worker replica on CPU 0, the two workers on CPU 0 and 1, this generator on 1.
            results["pinned"] = one.pin() and two.pin() and _pin(os.getpid(), 1)
            results.update(asyncio.run(measure(two, one, codes, pairs, slice_s)))
        finally:
            for replica in started:
                replica.stop()
            hub.stop()
    results["load_after"] = os.getloadavg()[0]
    pin = (
        "1 worker on cpu0; 2 workers on cpu0 and cpu1; generator on cpu1"
        if results["pinned"]
        else "not pinned"
    )
    print(
        f"huren workers bench ({results['cpus']} CPUs; {pin}; {CONNECTIONS} connections;"
        f" load average {results['load_before']:.1f} before, {results['load_after']:.1f} after)"
    )
    print(_line("Verify", results["verify"], "calls"))
    print(_line("VerifyBatch", results["batch"], "codes"))
    if "verify_h2load" in results:
        print(_line("Verify", results["verify_h2load"], "calls") + "  [generator: h2load]")
    else:
        print("  (h2load not found: install nghttp2-client for the C load generator's run)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
