"""``huren serve --replica-of HUB --workers N``: real worker processes on one port, supervised.

The hub runs in the test's process (its event loop must never be blocked: every wait on a
process goes through a thread); the replica is the real command, its parent and its workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.clients import TlsCredentials
from gateway.model import Colour
from gateway.wire import verdict_from_pb
from tests.conftest import REPO
from tests.integration.cli import ENV, HUREN, huren
from tests.integration.conftest import Hub, running_hub
from tests.integration.scrape import sample, scrape
from tests.integration.test_replica import replica_dir, until

DEADLINE = 20.0
"""A bound for what should take a few seconds on a busy machine: a timeout, not a target."""
VERIFY_OK = sample("huren_rpcs_total", method="VerifierService/Verify", code="OK")


class Workers:
    """The parent process of ``huren serve --workers N``, its output and its workers."""

    def __init__(self, proc: subprocess.Popen[str], errors: IO[bytes]) -> None:
        self.proc = proc
        self.errors = errors
        self.lines: list[str] = []
        self.address = ""
        self.pids: list[int] = []
        self.metrics: dict[int, int] = {}  # slot -> port

    async def line(self) -> str:
        assert self.proc.stdout is not None
        text = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), DEADLINE)
        if not text:
            pytest.fail(f"huren serve --workers ended: {self.log()}")
        self.lines.append(text)
        return text

    def log(self) -> str:
        self.errors.seek(0)
        return self.errors.read().decode()

    async def exit_status(self, timeout: float = DEADLINE) -> int:
        return await asyncio.to_thread(self.proc.wait, timeout)


@contextlib.asynccontextmanager
async def serving(hub: Hub, state: Path, *extra: str) -> AsyncIterator[Workers]:
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(
            [
                *HUREN,
                *("serve", "--replica-of", hub.address, "--listen", "127.0.0.1:0"),
                *("--trust-list-key", str(hub.files.trust_list_public)),
                *("--tls-dir", str(hub.pki), "--state-dir", str(state), *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            encoding="utf-8",
            cwd=REPO,
            env=ENV,
        ) as proc,
    ):
        workers = Workers(proc, errors)
        try:
            yield workers
        finally:
            if proc.poll() is None:
                proc.terminate()
                await workers.exit_status()


async def started(workers: Workers, count: int, *, metrics: bool) -> Workers:
    """Read the listening line (once, with every worker's pid), and each worker's metrics line."""
    line = await workers.line()
    found = re.search(rf"replica listening on (\S+) .*; {count} workers, pids ([\d, ]+)\)$", line)
    assert found, line
    workers.address = found.group(1)
    workers.pids = [int(p) for p in found.group(2).split(", ")]
    assert len(set(workers.pids)) == count
    while metrics and len(workers.metrics) < count:
        line = await workers.line()
        shown = re.search(r"metrics on http://[^:]+:(\d+)/metrics \(worker (\d), pid (\d+)\)", line)
        assert shown, line
        assert int(shown.group(3)) == workers.pids[int(shown.group(2))]
        workers.metrics[int(shown.group(2))] = int(shown.group(1))
    return workers


async def call_each_on_its_own_connection(address: str, pki: Path, code: str, calls: int) -> None:
    """``calls`` Verify calls, each on a new connection (the kernel spreads connections, not
    calls, over the workers); every one must answer GREEN."""
    credentials = TlsCredentials.from_pki(pki).channel()
    for _ in range(calls):
        options = [("grpc.use_local_subchannel_pool", 1)]  # never a pooled connection
        async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
            stub = verifier_pb2_grpc.VerifierServiceStub(channel)
            answer = await stub.Verify(pb.VerifyRequest(code=code), timeout=DEADLINE)
            assert verdict_from_pb(answer.verdict).colour is Colour.GREEN


async def serving_health(address: str, pki: Path) -> bool:
    credentials = TlsCredentials.from_pki(pki).channel()
    async with grpc.aio.secure_channel(address, credentials) as channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def gone(pid: int) -> bool:
    """True once ``pid`` is no process (reaped) or a zombie its parent has yet to reap, with
    none of its threads left. (The first thread shows as a zombie while the process's other
    threads are still exiting, and they hold its sockets: a connection the kernel gives the
    listening socket then is reset.)"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        return zombie and len(os.listdir(f"/proc/{pid}/task")) <= 1
    except FileNotFoundError:
        return True


@pytest.mark.asyncio
async def test_two_workers_share_one_port_and_each_answers(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        code = await hub.regions["hangzhou"].issue()
        state = replica_dir(hub, tmp_path)
        extra = ("--workers", "2", "--metrics-listen", "127.0.0.1:0")
        async with serving(hub, state, *extra) as workers:
            await started(workers, 2, metrics=True)
            await until(lambda: serving_health(workers.address, hub.pki), "SERVING")
            await call_each_on_its_own_connection(workers.address, hub.pki, code, 24)
            answered = [scrape(workers.metrics[slot]).get(VERIFY_OK, 0) for slot in (0, 1)]
            assert sum(answered) == 24
            assert min(answered) >= 1, answered  # 2**-23 to fail by chance

            # A single-process gateway never shares a port: it cannot take the workers'.
            hub_state = tmp_path / "other-hub"
            taken = await asyncio.to_thread(
                huren,
                *("serve", "--insecure", "--init", "--state-dir", str(hub_state)),
                *("--listen", workers.address),
            )
            assert taken.returncode == 2
            assert f"cannot listen on {workers.address}" in taken.stderr

            workers.proc.send_signal(signal.SIGTERM)
            assert await workers.exit_status() == 0, workers.log()
            assert all(gone(pid) for pid in workers.pids)
            rest = await asyncio.to_thread(workers.proc.stdout.read)  # type: ignore[union-attr]
        assert sum("listening on" in line for line in [*workers.lines, rest]) == 1


@pytest.mark.asyncio
async def test_a_killed_worker_is_replaced_and_calls_keep_succeeding(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        code = await hub.regions["hangzhou"].issue()
        state = replica_dir(hub, tmp_path)
        async with serving(hub, state, "--workers", "2") as workers:
            await started(workers, 2, metrics=False)
            await until(lambda: serving_health(workers.address, hub.pki), "SERVING")
            killed = workers.pids[1]
            os.kill(killed, signal.SIGKILL)
            await until(lambda: gone(killed), "the killed worker gone")
            await call_each_on_its_own_connection(workers.address, hub.pki, code, 8)

            def replaced() -> re.Match[str] | None:
                return re.search(r"worker 1 serves again \(pid (\d+)\)", workers.log())

            await until(replaced, "worker 1 started again")
            log = workers.log()
            assert f"worker 1 (pid {killed}) was killed by SIGKILL; starting it again" in log
            found = replaced()
            assert found is not None
            assert int(found.group(1)) not in workers.pids
            await call_each_on_its_own_connection(workers.address, hub.pki, code, 8)
            workers.proc.send_signal(signal.SIGINT)  # Ctrl-C: the same graceful stop
            assert await workers.exit_status() == 0, workers.log()
            assert gone(int(found.group(1)))
            assert gone(workers.pids[0])


@pytest.mark.asyncio
async def test_workers_that_keep_dying_stop_everything_with_a_failure(tmp_path, clock):
    async with running_hub(tmp_path, clock, names=("hangzhou",)) as hub:
        state = replica_dir(hub, tmp_path)
        async with serving(hub, state, "--workers", "2") as workers:
            await started(workers, 2, metrics=False)
            (state / "link.key").unlink()  # no worker can start again now
            os.kill(workers.pids[1], signal.SIGKILL)
            # Five restarts after 0.5, 1, 2, 4 and 8 s, each failing at once; then it gives up.
            status = await workers.exit_status(timeout=60)
            log = workers.log()
            assert status == 1, log
            assert "it died 6 times within a minute: stopping every worker" in log
            assert log.count("a replica needs the hub's identity secrets") == 5
            assert gone(workers.pids[0])


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            ("--workers", "0"),
            {},
            "argument --workers: '0': give the number of worker processes, from 1 to 256, "
            "or 'auto' (one per usable core)",
        ),
        (
            (),
            {"HUREN_WORKERS": "many"},
            "huren: HUREN_WORKERS='many': 'many': give the number of worker processes",
        ),
        (("--workers", "257"), {}, "'257': give the number of worker processes, from 1 to 256"),
    ],
)
def test_a_bad_number_of_workers_is_refused(tmp_path, argv, environ, message):
    result = subprocess.run(
        [*HUREN, "serve", "--replica-of", "127.0.0.1:1", *argv],
        capture_output=True,
        encoding="utf-8",
        cwd=REPO,
        env={**ENV, **environ},
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr


def test_a_hub_is_one_process(tmp_path):
    result = huren(
        *("serve", "--insecure", "--init", "--state-dir", str(tmp_path / "hub")),
        *("--listen", "127.0.0.1:0", "--workers", "2"),
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(
        "huren: --workers 2: a hub is one process (its registry has one writer)"
    )
