"""Operating a gateway (issue 15): the Prometheus endpoint scraped over HTTP after real calls,
JSON logs and the access log, the limit on calls in flight, all on real ``huren serve``
processes on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc as pb_grpc
from gateway.clients import TlsCredentials
from gateway.crypto import pki
from gateway.model import Colour
from gateway.wire import verdict_from_pb
from tests.conftest import REPO, resident_id
from tests.integration.cli import ENV, HUREN, huren, serving
from tests.integration.scrape import sample, scrape, scrape_text, verdicts
from tests.integration.test_cli import hangzhou_registry
from tests.integration.test_cli_web import web_verify

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path):
    """A registry with Hangzhou's issuer, a PKI, and Hangzhou's codes: (state, pki, codes)."""
    state, codes, pki = hangzhou_registry(tmp_path)
    return state, pki, codes


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
    with serving(state, pki, "--max-concurrent-streams", "1") as served:
        channel = grpc.secure_channel(served.address, TlsCredentials.from_pki(pki).channel())
        stub = pb_grpc.VerifierServiceStub(channel)
        with channel:
            waiting: queue.SimpleQueue[pb.VerifyStreamRequest | None] = queue.SimpleQueue()

            def feed() -> Iterator[pb.VerifyStreamRequest]:
                while (item := waiting.get()) is not None:
                    yield item

            stream: Any = stub.VerifyStream(feed())
            waiting.put(pb.VerifyStreamRequest(id="1", code=codes["green"]))
            first = next(stream)  # the stream is in flight now, and holds the one stream slot
            assert verdict_from_pb(first.verdict).colour is Colour.GREEN
            second: Any = stub.VerifyStream(iter([pb.VerifyStreamRequest(id="2", code="x")]))
            with pytest.raises(grpc.RpcError) as refused:
                list(second)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            # Unary calls are counted apart from streams: a Verify is still admitted.
            answered = stub.Verify(pb.VerifyRequest(code=codes["green"]), timeout=5)
            assert verdict_from_pb(answered.verdict).colour is Colour.GREEN
            middle = scrape(served.metrics)
            waiting.put(None)
            assert list(stream) == []
        after = scrape(served.metrics)
    assert middle[sample("huren_rpcs_rejected_total", method="VerifierService/VerifyStream")] == 1
    assert middle["huren_rpcs_in_flight"] == 1
    assert after["huren_rpcs_in_flight"] == 0
    assert after[sample("huren_rpcs_total", method="VerifierService/VerifyStream", code="OK")] == 1
    assert after[sample("huren_rpcs_total", method="VerifierService/Verify", code="OK")] == 1
    assert after[verdicts("VALID", "OK", "GREEN")] == 2


def _health(address: str, pki: Path) -> subprocess.CompletedProcess[str]:
    return huren("health", "--gateway", address, "--pki", str(pki), "--timeout", "3")


def _swap_tls(into: Path, source: Path) -> None:
    """Replace the TLS files in ``into`` with ``source``'s, each by an atomic rename."""
    for name in ("ca.pem", "gateway.pem", "gateway.key"):
        shutil.copy2(source / name, into / f".{name}.new")
        os.replace(into / f".{name}.new", into / name)


def _until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 15
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("how", ["sighup", "change check"])
def test_new_tls_files_are_served_without_a_restart(hub, tmp_path, how):
    state, old_pki, _ = hub
    new_pki = tmp_path / "new-pki"
    assert huren("pki", "init", str(new_pki)).returncode == 0
    served_dir = tmp_path / "served-tls"
    served_dir.mkdir()
    _swap_tls(served_dir, old_pki)
    check = "0" if how == "sighup" else "0.2"
    with serving(state, served_dir, "--tls-check-seconds", check) as served:
        assert _health(served.address, old_pki).returncode == 0
        established = grpc.secure_channel(
            served.address, TlsCredentials.from_pki(old_pki).channel()
        )
        with established:
            probe = health_pb2_grpc.HealthStub(established)
            assert probe.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1

            _swap_tls(served_dir, new_pki)
            if how == "sighup":
                served.process.send_signal(signal.SIGHUP)
            assert _until(lambda: _health(served.address, new_pki).returncode == 0)
            refused = _health(served.address, old_pki)  # a new connection: the new certificate
            assert refused.returncode == 2, refused.stdout
            # The connection made before goes on being served.
            assert probe.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1

            # Files that do not go together are refused; the ones in use stay.
            (served_dir / "gateway.key").write_bytes((old_pki / "gateway.key").read_bytes())
            if how == "sighup":
                served.process.send_signal(signal.SIGHUP)
            assert _until(lambda: "TLS files not taken" in "\n".join(served.log_lines()))
            assert _health(served.address, new_pki).returncode == 0
        lines = served.log_lines()
    assert sum("re-read" in line for line in lines) == 1, lines


