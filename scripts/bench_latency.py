#!/usr/bin/env python3
"""Latency of unary ``Verify`` against the empty RPC, and the gateway under 3x overload.

One real ``huren serve`` in its own process (pinned to CPU 0, the load generator to CPU 1 when
the machine has two), Hangzhou registered, plaintext as in ``scripts/bench.py``:

1. **Latency at 1 and 16 calls in flight** (closed loop): alternating slices of ``Verify`` and
   of the empty RPC (``grpc.health.v1.Health/Check``) on the same server and channel; p50 and
   p99 of each, and their ratios (Verify ÷ empty), measured in the same run.
2. **Capacity**: the ``Verify`` rate at 16 in flight (the median slice of part 1).
3. **Overload**: open-loop arrivals (a Poisson process, never waiting for answers) at three
   times that capacity for a few seconds. Every call carries a 10 s deadline; each ends
   answered (its verdict checked), refused ``RESOURCE_EXHAUSTED`` (with the gateway's
   ``ErrorInfo`` or without), or otherwise (counted as a failure). Latency is taken from each
   call's *scheduled* start, so a late load generator cannot hide queueing; its own lag is
   reported beside. The p99 of admitted calls in the first and last third of the window, and
   the server's resident memory before and after, show whether a queue grows.

Goals (issue 14): refused calls' p99 < 50 ms; admitted calls' p99 < 250 ms; no unbounded queue.
Figures are printed and, with ``--json FILE``, written; nothing is asserted.

With ``--workers N`` the server measured is a replica of that hub with N worker processes
(``huren serve --replica-of --workers N``, worker i pinned to CPU i, the generator still on
CPU 1) and the load is spread over 16 connections (the kernel gives each connection to one
worker); the server's memory is the workers' together (issue 15).

With ``--front`` the calls go through the front (``huren front --run``: nginx refusing calls
past its bound in C, docs/front.md) in front of the gateway, nginx pinned to CPU 0 with the
server; the capacity is measured through it, and the server's memory is the gateway's and
nginx's together.

``--rate R`` offers R calls/s in part 3 instead (e.g. three times one worker's capacity, offered
to two workers).

Usage: python scripts/bench_latency.py [--quick] [--json FILE] [--workers N | --front]
    [--rate R] [--serve-option=--OPTION=VALUE ...] [--front-option=--OPTION=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
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

from bench import HUREN, ROOT, _codes, _pin, _Server
from bench_workers import CONNECTIONS, Replica, channels, until_verifying

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.crypto import Algorithm, PrivateKey

REASON_OK = 1
DEADLINE_S = 10.0
REFUSED_P99_GOAL_MS = 50.0
ADMITTED_P99_GOAL_MS = 250.0
OVERLOAD = 3.0


def _percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` by the nearest rank; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _closed_loop(
    call: Callable[[], Awaitable[None]], concurrency: int, seconds: float
) -> tuple[list[float], float]:
    """Latencies (ms) of every call made by ``concurrency`` workers in ``seconds``; calls/s."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - start) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, len(latencies) / (time.perf_counter() - started)


async def latency(
    verify: Callable[[], Awaitable[None]],
    empty: Callable[[], Awaitable[None]],
    concurrency: int,
    pairs: int,
    slice_s: float,
) -> dict[str, float]:
    """p50/p99 of Verify and of the empty RPC in alternating slices, and their ratios."""
    await _closed_loop(verify, concurrency, slice_s / 2)
    await _closed_loop(empty, concurrency, slice_s / 2)  # warm-up
    lat: dict[str, list[float]] = {"verify": [], "empty": []}
    rates: dict[str, list[float]] = {"verify": [], "empty": []}
    for _ in range(pairs):
        for name, call in (("verify", verify), ("empty", empty)):
            slice_latencies, rate = await _closed_loop(call, concurrency, slice_s)
            lat[name] += slice_latencies
            rates[name].append(rate)
    out: dict[str, float] = {"concurrency": concurrency}
    for name in ("verify", "empty"):
        out[f"{name}_p50_ms"] = _percentile(lat[name], 0.50)
        out[f"{name}_p99_ms"] = _percentile(lat[name], 0.99)
        out[f"{name}_per_s"] = statistics.median(rates[name])
        out[f"{name}_calls"] = len(lat[name])
    out["p50_ratio"] = out["verify_p50_ms"] / out["empty_p50_ms"]
    out["p99_ratio"] = out["verify_p99_ms"] / out["empty_p99_ms"]
    return out


