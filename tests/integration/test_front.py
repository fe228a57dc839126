"""The front (``huren front --run``: the machine's nginx) in front of a real gateway: calls past
its bound are refused with the gateway's own RESOURCE_EXHAUSTED answer, the others answered
exactly as the gateway answers them."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from gateway._generated.huren.v1 import verifier_pb2 as pb
from gateway._generated.huren.v1 import verifier_pb2_grpc
from gateway.clients import TlsCredentials
from gateway.errors import Overloaded
from gateway.limits import Limits
from gateway.model import Colour, Status
from gateway.server.app import GatewayServer, TlsFiles, open_gateway
from gateway.server.certificates import ServerCertificates
from gateway.server.status import DETAILS_KEY, refusal
from gateway.wire import verdict_from_pb
from tests.integration.cli import HUREN, huren
from tests.integration.conftest import Hub, MutableClock
from tests.integration.test_admission import _forged_at, _tampered, assert_refused_as_overloaded

pytestmark = pytest.mark.asyncio

DEADLINE_S = 20.0
ROOT = Path(__file__).resolve().parents[2]


def nginx() -> str:
    """The machine's nginx: `make test` installs it; without it these tests fail, never skip."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    assert found, "no nginx: `make test` installs it (apt-get install nginx)"
    return found