REPORT_OPENS = """
import os
import sys

_WATCHED = os.environ["HUREN_TEST_WATCH"]


def _report(event, args):
    # PEP 578: every file this process opens, as it opens it.
    if event == "open" and not isinstance(args[0], int):
        path = os.fsdecode(args[0])
        if path.startswith(_WATCHED):
            print("opened " + path, file=sys.stderr, flush=True)


sys.addaudithook(_report)
"""


def _watching_opens(tmp_path: Path, directory: Path) -> dict[str, str]:
    """An environment in which a ``huren`` process reports each file it opens in
    ``directory`` on its standard error (a ``sitecustomize`` installing an audit hook)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(REPORT_OPENS)
    path = os.pathsep.join(p for p in (str(hooks), ENV.get("PYTHONPATH")) if p)
    return {**ENV, "PYTHONPATH": path, "HUREN_TEST_WATCH": str(directory)}


def _opened(lines: list[str]) -> Counter[str]:
    return Counter(
        Path(line[len("opened ") :]).name for line in lines if line.startswith("opened ")
    )


@pytest.mark.parametrize("role", ["hub", "replica"])
def test_a_start_reads_each_tls_file_once_and_serves_what_it_read(hub, tmp_path, role):
    """What a start checked is what it serves, the web edge trusts and (a replica, whose hub's
    CA is its own ca.pem) dials the hub with: each file is read once, not once per use (files
    being rotated during a start could disagree); after the start each set of followed files
    is re-read on SIGHUP as before (a replica's ca.pem twice: its server's and its hub's)."""
    state, pki, codes = hub
    watched = _watching_opens(tmp_path, pki)
    web = ("--web-listen", "127.0.0.1:0")
    replica_state = tmp_path / "replica"
    replica_state.mkdir(mode=0o700)
    for secret in ("subject.key", "link.key"):
        shutil.copy2(state / secret, replica_state / secret)
    with contextlib.ExitStack() as stack:
        if role == "hub":
            served = stack.enter_context(serving(state, pki, *web, env=watched))
        else:
            hub_served = stack.enter_context(serving(state, pki))
            served = stack.enter_context(
                serving(
                    None,
                    None,
                    *("--replica-of", hub_served.address, "--trust-list-key"),
                    *(str(state / "trustlist-key.jwk"), "--state-dir", str(replica_state)),
                    *("--tls-dir", str(pki), "--listen", "127.0.0.1:0", *web),
                    *("--metrics-listen", "127.0.0.1:0", "--workers", "1"),
                    env=watched,
                )
            )
            assert _until(lambda: scrape(served.metrics)["huren_trust_version"] > 0)
        assert served.web is not None
        checked = huren("verify", "--gateway", served.address, "--pki", str(pki), codes["green"])
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert web_verify(served.web, codes["green"])["colour"] == "GREEN"
        started = _opened(served.log_lines())
        assert started == {"ca.pem": 1, "gateway.pem": 1, "gateway.key": 1}

        served.process.send_signal(signal.SIGHUP)
        again = {"ca.pem": 3 if role == "replica" else 2, "gateway.pem": 2, "gateway.key": 2}
        assert _until(lambda: _opened(served.log_lines()) == again), served.log_lines()


def test_health_checks_a_gateway_whose_certificate_names_another_host_and_another_ca(hub, tmp_path):
    """The server's CA is not the operators' CA, and its certificate names a public host while
    the check dials 127.0.0.1 (as the container's HEALTHCHECK does)."""
    state, operators_pki, _ = hub
    server_ca = pki.new_ca()
    issued = pki.issue_server(server_ca, ["gateway.example.org"])
    tls = tmp_path / "tls"
    tls.mkdir()
    shutil.copy2(operators_pki / "ca.pem", tls / "ca.pem")
    (tls / "gateway.pem").write_bytes(issued.certificate_pem)
    (tls / "gateway.key").write_bytes(issued.key_pem)
    (tmp_path / "server-ca.pem").write_bytes(server_ca.certificate_pem)
    with serving(state, tls) as served:
        check = ("health", "--gateway", served.address, "--timeout", "3")
        trusting = ("--ca", str(tmp_path / "server-ca.pem"))
        assert huren(*check, "--pki", str(operators_pki)).returncode == 2  # the wrong CA
        wrong_name = huren(*check, *trusting)
        assert wrong_name.returncode == 2  # 127.0.0.1 is not a name the certificate carries
        named = huren(*check, *trusting, "--server-name", "gateway.example.org")
        assert (named.returncode, named.stdout) == (0, "SERVING\n"), named.stderr
        by_file = huren(*check, *trusting, "--name-from-certificate", str(tls / "gateway.pem"))
        assert (by_file.returncode, by_file.stdout) == (0, "SERVING\n"), by_file.stderr

        # The container's own HEALTHCHECK command, with its folder here and its port.
        dockerfile = (REPO / "Dockerfile").read_text().replace("\\\n", "")
        command = re.search(r"HEALTHCHECK .*?CMD (.*?)\n", dockerfile)
        assert command is not None
        shell = command.group(1).replace("/var/lib/huren/pki", str(tls))
        shell = shell.replace("127.0.0.1:50051", served.address)
        environ = {**ENV, "HUREN_HEALTH_CA": str(tmp_path / "server-ca.pem")}
        environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
        container = subprocess.run(
            ["sh", "-c", shell], capture_output=True, text=True, env=environ, timeout=60
        )
        assert (container.returncode, container.stdout) == (0, "SERVING\n"), container.stderr


def test_serve_takes_its_options_from_huren_variables_and_flags_win(hub):
    state, tls, codes = hub
    environ = {
        **ENV,
        "HUREN_LISTEN": "256.0.0.1:1",  # not an address: the flag below must win
        "HUREN_REGISTRY_LISTEN": "127.0.0.1:0",
        "HUREN_STATE_DIR": str(state),
        "HUREN_TLS_DIR": str(tls),
        "HUREN_METRICS_LISTEN": "127.0.0.1:0",
        "HUREN_ACCESS_LOG": "true",
        "HUREN_LOG_FORMAT": "json",
    }
    with serving(None, None, "--listen", "127.0.0.1:0", env=environ) as served:
        verified = huren("verify", "--gateway", served.address, "--pki", str(tls), codes["red"])
        assert verified.returncode == 0, verified.stderr
        assert scrape(served.metrics)[verdicts("VALID", "OK", "RED")] == 1
        logged = [json.loads(line) for line in served.log_lines()]
    assert [r["rpc"] for r in logged if r.get("event") == "access"] == [
        "/huren.v1.VerifierService/Verify"
    ]

    bad = subprocess.run(
        [*HUREN, "serve"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**environ, "HUREN_MAX_BATCH": "0x10"},
        timeout=60,
    )
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "huren: HUREN_MAX_BATCH='0x10': not a whole number (as --max-batch)\n"


def test_a_replica_reports_its_trust_list_and_verdicts(hub, tmp_path):
    state, pki, codes = hub
    replica_state = tmp_path / "replica"
    replica_state.mkdir(mode=0o700)
    for secret in ("subject.key", "link.key"):
        shutil.copy2(state / secret, replica_state / secret)
    with serving(state, pki) as hub_served:
        hub_version = scrape(hub_served.metrics)["huren_trust_version"]
        with serving(
            None,
            None,
            *("--replica-of", hub_served.address, "--trust-list-key"),
            *(str(state / "trustlist-key.jwk"), "--state-dir", str(replica_state)),
            *("--tls-dir", str(pki), "--listen", "127.0.0.1:0"),
            *("--metrics-listen", "127.0.0.1:0", "--workers", "1"),  # one process's figures
        ) as replica:
            assert _until(lambda: scrape(replica.metrics)["huren_trust_version"] == hub_version)
            verified = huren(
                "verify", "--gateway", replica.address, "--pki", str(pki), codes["green"]
            )
            assert verified.returncode == 0, verified.stderr
            figures = scrape(replica.metrics)
    assert figures[sample("huren_info", role="replica")] == 1
    assert figures["huren_trust_stale"] == 0
    assert 0 <= figures["huren_trust_last_refresh_seconds"] < 30
    assert 0 <= figures["huren_trust_age_seconds"] < 30
    assert 0 < figures["huren_trust_fresh_seconds"] <= 15 * 60  # the hub's window
    assert figures[verdicts("VALID", "OK", "GREEN")] == 1
    assert figures[sample("huren_rpcs_total", method="VerifierService/Verify", code="OK")] == 1


@pytest.mark.parametrize("verbosity", [None, "DEBUG"])
def test_grpc_core_lines_are_silent_unless_asked_for(hub, verbosity):
    """A plaintext client on the TLS port: gRPC core's handshake lines
    (ssl_transport_security.cc) appear only with --grpc-verbosity."""
    state, pki, _ = hub
    front = () if verbosity is None else ("--grpc-verbosity", verbosity)
    with serving(state, pki, front=front) as served:
        huren("health", "--gateway", served.address, "--insecure", "--timeout", "1")
        lines = served.log_lines()
    chatter = [line for line in lines if "ssl_transport_security" in line]
    if verbosity is None:
        assert lines == []
    else:
        assert chatter, lines
