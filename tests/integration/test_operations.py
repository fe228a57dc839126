"""Operating a gateway (issue 15): the Prometheus endpoint scraped over HTTP after real calls,
JSON logs and the access log, the limit on calls in flight, all on real ``huren serve``
processes on loopback."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
import pytest

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.clients import TlsCredentials
from gateway.model import Colour
from gateway.wire import verdict_from_pb
from tests.conftest import REPO, resident_id
from tests.integration.cli import ENV, HUREN, huren
from tests.integration.test_cli import hangzhou_registry

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path):
    """A registry with Hangzhou's issuer, a PKI, and Hangzhou's codes: (state, pki, codes)."""
    state, codes, pki = hangzhou_registry(tmp_path)
    return state, pki, codes


_LABEL = re.compile(r'(\w+)="([^"]*)"')
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def sample(name: str, **labels: str) -> str:
    """The key of a sample in what :func:`scrape` returns."""
    if not labels:
        return name
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{pairs}}}"


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as {sample(name, **labels): value}."""
    text = scrape_text(port)
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, line
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples[sample(match.group(1), **labels)] = float(match.group(3))
    return samples


def verdicts(status: str, reason: str, colour: str, region: str = "330100") -> str:
    return sample(
        "huren_verdicts_total", status=status, reason=reason, colour=colour, region=region
    )


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body: bytes = response.read()
    return body.decode()


@dataclass
class Served:
    address: str
    metrics: int
    stderr: IO[bytes]

    def log_lines(self) -> list[str]:
        self.stderr.seek(0)
        return self.stderr.read().decode().splitlines()


@contextmanager
def serving(state: Path, pki: Path, *extra: str, front: tuple[str, ...] = ()) -> Iterator[Served]:
    """``huren serve`` with ``extra`` options (and global options ``front``) until the block
    ends; its standard error is kept for the test."""
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(
            [
                *HUREN,
                *front,
                *("serve", "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"),
                *("--state-dir", str(state), "--tls-dir", str(pki)),
                *("--metrics-listen", "127.0.0.1:0", *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=REPO,
            env=ENV,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            address = metrics = None
            while metrics is None:
                line = proc.stdout.readline()
                if not line:
                    errors.seek(0)
                    pytest.fail(f"huren serve exited: {errors.read().decode()}")
                if found := re.search(r"gateway listening on (\S+) ", line):
                    address = found.group(1)
                if found := re.search(r"metrics on http://[^:]+:(\d+)/metrics", line):
                    metrics = int(found.group(1))
            assert address is not None
            yield Served(address, metrics, errors)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_metrics_count_verdicts_calls_and_trust_and_carry_no_personal_data(hub):
    state, pki, codes = hub
    with serving(
        state,
        pki,
        "--access-log",
        front=("--log-format", "json", "--log-level", "INFO"),
    ) as served:
        before = scrape(served.metrics)
        assert before["huren_trust_version"] >= 1
        assert before[sample("huren_info", role="hub")] == 1
        assert before["huren_trust_stale"] == 0
        assert before["huren_rpcs_in_flight"] == 0
        assert 0 <= before["huren_trust_age_seconds"] < 60
        assert 0 <= before["huren_trust_last_refresh_seconds"] < 60

        common = ("--gateway", served.address, "--pki", str(pki))
        one = huren("verify", *common, codes["green"])
        assert one.returncode == 0, one.stderr
        batch = huren("verify", *common, codes["green"], codes["red"], codes["expired"], "x")
        assert batch.returncode == 1, batch.stderr

        after = scrape(served.metrics)
        assert after[verdicts("VALID", "OK", "GREEN")] == 2
        assert after[verdicts("VALID", "OK", "RED")] == 1
        assert after[verdicts("REJECTED", "ERR_EXPIRED", "GREY")] == 1
        unknown = [
            k for k in after if k.startswith("huren_verdicts_total") and 'region="none"' in k
        ]
        assert len(unknown) == 1, unknown
        assert after[unknown[0]] == 1  # "x": nobody's code
        verify = "VerifierService/Verify"
        assert after[sample("huren_rpcs_total", method=verify, code="OK")] == 1
        assert after[sample("huren_rpcs_total", method=verify + "Batch", code="OK")] == 1
        assert after[sample("huren_rpc_duration_seconds_count", method=verify)] == 1
        assert after[sample("huren_rpc_duration_seconds_bucket", method=verify, le="+Inf")] == 1
        assert after[sample("huren_rpc_duration_seconds_sum", method=verify)] > 0
        assert after["huren_rpcs_in_flight"] == 0
        assert after["huren_trust_version"] == before["huren_trust_version"]

        text = scrape_text(served.metrics)
        lines = served.log_lines()
    for secret in (resident_id(), resident_id()[-4:] + "\n", "王芳", codes["green"][:40]):
        assert secret not in text
        assert all(secret not in line for line in lines)
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [r for r in records if r.get("event") == "access"]
    rpcs = {r["rpc"] for r in access}
    assert {"/huren.v1.VerifierService/Verify", "/huren.v1.VerifierService/VerifyBatch"} <= rpcs
    assert all(r["code"] == "OK" and r["ms"] >= 0 and r["level"] == "INFO" for r in access)
    assert all(
        set(r) <= {"time", "level", "logger", "message", "event", "rpc", "code", "ms", "error"}
        for r in records
    )
    rejected = [r for r in records if r["message"].startswith("verdict REJECTED ERR_EXPIRED")]
    assert rejected
    assert all("code_ref=" in r["message"] for r in rejected)


def test_calls_beyond_the_limit_are_refused_and_counted(hub):
    state, pki, codes = hub
    with serving(state, pki, "--max-concurrent-rpcs", "1") as served:
        channel = grpc.secure_channel(served.address, TlsCredentials.from_pki(pki).channel())
        stub = pb_grpc.VerifierServiceStub(channel)
        with channel:
            waiting: queue.SimpleQueue[pb.VerifyStreamRequest | None] = queue.SimpleQueue()

            def feed() -> Iterator[pb.VerifyStreamRequest]:
                while (item := waiting.get()) is not None:
                    yield item

            stream: Any = stub.VerifyStream(feed())
            waiting.put(pb.VerifyStreamRequest(id="1", code=codes["green"]))
            first = next(stream)  # the stream is in flight now, and holds the one slot
            assert verdict_from_pb(first.verdict).colour is Colour.GREEN
            with pytest.raises(grpc.RpcError) as refused:
                stub.Verify(pb.VerifyRequest(code=codes["green"]), timeout=5)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            middle = scrape(served.metrics)
            waiting.put(None)
            assert list(stream) == []
        after = scrape(served.metrics)
    assert middle[sample("huren_rpcs_rejected_total", method="VerifierService/Verify")] == 1
    assert middle["huren_rpcs_in_flight"] == 1
    assert after["huren_rpcs_in_flight"] == 0
    assert after[sample("huren_rpcs_total", method="VerifierService/VerifyStream", code="OK")] == 1
    assert after[verdicts("VALID", "OK", "GREEN")] == 1
