"""``huren demo``: seven regions, one gateway, a scenario a person can read.

Makes a development PKI, starts the gateway (TLS) and the seven regional issuers as separate
processes on loopback; the hub administrator creates the regions and their operators, and each
region's operator registers its issuer over mutual TLS (a cross-region attempt is refused). Then:

1. four travellers declare in every region; each region answers in its own words, and every code
   is verified over gRPC into the canonical colour (the region × state table);
2. one traveller's codes from all seven regions resolve to one subject reference;
3. pending codes become final once the back-end review completes; an appeal corrects a colour;
4. mutual recognition: one traveller's Zhejiang and Hangzhou codes disagree; Beijing, Shanghai,
   Guangdong and Macau each decide under their own precedence policy (set by their operators),
   and Hubei, without one, under the national default;
5. codes that must not pass: tampered, expired, from an unregistered issuer, and Zhejiang's codes
   while its verification API is down (UNVERIFIABLE, while the other regions still verify);
   and Hubei's age rule turns an old green into yellow;
6. Macau's operator revokes its key and the running gateway refuses its codes at once;
7. ``huren audit verify`` checks the whole audit chain.

Every verdict and decision is checked against what the scenario expects; any surprise fails the
demo.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.cli.pki import create_development_pki
from gateway.clients import GatewayClient, RegistryClient, TlsCredentials, new_request_id
from gateway.clock import system_clock
from gateway.codecs import base64url, cose, jws, strictcbor, strictjson, textform
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import CallRefused
from gateway.hub import initialise, new_attestation_key, open_hub
from gateway.identity import resident_id_check_char
from gateway.limits import Limits
from gateway.model import Colour, IssuerId, Reason, Status, Verdict
from gateway.policy import load_policy
from gateway.recognise import Decision, DecisionReason
from gateway.registry.authority import Actor, Role
from gateway.registry.commands import CreateOperator, CreateRegion, RevokeKey, SetPolicy
from gateway.registry.registrar import Change
from gateway.report import decision_json, decision_lines, verdict_json, verdict_line
from gateway.storage.files import StateFiles
from regions import REGIONS, build_region, spec_of
from regions.common.keys import load_secrets
from regions.common.onboarding import registration_command
from regions.common.spec import CHINA_STANDARD_TIME, Holder, Level, RegionContext

START_TIMEOUT_S = 30.0
REVIEW_WAIT_S = 2.2  # the regions' back-end review takes check_seconds (2 s)
EXPECTED = {Level.GREEN: Colour.GREEN, Level.YELLOW: Colour.YELLOW, Level.RED: Colour.RED}


def synthetic_id(district: str, born: str, sequence: str) -> str:
    """A well-formed (fictional) resident id number: district + birth date + sequence + check."""
    first17 = district + born + sequence
    return first17 + resident_id_check_char(first17)


@dataclass(frozen=True)
class Traveller:
    name: str
    story: str
    level: Level
    body: dict[str, Any]


def _travellers(today: str) -> list[Traveller]:
    def person(name: str, number: str, phone: str, **extra: Any) -> dict[str, Any]:
        return {"id_number": number, "name": name, "phone": phone, "trips": [], **extra}

    trip = [{"place": "温州市鹿城区", "from": today, "to": today}]
    return [
        Traveller(
            "王芳",
            "no trips, no symptoms",
            Level.GREEN,
            person("王芳", synthetic_id("330106", "19900307", "122"), "13800000001"),
        ),
        Traveller(
            "李强",
            "a fever",
            Level.YELLOW,
            person(
                "李强", synthetic_id("330102", "19851120", "031"), "13800000002", symptoms=["发热"]
            ),
        ),
        Traveller(
            "张伟",
            "close contact of a case",
            Level.RED,
            person("张伟", synthetic_id("330110", "19780514", "257"), "13800000003", contact=True),
        ),
        Traveller(
            "陈静",
            "trip to 温州市鹿城区, not on any list",
            Level.PENDING,
            person("陈静", synthetic_id("330106", "20010909", "084"), "13800000004", trips=trip),
        ),
    ]


# ------------------------------------------------------------------------------ processes


class _Process:
    """A child process that announces its address on its first line of output."""

    def __init__(self, args: list[str], pattern: str) -> None:
        self.args, self.pattern = args, pattern
        self.name = args[2] if args[0] == "region" else "gateway"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._pattern = pattern
        self.second = ""
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: self._lines.put(stdout.readline()), daemon=True).start()
        self.address = ""

    def wait_ready(self) -> None:
        try:
            line = self._lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(
                f"{self.name} did not start within {START_TIMEOUT_S:.0f} s"
            ) from None
        match = re.search(self._pattern, line)
        if match is None:
            raise RuntimeError(f"{self.name} did not start: {line.strip() or 'no output'}")
        self.address = match.group(1)
        if match.lastindex and match.lastindex > 1:
            self.second = match.group(2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def _all_stopped(processes: list[_Process]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def _http(
    url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback URLs only
            return response.status, json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read(1 << 20) or b"{}")


# ------------------------------------------------------------------------------ output


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    """Left-align ``text`` in ``width`` terminal columns (CJK characters take two)."""
    return text + " " * max(0, width - _width(text))


class _Narrator:
    def __init__(self, json_output: bool) -> None:
        self.json_output = json_output
        self.failures: list[str] = []
        self.count = 0

    def say(self, text: str = "") -> None:
        if not self.json_output:
            print(text, flush=True)

    def check(
        self,
        case: str,
        verdict: Verdict,
        *,
        colour: Colour,
        status: Status = Status.VALID,
        reason: Reason = Reason.OK,
        show: bool = True,
    ) -> Verdict:
        self.count += 1
        if self.json_output:
            print(
                json.dumps({"case": case, **verdict_json(verdict)}, ensure_ascii=False), flush=True
            )
        elif show:
            print(f"  {_pad(case, 44)} {verdict_line(verdict)}", flush=True)
        if (verdict.colour, verdict.status, verdict.reason) != (colour, status, reason):
            self.failures.append(
                f"{case}: expected {colour.value}/{status.value}/{reason.value}, got "
                f"{verdict.colour.value}/{verdict.status.value}/{verdict.reason.value}"
                f" ({verdict.detail})"
            )
        return verdict

    def decided(
        self,
        case: str,
        decision: Decision,
        *,
        colour: Colour,
        reason: DecisionReason,
        deciding: tuple[int, ...] = (),
    ) -> Decision:
        self.count += 1
        if self.json_output:
            print(
                json.dumps({"case": case, "decision": decision_json(decision)}, ensure_ascii=False),
                flush=True,
            )
        else:
            print(f"  {case}", flush=True)
            for line in decision_lines(decision)[:1]:
                print(f"    {line}", flush=True)
            for step in decision.steps[1:]:
                print(f"      [{step.rule}] {step.text}", flush=True)
        got = (decision.colour, decision.reason, decision.deciding)
        if got != (colour, reason, deciding):
            self.failures.append(
                f"{case}: expected {colour.value}/{reason.value}/{deciding}, got "
                f"{decision.colour}/{decision.reason.value}/{decision.deciding}"
            )
        return decision


# ------------------------------------------------------------------------------ the demo


def run_demo(*, json_output: bool = False, serve: bool = False) -> int:
    """The scenario; with ``serve``, the gateway and the regions then keep running (their
    pages open in a browser) until Ctrl-C or SIGTERM."""
    out = _Narrator(json_output)
    work = Path(tempfile.mkdtemp(prefix="huren-demo-"))
    try:
        _run(out, work, serve=serve)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.say()
    if out.failures:
        for failure in out.failures:
            print(f"demo: UNEXPECTED {failure}", file=sys.stderr)
        return 1
    out.say(f"All {out.count} verdicts and decisions are as expected.")
    if not serve:
        out.say("Run `huren demo --serve` to keep everything running and open the pages.")
    return 0


def _run(out: _Narrator, work: Path, *, serve: bool = False) -> None:
    out.say("huren demo: seven regions issue health codes; one gateway verifies them over gRPC")
    out.say()
    pki_dir = work / "pki"
    create_development_pki(pki_dir)
    local = Actor(Role.LOCAL, "demo")
    gateway_files = StateFiles(initialise(work / "gateway", local).directory)
    with open_hub(gateway_files.directory) as hub:
        admin_cert = (pki_dir / "operators" / "hub-admin.pem").read_bytes()
        hub.registrar.submit(local, "bootstrap", CreateOperator("hub-admin", None, admin_cert))
        attestation_kid, _ = new_attestation_key(hub, local)
    out.say("Setup")
    out.say("  pki        a development CA, the gateway's certificate, an operator per region")
    out.say("  registry   a new state directory: an empty registry, audited (huren registry init)")
    out.say("  bootstrap  the hub administrator's certificate pinned in the registry (offline)")
    out.say(
        f"  转码 key    the hub's attestation key {attestation_kid}, issuer huren-hub of 100000 "
        "全国 (huren registry attestation-key new)"
    )
    gateway = _Process(
        [
            *("serve", "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"),
            *("--state-dir", str(gateway_files.directory), "--tls-dir", str(pki_dir)),
        ],
        r"listening on (\S+) .*registry on (\S+)\)",
    )
    processes = [gateway]
    with _all_stopped(processes):
        gateway.wait_ready()
        registry = gateway.second
        out.say(
            f"  gateway    verification on {gateway.address} (TLS), registry on {registry} (mTLS)"
        )
        with RegistryClient(registry, TlsCredentials.from_pki(pki_dir, "hub-admin")) as admin:
            for name in REGIONS:
                spec = spec_of(name)
                admin.submit(new_request_id(), CreateRegion(spec.code, spec.display_name))
                certificate = (pki_dir / "operators" / f"{name}-ops.pem").read_bytes()
                operator = CreateOperator(f"{name}-ops", spec.code, certificate)
                admin.submit(new_request_id(), operator)
        out.say("  hub admin  created the seven regions and pinned their operators' certificates")
        regions: dict[str, _Process] = {}
        for name in REGIONS:
            args = ["region", "serve", name, "--port", "0", "--state-dir", str(work / name)]
            if name in ("zhejiang", "guangdong", "hubei", *TRANSFER_REGIONS):
                args += ["--link-key-file", str(gateway_files.link_key)]
            if name in TRANSFER_REGIONS:  # they convert the hub's attestations (转码)
                args += [
                    "--hub",
                    gateway.address,
                    "--hub-key",
                    str(gateway_files.trust_list_public),
                ]
                args += ["--hub-ca", str(pki_dir / "ca.pem")]
            regions[name] = _Process(args, r"listening on (http://\S+)")
        processes.extend(regions.values())
        for process in regions.values():
            process.wait_ready()
        out.say()
        out.say("Each region's operator registers its issuer over mutual TLS (keys proven held):")
        for name, process in regions.items():
            change = _register(pki_dir, registry, name, process.address, work / name)
            spec = spec_of(name)
            out.say(
                f"  {_pad(spec.display_name, 12)} {spec.code} {_pad(name + '-ops', 14)}"
                f" {spec.algorithm.value:<6} trust version {change.trust_version:<3}"
                f" audit #{change.audit.seq}"
            )
        _cross_region_attempt(out, pki_dir, registry)
        verify_tls = TlsCredentials.from_pki(pki_dir)
        with GatewayClient(gateway.address, verify_tls) as client:
            _scenario(
                out,
                client,
                regions,
                work,
                lambda: _journey(out, client, regions, pki_dir, registry),
            )
            _transfer(out, client, regions, pki_dir, registry, gateway_files, attestation_kid)
            _live_revocation(out, client, pki_dir, registry, regions)
        _audit_verify(out, gateway_files)
        if serve:
            _serve_until_stopped(out, gateway, regions, pki_dir, processes, gateway_files)


def _serve_until_stopped(
    out: _Narrator,
    gateway: _Process,
    regions: dict[str, _Process],
    pki_dir: Path,
    processes: list[_Process],
    files: StateFiles,
) -> None:
    """Restart what the scenario stopped (Zhejiang's service, on its registered port), let
    Guangdong's page offer 转码 to Macau, say where everything is, then wait for Ctrl-C or
    SIGTERM (the caller stops it all)."""
    # The scenario revoked the hub's attestation key: a new one, and Guangdong's issuer again on
    # its port, now offering Macau on its page (--transfer-peer).
    made = subprocess.run(
        [
            *(sys.executable, "-m", "gateway", "registry", "attestation-key", "new"),
            *("--state-dir", str(files.directory)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    guangdong = regions["guangdong"]
    guangdong.stop()
    guangdong.args += ["--transfer-peer", f"820000={regions['macau'].address}"]
    for name, process in list(regions.items()):
        if process.proc.poll() is not None:
            port = process.address.rsplit(":", 1)[1]
            args = list(process.args)
            args[args.index("--port") + 1] = port
            regions[name] = _Process(args, process.pattern)
            processes.append(regions[name])  # stopped with the others
            regions[name].wait_ready()
    out.say()
    if made.returncode == 0:
        out.say(
            "转码: a new attestation key; Guangdong's page offers 转码到 澳门健康码 under a code "
            "(declare there, then tap it)"
        )
    out.say("Serving until Ctrl-C. The traveller's page of each region (declare, see the QR):")
    for name, process in regions.items():
        out.say(f"  {_pad(spec_of(name).display_name, 12)} {process.address}/")
    out.say(f"Verify a code: huren verify --gateway {gateway.address} --ca {pki_dir / 'ca.pem'} \\")
    out.say("    --require green --at 310000 'CODE'   (or paste codes, one per line)")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not stop.wait(0.5):
            if any(p.proc.poll() is not None for p in (gateway, *regions.values())):
                if not stop.wait(0.5):  # not the Ctrl-C that the whole terminal group received
                    out.say("a process stopped by itself; stopping the rest")
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _register(pki_dir: Path, registry: str, name: str, url: str, state_dir: Path) -> Change:
    """What the regional operator does: one call, keys proven by the region's own key."""
    with urllib.request.urlopen(f"{url}/api/keys", timeout=10) as response:  # loopback
        jwks = response.read()
    request_id = new_request_id()
    command = registration_command(name, url, state_dir, jwks, request_id)
    with RegistryClient(registry, TlsCredentials.from_pki(pki_dir, f"{name}-ops")) as client:
        return client.submit(request_id, command)


def _cross_region_attempt(out: _Narrator, pki_dir: Path, registry: str) -> None:
    out.say()
    out.say("Hangzhou's operator tries to revoke a Beijing key:")
    with RegistryClient(registry, TlsCredentials.from_pki(pki_dir, "hangzhou-ops")) as client:
        beijing = client.get_issuer("beijing")
        try:
            client.submit(new_request_id(), RevokeKey("beijing", beijing.keys[0].kid, "not mine"))
        except CallRefused as e:
            out.say(
                f"  refused: {str(e).removeprefix('gateway call failed: ')} (audited; "
                "nothing changed)"
            )
            if e.status != "PERMISSION_DENIED":
                out.failures.append(f"cross-region revocation answered {e.status}")
        else:
            out.failures.append("a cross-region revocation was accepted")


def _live_revocation(
    out: _Narrator,
    client: GatewayClient,
    pki_dir: Path,
    registry: str,
    regions: dict[str, _Process],
) -> None:
    out.say()
    out.say("7. Macau's operator revokes its key; the running gateway refuses its codes at once")
    _, answer = _http(
        f"{regions['macau'].address}/api/declarations", _travellers("2000-01-01")[0].body
    )
    out.check("王芳's Macau verde, before", client.verify(answer["code"]), colour=Colour.GREEN)
    with RegistryClient(registry, TlsCredentials.from_pki(pki_dir, "macau-ops")) as operator:
        kid = operator.get_issuer("macau").keys[0].kid
        change = operator.submit(new_request_id(), RevokeKey("macau", kid, "key exposed"))
    out.say(f"  revoked {kid}: trust version {change.trust_version}, audit #{change.audit.seq}")
    verdict = out.check(
        "王芳's Macau verde, after revocation",
        client.verify(answer["code"]),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_KEY_REVOKED,
    )
    if verdict.provenance.trust_version != change.trust_version:
        out.failures.append("the verdict after revocation did not use the new trust version")


TRANSFER_REGIONS = ("guangdong", "macau")
MACAU_TRANSFER = """
# Version 2 (the demo): the hub may attest GREEN decisions made here, for at most 12 hours, and
# attestations made for Macau count here.
[transfer]
attest = true
max_validity = "12h"
accept = ["820000"]
"""
TRANSFER_WAIT_S = 15.0
GREEN = Colour.GREEN


def _transfer(
    out: _Narrator,
    client: GatewayClient,
    regions: dict[str, _Process],
    pki_dir: Path,
    registry: str,
    files: StateFiles,
    kid: str,
) -> None:
    out.say()
    out.say("6. 转码: 王芳 carries her green status from Guangdong to Macau")
    text = (Path(__file__).parent / "macau" / "policy.toml").read_text("utf-8")
    text = text.replace("version = 1", "version = 2", 1) + MACAU_TRANSFER
    with RegistryClient(registry, TlsCredentials.from_pki(pki_dir, "macau-ops")) as operator:
        change = operator.submit(new_request_id(), SetPolicy(text))
    flags = "; ".join(f for f in load_policy(text).flags() if f.startswith("transfer"))
    out.say(f"   Macau's operator sets macau@2: {flags} (audit #{change.audit.seq})")
    wang, _, zhang, _ = _travellers("2000-01-01")
    _, blue = _http(f"{regions['guangdong'].address}/api/declarations", wang.body)
    out.check(f"王芳's 粤康码 {blue['state']}", client.verify(blue["code"]), colour=Colour.GREEN)
    outcome = client.attest([blue["code"]], "820000")
    attestation = outcome.attestation
    if attestation is None or outcome.expires_at is None:
        out.failures.append(f"no attestation for 王芳: {outcome.refused}")
        return
    expires = outcome.expires_at.astimezone(CHINA_STANDARD_TIME).strftime("%H:%M")
    out.say(
        f"  {_pad('王芳 asks the hub for an attestation for Macau', 44)} issued {outcome.code_ref},"
        f" {len(attestation)} characters (HR1:...), expires {expires} (set by {outcome.bound})"
    )
    out.check(
        "the attestation, verified as a code", client.verify(attestation), colour=Colour.GREEN
    )
    convert = f"{regions['macau'].address}/api/transfers"
    request = {"attestation": attestation, "id_number": wang.body["id_number"], "name": "王芳"}
    status, verde = _http(convert, request)
    if status != 201:
        out.failures.append(f"Macau did not convert 王芳's attestation: {status} {verde}")
        return
    out.say(
        f"  {_pad('Macau converts it offline (trust list)', 44)} 201 澳门健康码 {verde['state']}"
        f" for {verde['holder']}, use {verde['attestation']['uses']} of "
        f"{verde['attestation']['uses'] + verde['attestation']['uses_left']}"
    )
    out.decided(
        "王芳's converted verde at a Macau checkpoint",
        client.recognise([verde["code"]], "820000"),
        colour=Colour.GREEN,
        reason=DecisionReason.RECOGNISED,
        deciding=(0,),
    )
    status, other = _http(f"{regions['guangdong'].address}/api/transfers", request)
    out.say(f"  {_pad('the same attestation at Guangdong', 44)} {status} {other.get('reason')}")
    if other.get("reason") != "OTHER_DESTINATION":
        out.failures.append(f"Guangdong converted Macau's attestation: {status} {other}")
    _, red = _http(f"{regions['guangdong'].address}/api/declarations", zhang.body)
    refused = client.attest([red["code"]], "820000")
    detail = refused.refused.detail if refused.refused else "an attestation was issued"
    out.say(f"  {_pad('张伟 (红码) asks for one', 44)} refused: {detail}")
    if refused.attestation is not None:
        out.failures.append("张伟's red code was attested")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "gateway", "registry", "attestation-key", "revoke"),
            *("--state-dir", str(files.directory), "--kid", kid, "--reason", "key exposed"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out.say(f"  the hub revokes its attestation key: {result.stdout.strip()}")
    deadline = time.monotonic() + TRANSFER_WAIT_S
    while True:  # the hub publishes the new trust list within about a second
        status, after = _http(convert, request)
        if after.get("reason") == "ERR_KEY_REVOKED" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out.say(f"  {_pad('王芳 converts again at Macau', 44)} {status} {after.get('reason')}")
    if after.get("reason") != "ERR_KEY_REVOKED":
        out.failures.append(f"a revoked attestation key still converts: {status} {after}")
    out.check(
        "the attestation at the gateway, after",
        client.verify(attestation),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_KEY_REVOKED,
    )


def _audit_verify(out: _Narrator, files: StateFiles) -> None:
    out.say()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", "--state-dir", str(files.directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out.say(f"8. huren audit verify: {result.stdout.strip()}")
    if result.returncode != 0:
        out.failures.append(f"huren audit verify failed: {result.stdout} {result.stderr}")


def _scenario(
    out: _Narrator,
    client: GatewayClient,
    regions: dict[str, _Process],
    work: Path,
    journey: Callable[[], None],
) -> None:
    now = system_clock()
    today = now.astimezone(CHINA_STANDARD_TIME).date().isoformat()
    travellers = _travellers(today)

    out.say()
    out.say("1. Four travellers declare in every region; the gateway verifies every code")
    out.say("   " + "; ".join(f"{t.name}: {t.story}" for t in travellers))
    out.say()
    header = f"  {_pad('region', 24)}" + "".join(_pad(t.name, 26) for t in travellers)
    out.say(header)
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    subjects: dict[str, str] = {}
    for name, process in regions.items():
        spec = spec_of(name)
        cells = []
        for t in travellers:
            status, answer = _http(f"{process.address}/api/declarations", t.body)
            answers[(name, t.name)] = answer
            if answer.get("code") is None:
                cells.append("(review running: no code)" if status == 202 else f"HTTP {status}")
                continue
            expected = EXPECTED.get(t.level, Colour.GREY)
            verdict = out.check(
                f"{name} {t.name} {answer['state']}",
                client.verify(answer["code"]),
                colour=expected,
                show=False,
            )
            if verdict.code is not None and t.level is Level.GREEN:
                subjects[name] = verdict.code.subject
            cells.append(f"{answer['state']} -> {verdict.colour.value}")
        out.say(
            f"  {_pad(spec.display_name + ' ' + name, 24)}" + "".join(_pad(c, 26) for c in cells)
        )

    out.say()
    distinct = set(subjects.values())
    out.say(
        f"2. 王芳's green codes from {len(subjects)} regions carry her identity three ways"
        " (full number; masked number + link hash; sealed pseudonym)"
    )
    out.say(f"   and resolve to {len(distinct)} subject reference: {', '.join(sorted(distinct))}")
    if len(subjects) != len(REGIONS) or len(distinct) != 1:
        out.failures.append(f"subject references across regions: {subjects}")

    out.say()
    out.say(
        "3. Pending codes become final after the back-end review (温州市鹿城区 reviewed: low risk)"
    )
    out.check(
        "陈静 hangzhou 灰码 (pending)",
        client.verify(answers[("hangzhou", "陈静")]["code"]),
        colour=Colour.GREY,
    )
    time.sleep(REVIEW_WAIT_S)
    for name in ("hangzhou", "shanghai", "zhejiang"):
        declaration_id = answers[(name, "陈静")]["id"]
        _, final = _http(f"{regions[name].address}/api/declarations/{declaration_id}")
        out.check(
            f"陈静 {name} after review: {final['state']}",
            client.verify(final["code"]),
            colour=Colour.GREEN,
        )
    out.say()
    out.say("   张伟 appeals his 红码 in Hangzhou; the duty officer accepts it")
    hangzhou = regions["hangzhou"].address
    _, appeal = _http(
        f"{hangzhou}/api/appeals",
        {
            "declaration_id": answers[("hangzhou", "张伟")]["id"],
            "reason": "the contact was a mistake",
        },
    )
    token = (work / "hangzhou" / "operator.token").read_text().strip()
    _, decided = _http(
        f"{hangzhou}/api/appeals/{appeal['appeal_id']}/decision",
        {"decision": "accept", "reason": "contact list entry was wrong"},
        token=token,
    )
    _, record = _http(f"{hangzhou}/api/appeals/{appeal['appeal_id']}")
    for event in record["events"]:
        when, actor = event["at"][:19], _pad(event["actor"], 13)
        out.say(f"     {when}  {actor} {event['action']}: {event['detail']}")
    out.check(
        "张伟 corrected code " + decided["corrected"]["state"],
        client.verify(decided["corrected"]["code"]),
        colour=Colour.GREEN,
    )

    journey()
    out.say()
    out.say("5. Codes that must not pass, and rules that bite")
    _must_not_pass(out, client, answers, regions, work, travellers)


# Where the journey's traveller shows her two codes, what each destination decides, and why.
JOURNEY = (
    ("北京 Beijing", "beijing", "110000", Colour.YELLOW, DecisionReason.REQUIREMENT_UNMET, (0,)),
    ("上海 Shanghai", "shanghai", "310000", Colour.GREEN, DecisionReason.RECOGNISED, (1,)),
    ("广东 Guangdong", "guangdong", "440000", Colour.RED, DecisionReason.RECOGNISED, (0,)),
    ("澳门 Macau", "macau", "820000", Colour.GREY, DecisionReason.NO_RECOGNISED_CODE, ()),
    ("湖北 Hubei", None, "420000", Colour.YELLOW, DecisionReason.RECOGNISED, (0,)),
)


def _journey(
    out: _Narrator,
    client: GatewayClient,
    regions: dict[str, _Process],
    pki_dir: Path,
    registry: str,
) -> None:
    out.say()
    out.say("4. Mutual recognition: one traveller, two codes that disagree, five destinations")
    out.say(
        "   刘洋 reported a fever to Zhejiang's provincial system; Hangzhou's city system,"
        " which ran its own checks, shows green"
    )
    body = {
        "id_number": synthetic_id("330105", "19920618", "045"),
        "name": "刘洋",
        "phone": "13800000005",
        "trips": [],
    }
    _, provincial = _http(
        f"{regions['zhejiang'].address}/api/declarations", {**body, "symptoms": ["发热"]}
    )
    _, city = _http(f"{regions['hangzhou'].address}/api/declarations", body)
    codes = [provincial["code"], city["code"]]
    out.check(
        f"刘洋 code 1: zhejiang {provincial['state']}",
        client.verify(codes[0]),
        colour=Colour.YELLOW,
    )
    out.check(
        f"刘洋 code 2: hangzhou {city['state']}", client.verify(codes[1]), colour=Colour.GREEN
    )
    out.say()
    out.say(
        "   Each destination's operator sets its precedence policy (huren policy set; audited):"
    )
    for _, name, code, *_ in JOURNEY:
        if name is None:
            out.say(f"   {code} has no policy of its own: the national default decides there")
            continue
        text = (Path(__file__).parent / name / "policy.toml").read_text("utf-8")
        with RegistryClient(registry, TlsCredentials.from_pki(pki_dir, f"{name}-ops")) as operator:
            change = operator.submit(new_request_id(), SetPolicy(text))
        policy = load_policy(text)
        flags = "".join(f"  [{f.split(':')[0]}]" for f in policy.flags())
        out.say(
            f"   {code} {policy.label:<12} {policy.description}{flags}  (audit #{change.audit.seq})"
        )
    out.say()
    for place, _, code, colour, reason, deciding in JOURNEY:
        out.decided(
            f"刘洋 at {place} ({code})",
            client.recognise(codes, code),
            colour=colour,
            reason=reason,
            deciding=deciding,
        )


def _must_not_pass(
    out: _Narrator,
    client: GatewayClient,
    answers: dict[tuple[str, str], dict[str, Any]],
    regions: dict[str, _Process],
    work: Path,
    travellers: list[Traveller],
) -> None:
    now = system_clock()
    wang = travellers[0]
    holder = Holder(wang.body["id_number"], wang.name)
    # Tampered: 李强's Beijing 居家观察 edited to read 未见异常, signature kept.
    text = answers[("beijing", "李强")]["code"]
    message = cose.parse(textform.decode(text, "BJ1:", Limits()), Limits())
    claims = dict(strictcbor.loads(message.payload, max_depth=8))
    claims[10] = "未见异常"
    edited = [message.protected_raw, {}, strictcbor.dumps(claims), message.signature]
    forged = textform.encode("BJ1:", b"\xd2" + strictcbor.dumps(edited))
    out.check(
        "李强 edits Beijing 居家观察 to 未见异常",
        client.verify(forged),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_SIGNATURE,
    )
    # Expired: a Shanghai code from 31 minutes ago (Shanghai codes live 30 minutes).
    shanghai = build_region("shanghai", _offline_context(work / "shanghai"))
    secrets = load_secrets(spec_of("shanghai"), work / "shanghai", None)
    old = shanghai.issue(holder, "0", now - timedelta(minutes=31), secrets, "demo")
    out.check(
        "王芳 shows a 31-minute-old Shanghai code",
        client.verify(old.code),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_EXPIRED,
    )
    # Degraded: a Hubei green code issued 4 days ago reads as yellow.
    link_key = bytes.fromhex((work / "gateway" / "link.key").read_text().strip())
    hubei = build_region("hubei", _offline_context(work / "hubei"))
    aged = hubei.issue(
        holder,
        "00",
        now - timedelta(days=4),
        load_secrets(spec_of("hubei"), work / "hubei", link_key),
        "demo",
    )
    out.check(
        "王芳 shows a 4-day-old Hubei 00 (green)", client.verify(aged.code), colour=Colour.YELLOW
    )
    # Unregistered issuer.
    rogue = PrivateKey.generate(Algorithm.ES256)
    payload = {
        "iss": IssuerId("yuhang"),
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 3600,
        "hc": "绿码",
        "idn": wang.body["id_number"],
    }
    unregistered = jws.sign({"alg": "ES256", "kid": "yuhang-1"}, strictjson.dumps(payload), rogue)
    out.check(
        "a 绿码 from issuer 'yuhang' (never registered)",
        client.verify(unregistered),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_ISSUER_UNKNOWN,
    )
    # A Zhejiang token nobody issued.
    zhejiang = regions["zhejiang"].address
    out.check(
        "a Zhejiang URL with a made-up token",
        client.verify(f"{zhejiang}/hc/v1/{base64url.encode(b'not a real token')}"),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_TOKEN_UNKNOWN,
    )
    # Zhejiang's verification API goes down: its codes are UNVERIFIABLE, others still verify.
    _, fresh = _http(f"{zhejiang}/api/declarations", wang.body)
    regions["zhejiang"].stop()
    out.check(
        "Zhejiang's API is down: 王芳's Zhejiang code",
        client.verify(fresh["code"]),
        colour=Colour.GREY,
        status=Status.UNVERIFIABLE,
        reason=Reason.ERR_ISSUER_UNAVAILABLE,
    )
    out.check(
        "meanwhile 王芳's Beijing code",
        client.verify(answers[("beijing", "王芳")]["code"]),
        colour=Colour.GREEN,
    )


def _offline_context(state_dir: Path) -> RegionContext:
    """A region object for minting demo codes outside its service (no token records)."""

    class _NoTokens:
        def add_token(self, *args: object) -> None:
            raise RuntimeError("not used offline")

    return RegionContext(_NoTokens(), "http://127.0.0.1", state_dir)