async def overload(
    stubs: list[Any],  # VerifierServiceStubs over grpc.aio channels, used in turn
    requests: list[pb.VerifyRequest],
    rate: float,
    seconds: float,
    server_pids: list[int],
) -> dict[str, Any]:
    """Open-loop Poisson arrivals at ``rate`` calls/s for ``seconds``: see the module docstring."""
    rng = random.Random(14)
    outcomes: list[tuple[float, str, float]] = []  # (scheduled offset s, outcome, latency ms)
    lags: list[float] = []
    details: dict[str, str] = {}  # the first message of each unexpected status
    tasks: set[asyncio.Task[None]] = set()
    rss_before = sum(_rss_mb(pid) for pid in server_pids)

    async def one(scheduled: float, offset: float, n: int) -> None:
        lags.append((time.perf_counter() - scheduled) * 1000)
        try:
            request, stub = requests[n % len(requests)], stubs[n % len(stubs)]
            response = await stub.Verify(request, timeout=DEADLINE_S)
            outcome = "answered" if response.verdict.reason == REASON_OK else "wrong-verdict"
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                trailers: Any = error.trailing_metadata() or ()
                reasons = [v for k, v in trailers if k == "huren-reason"]
                outcome = "refused" if reasons == ["RESOURCE_EXHAUSTED"] else "refused-bare"
            else:
                outcome = error.code().name
                details.setdefault(outcome, str(error.details()))
        outcomes.append((offset, outcome, (time.perf_counter() - scheduled) * 1000))

    start = time.perf_counter()
    next_at, n = start, 0
    while next_at - start < seconds:
        now = time.perf_counter()
        if next_at > now:
            await asyncio.sleep(next_at - now)
        # Launch every call that is due (open loop: a late generator catches up, never skips).
        while next_at <= time.perf_counter() and next_at - start < seconds:
            task = asyncio.create_task(one(next_at, next_at - start, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            next_at += rng.expovariate(rate)
    sent_for = time.perf_counter() - start
    await asyncio.gather(*tasks)
    drained = time.perf_counter() - start
    rss_after = sum(_rss_mb(pid) for pid in server_pids)

    def select(kind: str, lo: float = 0.0, hi: float = float("inf")) -> list[float]:
        return [ms for at, what, ms in outcomes if what == kind and lo <= at < hi]

    counts: dict[str, int] = {}
    for _, what, _ in outcomes:
        counts[what] = counts.get(what, 0) + 1
    third = seconds / 3
    admitted, refused = select("answered"), select("refused") + select("refused-bare")
    return {
        "offered_per_s": rate,
        "sent_per_s": n / sent_for,
        "seconds": seconds,
        "calls": n,
        "outcomes": counts,
        "unexpected_details": details,
        "answered_per_s": len(admitted) / drained,
        "drained_after_s": drained,
        "admitted_p50_ms": _percentile(admitted, 0.50),
        "admitted_p99_ms": _percentile(admitted, 0.99),
        "admitted_p99_first_third_ms": _percentile(select("answered", 0, third), 0.99),
        "admitted_p99_last_third_ms": _percentile(select("answered", 2 * third), 0.99),
        "refused_p50_ms": _percentile(refused, 0.50),
        "refused_p99_ms": _percentile(refused, 0.99),
        "p99_ms_by_outcome": {k: _percentile(select(k), 0.99) for k in counts},
        "generator_lag_p99_ms": _percentile(lags, 0.99),
        "server_rss_mb_before": rss_before,
        "server_rss_mb_after": rss_after,
    }


async def measure(
    address: str,
    codes: list[str],
    server_pids: list[int],
    quick: bool,
    connections: int = 1,
    offered: float | None = None,
) -> dict[str, Any]:
    pairs, slice_s, overload_s = (2, 0.3, 1.5) if quick else (5, 1.0, 9.0)
    requests = [pb.VerifyRequest(code=c) for c in codes]
    check = health_pb2.HealthCheckRequest(service="")
    results: dict[str, Any] = {"connections": connections}
    opened = channels(address, connections)
    try:
        stubs = [pb_grpc.VerifierServiceStub(channel) for channel in opened]
        healths = [health_pb2_grpc.HealthStub(channel) for channel in opened]
        counter = iter(range(1 << 62))

        async def verify() -> None:
            n = next(counter)
            response = await stubs[n % connections].Verify(requests[n % len(requests)])
            assert response.verdict.reason == REASON_OK  # the bench measures real work

        async def empty() -> None:
            await healths[next(counter) % connections].Check(check)

        for concurrency in (1, 16):
            results[f"n{concurrency}"] = await latency(verify, empty, concurrency, pairs, slice_s)
        capacity = results["n16"]["verify_per_s"]
        results["capacity_per_s"] = capacity
        results["overload"] = await overload(
            stubs, requests, offered or OVERLOAD * capacity, overload_s, server_pids
        )
        await asyncio.sleep(0.5)  # the server settles: is it still answering at once?
        results["after"] = await latency(verify, empty, 1, 1, slice_s)
    finally:
        for channel in opened:
            await channel.close(None)
    return results


class Front:
    """``huren front --run`` (nginx) in front of ``upstream``, every process of it on CPU 0."""

    def __init__(self, upstream: str, extra: tuple[str, ...]) -> None:
        self.proc = subprocess.Popen(
            [
                *HUREN,
                "front",
                "--run",
                "--insecure",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                f"grpc://{upstream}",
                *extra,
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+) \(nginx pid (\d+)", line)
        if match is None:
            self.stop()
            raise SystemExit(f"the front did not start: {line!r}")
        self.address = match.group(1)
        master = int(match.group(2))
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        self.pids = [master, *map(int, children)]
        self.pinned = all(_pin(pid, 0) for pid in [self.proc.pid, *self.pids])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()


def _report(results: dict[str, Any]) -> None:
    workers = results["workers"]
    where = (
        ("server and its front (nginx) on cpu0" if results.get("front") else "server on cpu0")
        if workers is None
        else f"replica with {workers} workers on cpu0-{workers - 1}"
    )
    pin = f"{where}, client on cpu1" if results["pinned"] else "not pinned"
    print(
        f"huren latency bench ({results['cpus']} CPUs; {pin}; {results['connections']}"
        f" connections; serve {results['serve_options']}"
        + (f"; front {results['front']}" if results.get("front") else "")
        + ")"
    )
    print("  in flight  Verify p50 / p99 ms   empty p50 / p99 ms   ratio p50  ratio p99")
    for name in ("n1", "n16"):
        r = results[name]
        print(
            f"  {r['concurrency']:<9.0f}  {r['verify_p50_ms']:7.2f} / {r['verify_p99_ms']:7.2f}"
            f"     {r['empty_p50_ms']:6.2f} / {r['empty_p99_ms']:6.2f}"
            f"       {r['p50_ratio']:6.2f}     {r['p99_ratio']:6.2f}"
        )
    o = results["overload"]
    print(
        f"  capacity (Verify/s at 16 in flight) {results['capacity_per_s']:,.0f};"
        f" overload: offered {o['offered_per_s']:,.0f}/s"
        f" ({o['offered_per_s'] / results['capacity_per_s']:.1f}x), sent"
        f" {o['sent_per_s']:,.0f}/s, open loop, {o['seconds']:g} s, {o['calls']:,} calls"
    )
    print(f"    outcomes: {json.dumps(o['outcomes'], sort_keys=True)}")
    by = ", ".join(f"{k} {v:.1f}" for k, v in sorted(o["p99_ms_by_outcome"].items()))
    print(f"    p99 ms by outcome: {by}")
    for status, message in o["unexpected_details"].items():
        print(f"    {status}: {message}")
    print(
        f"    admitted: {o['answered_per_s']:,.0f}/s, p50 {o['admitted_p50_ms']:.1f} ms,"
        f" p99 {o['admitted_p99_ms']:.1f} ms (goal < {ADMITTED_P99_GOAL_MS:g});"
        f" p99 first third {o['admitted_p99_first_third_ms']:.1f},"
        f" last third {o['admitted_p99_last_third_ms']:.1f} ms"
    )
    print(
        f"    refused:  p50 {o['refused_p50_ms']:.1f} ms, p99 {o['refused_p99_ms']:.1f} ms"
        f" (goal < {REFUSED_P99_GOAL_MS:g})"
    )
    print(
        f"    load generator lag p99 {o['generator_lag_p99_ms']:.1f} ms; server RSS"
        f" {o['server_rss_mb_before']:.0f} -> {o['server_rss_mb_after']:.0f} MB"
    )
    a = results["after"]
    print(
        f"  after the overload, 1 in flight: Verify p50 {a['verify_p50_ms']:.2f} ms,"
        f" empty p50 {a['empty_p50_ms']:.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short slices (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="passed to `huren serve` (e.g. --serve-option=--max-concurrent-rpcs=32); repeatable",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help=f"offer this many calls/s in the overload instead of {OVERLOAD:g}x the capacity",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="measure a replica of the gateway with this many worker processes instead",
    )
    parser.add_argument(
        "--front",
        action="store_true",
        help="send the calls through the front (huren front --run: nginx) before the gateway",
    )
    parser.add_argument(
        "--front-option",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="passed to `huren front` (e.g. --front-option=--max-calls=32); repeatable",
    )
    args = parser.parse_args()
    key = PrivateKey.generate(Algorithm.ES256)
    kid = "bench-1"
    codes = _codes(key, kid, 256)
    extra = tuple(args.serve_option)
    every_cpu = os.sched_getaffinity(0)
    results: dict[str, Any] = {
        "cpus": len(every_cpu),
        "serve_options": " ".join(extra) or "defaults",
        "workers": args.workers,
        "front": " ".join(args.front_option) or "defaults" if args.front else None,
    }
    with tempfile.TemporaryDirectory(prefix="huren-bench-latency-") as tmp:
        if args.workers is None:
            server = _Server(Path(tmp), key, kid, extra)
            replica = None
            front = Front(server.address, tuple(args.front_option)) if args.front else None
        else:
            front = None
            server = _Server(Path(tmp), key, kid)
            os.sched_setaffinity(0, every_cpu)  # the replica's processes inherit it
            replica = Replica(server, Path(tmp), args.workers, extra)
        try:
            if replica is None:
                results["pinned"] = server.pinned
                address, pids, connections = server.address, [server.proc.pid], 1
                if front is not None:
                    results["pinned"] = server.pinned and front.pinned
                    address, pids = front.address, [*pids, *front.pids]
            else:
                results["pinned"] = replica.pin() and _pin(os.getpid(), 1)
                address, pids, connections = replica.address, replica.pids, CONNECTIONS
                asyncio.run(until_verifying(address, codes[1]))
            results.update(
                asyncio.run(measure(address, codes, pids, args.quick, connections, args.rate))
            )
        finally:
            if front is not None:
                front.stop()
            if replica is not None:
                replica.stop()
            server.stop()
    _report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
