"""``huren demo``: a cross-region scenario a person can read.

Starts the Hangzhou issuer and a gateway as separate processes on loopback, registers the issuer
in the gateway's SQLite registry from the issuer's published keys and its profile file, has four
travellers declare, verifies their codes over gRPC, then shows three codes that must not pass.
Every verdict is checked against what the scenario expects; any surprise fails the demo.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unicodedata
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.client import GatewayClient
from gateway.clock import system_clock
from gateway.codecs import base64url, jws, strictjson
from gateway.crypto import Algorithm, PrivateKey
from gateway.identity import resident_id_check_char
from gateway.keyfiles import read_keys
from gateway.model import Colour, IssuerId, ProfileId, Reason, Status, Verdict
from gateway.registry import Issuer, IssuerKey
from gateway.report import verdict_json, verdict_line
from gateway.storage.sqlite import ProfileSource, RegistryStore
from regions import load_region
from regions.common.declarations import parse_declaration
from regions.common.keys import load_or_create
from regions.common.spec import CHINA_STANDARD_TIME

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Traveller:
    name: str
    story: str
    declaration: dict[str, Any]
    expected_state: str
    expected_colour: Colour


def synthetic_id(district: str, born: str, sequence: str) -> str:
    """A well-formed (fictional) resident id number: district + birth date + sequence + check."""
    first17 = district + born + sequence
    return first17 + resident_id_check_char(first17)


def _travellers(today: str) -> list[Traveller]:
    def trip(place: str) -> list[dict[str, str]]:
        return [{"place": place, "from": today, "to": today}]

    def person(
        name: str, id_number: str, phone: str, trips: list[dict[str, str]], **extra: Any
    ) -> dict[str, Any]:
        return {"id_number": id_number, "name": name, "phone": phone, "trips": trips, **extra}

    return [
        Traveller(
            "王芳",
            "no trips, no symptoms",
            person("王芳", synthetic_id("330106", "19900307", "122"), "13800000001", []),
            "绿码",
            Colour.GREEN,
        ),
        Traveller(
            "李强",
            "trip to 上海市徐汇区 (medium risk)",
            person(
                "李强",
                synthetic_id("330102", "19851120", "031"),
                "13800000002",
                trip("上海市徐汇区"),
            ),
            "黄码",
            Colour.YELLOW,
        ),
        Traveller(
            "张伟",
            "close contact of a case",
            person(
                "张伟",
                synthetic_id("330110", "19780514", "257"),
                "13800000003",
                [],
                contact=True,
            ),
            "红码",
            Colour.RED,
        ),
        Traveller(
            "陈静",
            "trip to 温州市鹿城区 (not on the list: needs a check)",
            person(
                "陈静",
                synthetic_id("330106", "20010909", "084"),
                "13800000004",
                trip("温州市鹿城区"),
            ),
            "灰码",
            Colour.GREY,
        ),
    ]


class _Process:
    """A child process that announces its address on its first line of output."""

    def __init__(self, args: list[str], pattern: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"{args[0]} did not start within {START_TIMEOUT_S:.0f} s") from None
        match = re.search(pattern, line)
        if match is None:
            self.stop()
            raise RuntimeError(f"{args[0]} did not start: {line.strip() or 'no output'}")
        self.address = match.group(1)

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
def _running(args: list[str], pattern: str) -> Iterator[_Process]:
    process = _Process(args, pattern)
    try:
        yield process
    finally:
        process.stop()


def _http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read(1 << 20))


class _Narrator:
    def __init__(self, json_output: bool) -> None:
        self.json_output = json_output
        self.failures: list[str] = []
        self.count = 0

    def say(self, text: str = "") -> None:
        if not self.json_output:
            print(text, flush=True)

    def verdict(
        self,
        who: str,
        verdict: Verdict,
        *,
        colour: Colour,
        status: Status = Status.VALID,
        reason: Reason = Reason.OK,
    ) -> None:
        self.count += 1
        if self.json_output:
            print(json.dumps(verdict_json(verdict), ensure_ascii=False), flush=True)
        else:
            print(f"  {_pad(who, 46)} {verdict_line(verdict)}", flush=True)
        if (verdict.colour, verdict.status, verdict.reason) != (colour, status, reason):
            self.failures.append(
                f"{who}: expected {colour.value}/{status.value}/{reason.value}, got "
                f"{verdict.colour.value}/{verdict.status.value}/{verdict.reason.value}"
            )


def _pad(text: str, width: int) -> str:
    """Left-align ``text`` in ``width`` terminal columns (CJK characters take two)."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - columns)