def assert_nginx_accepts(prefix: Path) -> None:
    """``nginx -t`` accepts ``prefix``/nginx.conf."""
    checked = subprocess.run(
        [nginx(), "-t", "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    # Not even a warning (e.g. more connections than the open-file limit allows).
    assert "[warn]" not in checked.stderr, checked.stderr


@dataclass
class Front:
    process: asyncio.subprocess.Process
    address: str
    stub: verifier_pb2_grpc.VerifierServiceAsyncStub
    channel: grpc.aio.Channel


@asynccontextmanager
async def front(
    hub: Hub,
    *options: str,
    upstream: str | None = None,
    listen: str = "127.0.0.1:0",
    tls_dir: Path | None = None,
) -> AsyncIterator[Front]:
    """``huren front --run`` on port 0 in front of ``upstream`` (default the hub's gateway), TLS
    on both sides: the gateway's certificate served by the front, the gateway's checked
    against the CA."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "front",
        "--run",
        "--listen",
        listen,
        "--upstream",
        f"grpcs://{upstream or hub.address}",
        "--tls-dir",
        str(tls_dir or hub.pki),
        "--upstream-name",
        "localhost",
        "--nginx",
        nginx(),
        *options,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    match = re.match(r"huren front listening on (\S+) ", line)
    assert match, line
    address = match.group(1)
    channel = grpc.aio.secure_channel(address, TlsCredentials.from_pki(hub.pki).channel())
    try:
        yield Front(process, address, verifier_pb2_grpc.VerifierServiceStub(channel), channel)
    finally:
        await channel.close(None)
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


async def test_a_flood_through_the_front_is_answered_as_the_gateway_answers_or_refused(hub: Hub):
    region = hub.regions["hangzhou"]
    greens = [await region.issue() for _ in range(3)]
    red = await region.issue(contact=True)
    forged = [_tampered(c) for c in greens] + [_forged_at(greens[0], i) for i in range(4)]
    codes = [*greens, red, *forged]
    expected = {code: await hub.verify(code) for code in codes}
    assert all(expected[c].colour is Colour.GREEN for c in greens)
    assert all(expected[c].status is not Status.VALID for c in forged)

    async with front(hub, "--max-calls", "2") as fronted:
        stub = fronted.stub

        async def one(i: int) -> str:
            code = codes[i % len(codes)]
            try:
                response = await stub.Verify(pb.VerifyRequest(code=code), timeout=DEADLINE_S)
            except grpc.aio.AioRpcError as error:
                assert_refused_as_overloaded(error)  # never a hang, never a bare CANCELLED
                return "refused"
            verdict, want = verdict_from_pb(response.verdict), expected[code]
            assert (verdict.status, verdict.colour, verdict.reason) == (
                want.status,
                want.colour,
                want.reason,
            ), code[:40]
            if code in forged:
                assert verdict.colour is not Colour.GREEN
            return "answered"

        outcomes = await asyncio.gather(*(one(i) for i in range(200)))
        assert outcomes.count("refused") > 0, outcomes
        assert outcomes.count("answered") >= 2, outcomes
        # Every place was given back: after the flood each call is answered.
        for _ in range(5):
            response = await stub.Verify(pb.VerifyRequest(code=greens[0]), timeout=DEADLINE_S)
            assert verdict_from_pb(response.verdict).colour is Colour.GREEN


async def test_the_fronts_refusal_carries_the_gateways_own_status_bytes(hub: Hub):
    green = await hub.regions["hangzhou"].issue()
    async with front(hub, "--max-calls", "1") as fronted:
        calls = [
            fronted.stub.Verify(pb.VerifyRequest(code=green), timeout=DEADLINE_S) for _ in range(40)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert errors, "40 calls at once past a bound of 1: some must be refused"
    error = errors[0]
    trailers: dict[str, Any] = dict(cast(Any, error.trailing_metadata()) or ())
    # What the gateway's own admission would send at a bound of 1 call, byte for byte.
    own = refusal(Overloaded("the gateway is at its bound of 1 calls in flight; retry later"))
    assert error.code() is own[0]
    assert error.details() == own[1]
    assert trailers[DETAILS_KEY] == own[2]


async def test_streams_pass_the_front_and_are_bounded_by_the_gateway(hub: Hub, clock: MutableClock):
    green = await hub.regions["hangzhou"].issue()
    # A gateway bounded at one stream, behind a front bounded at one unary call.
    gateway = open_gateway(hub.files.directory, Limits(max_concurrent_streams=1), clock)
    server = GatewayServer(
        gateway, "127.0.0.1:0", certificates=ServerCertificates(TlsFiles(hub.pki))
    )
    port = await server.start()
    try:
        async with front(hub, "--max-calls", "1", upstream=f"127.0.0.1:{port}") as fronted:
            streams: Any = fronted.stub
            first = streams.VerifyStream(timeout=DEADLINE_S)
            await first.write(pb.VerifyStreamRequest(id="1", code=green))
            opened = await first.read()
            assert isinstance(opened, pb.VerifyStreamResponse)
            assert verdict_from_pb(opened.verdict).colour is Colour.GREEN

            # The second stream is refused by the gateway's own bound, its answer relayed.
            second = streams.VerifyStream(timeout=DEADLINE_S)
            await second.write(pb.VerifyStreamRequest(id="2", code=green))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await second.read()
            assert_refused_as_overloaded(caught.value)
            assert "1 streams" in (caught.value.details() or "")

            # The open stream does not take the unary call's place at the front.
            response = await fronted.stub.Verify(pb.VerifyRequest(code=green), timeout=DEADLINE_S)
            assert verdict_from_pb(response.verdict).colour is Colour.GREEN

            await first.write(pb.VerifyStreamRequest(id="3", code=green))
            again = await first.read()
            assert again.id == "3"
            await first.done_writing()
            assert await first.code() is grpc.StatusCode.OK
    finally:
        await server.stop(0)
        gateway.hub.close()


async def test_a_request_larger_than_the_message_bound_is_refused_by_the_front(hub: Hub):
    async with front(hub, "--max-message-bytes", "4096") as fronted:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await fronted.stub.Verify(pb.VerifyRequest(code="A" * 5000), timeout=DEADLINE_S)
        error = caught.value
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than 4,096 bytes" in (error.details() or "")
        # Just under the bound is the gateway's to judge: a verdict, not a refusal.
        response = await fronted.stub.Verify(pb.VerifyRequest(code="A" * 4000), timeout=DEADLINE_S)
        assert verdict_from_pb(response.verdict).colour is not Colour.GREEN


async def test_sigterm_ends_the_front_and_its_nginx(hub: Hub):
    async with front(hub) as fronted:
        process = fronted.process
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    # nginx went with it: nothing listens at the front's address any more.
    host, port = fronted.address.rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(host, int(port))


async def test_the_printed_configuration_is_one_nginx_accepts(tmp_path: Path):
    printed = huren(
        "front",
        "--insecure",
        "--listen",
        "127.0.0.1:50061",
        "--upstream",
        "grpc://127.0.0.1:50051",
        "--out",
        str(tmp_path / "nginx.conf"),
    )
    assert printed.returncode == 0, printed.stderr
    assert_nginx_accepts(tmp_path)


async def test_nginx_cannot_pick_a_port_so_port_0_needs_run():
    result = huren(
        "front", "--insecure", "--listen", "127.0.0.1:0", "--upstream", "grpc://127.0.0.1:50051"
    )
    assert result.returncode == 2, result
    assert "nginx cannot pick a port" in result.stderr
    assert result.stdout == ""


async def test_the_commands_in_docs_front_md_do_what_it_says(tmp_path: Path):
    text = (ROOT / "docs" / "front.md").read_text(encoding="utf-8")
    commands = [shlex.split(line) for line in re.findall(r"^huren front .*$", text, re.M)]
    assert len(commands) == 2, commands
    pki = tmp_path / "pki"
    made = huren("pki", "init", str(pki))
    assert made.returncode == 0, made.stderr

    # The printed configuration: written, then accepted by nginx once its TLS files exist here.
    printed = commands[1]
    out = tmp_path / "front.conf"
    at = printed.index("--out")
    result = huren(*printed[1 : at + 1], str(out), *printed[at + 2 :])
    assert result.returncode == 0, result.stderr
    tls_dir = printed[printed.index("--tls-dir") + 1]
    assert f"ssl_certificate {tls_dir}/gateway.pem;" in out.read_text()
    (tmp_path / "nginx.conf").write_text(out.read_text().replace(tls_dir, str(pki)))
    assert_nginx_accepts(tmp_path)

    # The run: the line it prints, on a port of its own (the documented one may be taken here).
    ran = commands[0]
    ran[ran.index("--listen") + 1] = "127.0.0.1:0"
    ran[ran.index("--tls-dir") + 1] = str(pki)
    process = await asyncio.create_subprocess_exec(
        *HUREN, *ran[1:], "--nginx", nginx(), stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        documented = re.search(r"`(huren front listening on .*?)`", text, re.S)
        assert documented
        pattern = re.escape(" ".join(documented.group(1).split())).replace("…", r"\d+")
        pattern = pattern.replace(re.escape("0.0.0.0:50061"), r"127\.0\.0\.1:\d+")
        assert re.fullmatch(pattern, line.strip()), (pattern, line)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_a_front_whose_nginx_cannot_start_says_so_and_exits(tmp_path: Path):
    # A rotation gone wrong: the certificate of one PKI beside the key of another.
    for name in ("one", "two"):
        made = huren("pki", "init", str(tmp_path / name))
        assert made.returncode == 0, made.stderr
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name, source in (("ca.pem", "one"), ("gateway.pem", "one"), ("gateway.key", "two")):
        (mixed / name).write_bytes((tmp_path / source / name).read_bytes())
    result = huren(
        "front",
        "--run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "grpc://127.0.0.1:50051",
        "--tls-dir",
        str(mixed),
        "--nginx",
        nginx(),
    )
    assert result.returncode == 2, result
    assert "nginx did not start" in result.stderr
    assert "key values mismatch" in result.stderr  # nginx's own reason, passed on
    assert result.stdout == ""


async def test_a_front_killed_outright_takes_its_nginx_with_it(hub: Hub):
    async with front(hub) as fronted:
        fronted.process.kill()  # SIGKILL: no handler runs
        await asyncio.wait_for(fronted.process.wait(), 30)
        host, port = fronted.address.rsplit(":", 1)
        for _ in range(100):  # nginx gets SIGTERM from the kernel as its parent dies
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except ConnectionRefusedError:
                break
            writer.close()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("nginx still listens after its front was killed")


async def test_a_second_front_on_a_port_in_use_fails_rather_than_share_it(hub: Hub):
    async with front(hub) as first:
        taken = first.address
        second = huren(
            "front",
            "--run",
            "--insecure",
            "--listen",
            taken,
            "--upstream",
            "grpc://127.0.0.1:50051",
            "--nginx",
            nginx(),
        )
        assert second.returncode == 2, second
        assert "Address already in use" in second.stderr
        green = await hub.regions["hangzhou"].issue()
        response = await first.stub.Verify(pb.VerifyRequest(code=green), timeout=DEADLINE_S)
        assert verdict_from_pb(response.verdict).colour is Colour.GREEN
    # Given the port once it is free, a front takes it.
    async with front(hub, listen=taken) as again:
        assert again.address == taken
        response = await again.stub.Verify(pb.VerifyRequest(code=green), timeout=DEADLINE_S)
        assert verdict_from_pb(response.verdict).colour is Colour.GREEN


async def test_a_sigterm_while_nginx_starts_is_a_clean_stop(tmp_path: Path):
    for attempt in range(5):
        process = await asyncio.create_subprocess_exec(
            *HUREN,
            "front",
            "--run",
            "--insecure",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "grpc://127.0.0.1:50051",
            "--work-dir",
            str(tmp_path / str(attempt)),
            "--nginx",
            nginx(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
        )
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        for _ in range(2000):  # the moment nginx exists, before it can take signals
            if children.exists() and children.read_text().split():
                break
            await asyncio.sleep(0.002)
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, (attempt, out, err)
    assert not list(tmp_path.glob("core*"))  # nginx was never killed by a signal it ignores


async def test_the_front_takes_renewed_certificate_files_without_a_restart(
    hub: Hub, tmp_path: Path
):
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("ca.pem", "gateway.pem", "gateway.key"):
        (tls / name).write_bytes((hub.pki / name).read_bytes())
    renewed = tmp_path / "renewed"
    made = huren("pki", "init", str(renewed))
    assert made.returncode == 0, made.stderr
    green = await hub.regions["hangzhou"].issue()
    async with front(hub, "--tls-check-seconds", "0.2", tls_dir=tls) as fronted:
        trusting_new = TlsCredentials.from_pki(renewed).channel()

        async def through_new_certificate() -> bool:
            async with grpc.aio.secure_channel(fronted.address, trusting_new) as channel:
                stub = verifier_pb2_grpc.VerifierServiceStub(channel)
                try:
                    response = await stub.Verify(pb.VerifyRequest(code=green), timeout=2)
                except grpc.aio.AioRpcError:
                    return False
                assert verdict_from_pb(response.verdict).colour is Colour.GREEN
                return True

        assert not await through_new_certificate()  # the front serves the hub's certificate
        # The certificate is renewed (by another CA here, so that the change shows); the
        # upstream's CA (ca.pem) stays the hub's.
        for name in ("gateway.key", "gateway.pem"):
            (tls / name).write_bytes((renewed / name).read_bytes())
        for _ in range(50):
            if await through_new_certificate():
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the front still serves the old certificate")


async def test_a_call_that_sends_no_request_gives_its_place_back(hub: Hub):
    """A client that opens calls and never sends their requests cannot hold the bound."""
    green = await hub.regions["hangzhou"].issue()
    async with front(hub, "--max-calls", "1", "--unary-body-seconds", "1") as fronted:
        stalled = fronted.channel.stream_unary(
            "/huren.v1.VerifierService/Verify",
            request_serializer=pb.VerifyRequest.SerializeToString,
            response_deserializer=pb.VerifyResponse.FromString,
        )

        async def never() -> AsyncIterator[pb.VerifyRequest]:
            await asyncio.Event().wait()
            yield pb.VerifyRequest()  # pragma: no cover - never reached

        held = asyncio.ensure_future(stalled(never(), timeout=DEADLINE_S))
        await asyncio.sleep(0.3)  # its headers reached the front: the one place is taken
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await fronted.stub.Verify(pb.VerifyRequest(code=green), timeout=DEADLINE_S)
        assert_refused_as_overloaded(refused.value)
        # nginx ends the stalled call after a second without its request; the place is free.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(held, 10)
        assert ended.value.code() is not grpc.StatusCode.OK
        response = await fronted.stub.Verify(pb.VerifyRequest(code=green), timeout=DEADLINE_S)
        assert verdict_from_pb(response.verdict).colour is Colour.GREEN