def run_demo(*, json_output: bool = False) -> int:
    out = _Narrator(json_output)
    work = Path(tempfile.mkdtemp(prefix="huren-demo-"))
    hangzhou = load_region("hangzhou")
    spec = hangzhou.spec
    try:
        out.say("huren demo: Hangzhou issues health codes; the gateway verifies them over gRPC")
        out.say()
        out.say("Setup (all on loopback, state in a temporary folder)")
        region_dir = work / "hangzhou"
        with _running(
            ["region", "serve", "hangzhou", "--port", "0", "--state-dir", str(region_dir)],
            r"listening on (http://\S+)",
        ) as region:
            jwks = _http_json(f"{region.address}/api/keys")
            keys = read_keys(json.dumps(jwks).encode())
            out.say(
                f"  region  {spec.name} ({spec.code}) {spec.display_name} at {region.address},"
                f" key {keys[0].kid} ({spec.algorithm.value})"
            )
            gateway_dir = work / "gateway"
            gateway_dir.mkdir()
            profile = ProfileSource.parse(spec.profile_text())
            issuer = Issuer(
                spec.issuer,
                spec.code,
                spec.display_name,
                ProfileId(profile.profile.id),
                profile.profile.version,
            )
            with contextlib.closing(RegistryStore(gateway_dir / "registry.db")) as store:
                snapshot = store.register_issuer(
                    issuer,
                    profile,
                    [IssuerKey(issuer.id, k.kid, k.public_key) for k in keys],
                    at=system_clock(),
                )
            out.say(
                f"  registry  issuer {issuer.id} with profile {profile.profile.label} and the"
                f" key from GET /api/keys (trust version {snapshot.version})"
            )
            with (
                _running(
                    ["serve", "--listen", "127.0.0.1:0", "--state-dir", str(gateway_dir)],
                    r"listening on (\S+)",
                ) as gateway,
                GatewayClient(gateway.address) as client,
            ):
                out.say(
                    f"  gateway  gRPC on {gateway.address}, registry {gateway_dir.name}/registry.db"
                )
                _scenario(out, client, region.address, region_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.say()
    if out.failures:
        for failure in out.failures:
            print(f"demo: UNEXPECTED {failure}", file=sys.stderr)
        return 1
    out.say(f"All {out.count} verdicts are as expected.")
    return 0


def _scenario(out: _Narrator, client: GatewayClient, region_url: str, region_dir: Path) -> None:
    now = system_clock()
    today = now.astimezone(CHINA_STANDARD_TIME).date().isoformat()
    travellers = _travellers(today)

    out.say()
    out.say("1. Four travellers declare to Hangzhou (POST /api/declarations)")
    codes: dict[str, str] = {}
    for t in travellers:
        answer = _http_json(f"{region_url}/api/declarations", t.declaration)
        codes[t.name] = answer["code"]
        out.say(f"  {_pad(t.name, 6)} {_pad(t.story, 50)} -> {answer['state']}")
        if answer["state"] != t.expected_state:
            out.failures.append(f"{t.name}: Hangzhou answered {answer['state']}")

    out.say()
    out.say("2. A checkpoint verifies each code through the gateway (Verify RPC)")
    for t in travellers:
        out.verdict(t.name, client.verify(codes[t.name]), colour=t.expected_colour)

    out.say()
    out.say("3. Codes that must not pass")
    header, payload, signature = codes["李强"].split(".")
    claims = strictjson.loads(base64url.decode(payload), max_bytes=4096, max_depth=4)
    forged = base64url.encode(strictjson.dumps({**claims, "hc": "绿码"}))
    out.verdict(
        "李强 edits his 黄码 to read 绿码",
        client.verify(f"{header}.{forged}.{signature}"),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_SIGNATURE,
    )
    hangzhou = load_region("hangzhou")
    signing = load_or_create(region_dir, "hangzhou", Algorithm.ES256)
    wang = travellers[0]
    yesterday = hangzhou.issue(
        parse_declaration(json.dumps(wang.declaration).encode()),
        "绿码",
        now - timedelta(hours=25),
        signing.key,
        signing.kid,
    )
    out.verdict(
        "王芳 shows yesterday's 绿码",
        client.verify(yesterday.code),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_EXPIRED,
    )
    rogue = PrivateKey.generate(Algorithm.ES256)
    unregistered = jws.sign(
        {"alg": "ES256", "kid": "yuhang-1", "typ": "JWT"},
        strictjson.dumps(
            {
                "iss": IssuerId("yuhang"),
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 3600,
                "hc": "绿码",
                "idn": wang.declaration["id_number"],
            }
        ),
        rogue,
    )
    out.verdict(
        "a 绿码 from issuer 'yuhang' (never registered)",
        client.verify(unregistered),
        colour=Colour.GREY,
        status=Status.REJECTED,
        reason=Reason.ERR_ISSUER_UNKNOWN,
    )
