"""The ``huren`` command line, run as a user runs it: separate processes on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import system_clock
from regions.common.keys import SigningKey, load_or_create
from regions.common.spec import Holder, Secrets
from regions.hangzhou import SPEC, Hangzhou
from tests.conftest import REPO, resident_id
from tests.integration.cli import ENV, HUREN, huren, huren_bytes, init_state, spawn

pytestmark = pytest.mark.slow
JSON_FIELDS = {
    "status",
    "colour",
    "reason",
    "region",
    "issuer",
    "kid",
    "profile",
    "issued_at",
    "expires_at",
    "subject",
}


HANGZHOU = Hangzhou()


def hangzhou_registry(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A registry filled by ``huren registry add-issuer`` (Hangzhou), a ``huren pki init``
    folder, and codes of Hangzhou's registered key: (state, codes, pki)."""
    signing = load_or_create(tmp_path / "hangzhou", "hangzhou", SPEC.algorithm)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signing.jwk()]}))
    state = tmp_path / "gateway"
    init_state(state, ("330100", "杭州"))
    added = huren(
        "registry",
        "add-issuer",
        "--state-dir",
        str(state),
        "--id",
        "hangzhou",
        "--region",
        "330100",
        "--name",
        "杭州健康码",
        "--profile",
        str(REPO / "regions" / "hangzhou" / "profile.toml"),
        "--keys",
        str(jwks),
        "--signing-key",
        str(tmp_path / "hangzhou" / "signing-key.pem"),
    )
    assert added.returncode == 0, added.stderr
    assert "registered issuer hangzhou" in added.stdout
    assert huren("pki", "init", str(tmp_path / "pki")).returncode == 0
    return state, _codes(signing), tmp_path / "pki"


@pytest.fixture
def served_gateway(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """A gateway process whose registry was filled by ``huren registry add-issuer``."""
    state, codes, pki = hangzhou_registry(tmp_path)
    with subprocess.Popen(
        [
            *(*HUREN, "serve", "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"),
            *("--state-dir", str(state), "--tls-dir", str(tmp_path / "pki")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"listening on (\S+) \(trust version (\d+), 1 issuers;", line)
            assert match, line
            yield match.group(1), codes, str(pki)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _codes(signing: SigningKey) -> dict[str, str]:
    """Codes minted exactly as the Hangzhou service mints them, with the registered key."""
    now = system_clock()
    secrets = Secrets(signing.key, signing.kid)
    holder = Holder(resident_id(), "王芳")
    return {
        "green": HANGZHOU.issue(holder, "绿码", now, secrets, "cli").code,
        "red": HANGZHOU.issue(holder, "红码", now, secrets, "cli").code,
        "expired": HANGZHOU.issue(holder, "绿码", now - timedelta(hours=30), secrets, "cli").code,
    }


def test_verify_json_prints_one_object_per_code(served_gateway):
    address, codes, pki = served_gateway
    result = huren(
        "verify", "--gateway", address, "--pki", pki, "--json", codes["green"], codes["red"]
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["colour"] for line in lines] == ["GREEN", "RED"]
    for line in lines:
        assert set(line) >= JSON_FIELDS
        assert (line["status"], line["reason"], line["region"]) == ("VALID", "OK", "330100")
        assert (line["issuer"], line["profile"], line["profile_version"]) == (
            "hangzhou",
            "hangzhou",
            1,
        )
        assert line["subject"].startswith("s1.")
        assert resident_id() not in json.dumps(line)


def test_verify_reads_stdin_and_exits_1_when_a_code_is_not_valid(served_gateway):
    address, codes, pki = served_gateway
    stdin = "\n".join([codes["green"], codes["expired"], "garbage"]) + "\n"
    result = huren(
        "verify", "--gateway", address, "--pki", pki, "--json", "--at", "110000", stdin=stdin
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["status"], x["reason"]) for x in lines] == [
        ("VALID", "OK"),
        ("REJECTED", "ERR_EXPIRED"),
        ("REJECTED", "ERR_FORMAT_UNKNOWN"),
    ]
    assert all(x["destination"] == "110000" for x in lines)


def test_verify_human_output_and_health(served_gateway, tmp_path):
    address, codes, pki = served_gateway
    result = huren("verify", "--gateway", address, "--pki", pki, codes["red"])
    assert result.returncode == 0
    assert result.stdout.startswith("RED")
    assert "红码" in result.stdout
    assert resident_id() not in result.stdout
    health = huren("health", "--gateway", address, "--pki", pki)
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
    # Without the CA that signed the gateway's certificate, nothing is trusted.
    other = tmp_path / "other"
    assert huren("pki", "init", str(other)).returncode == 0
    untrusted = huren("health", "--gateway", address, "--pki", str(other), "--timeout", "2")
    assert untrusted.returncode == 2
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING")


def test_an_unreachable_gateway_is_a_clear_error():
    result = huren("verify", "--gateway", "127.0.0.1:1", "--insecure", "x", timeout=60)
    assert result.returncode == 2
    assert "UNAVAILABLE" in result.stderr


def test_a_bad_profile_is_refused_by_the_cli(tmp_path):
    bad = tmp_path / "profile.toml"
    bad.write_text(
        (REPO / "regions" / "hangzhou" / "profile.toml").read_text().replace("GREEN", "GREN")
    )
    init_state(tmp_path / "g", ("330100", "杭州"))
    result = huren(
        "registry",
        "add-issuer",
        "--state-dir",
        str(tmp_path / "g"),
        "--id",
        "x",
        "--region",
        "330100",
        "--name",
        "x",
        "--profile",
        str(bad),
    )
    assert result.returncode == 2
    assert "states.绿码 is 'GREN'" in result.stderr
    # Refused by the registry itself, and audited like a refusal over the network.
    log = huren("audit", "log", "--state-dir", str(tmp_path / "g"), "--json")
    last = json.loads(log.stdout.splitlines()[-1])
    assert (last["action"], last["outcome"]) == ("register-issuer", "refused")


def test_demo_json_shows_every_outcome_it_promises():
    result = huren("demo", "--json", timeout=180)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    decisions = {line["case"]: line["decision"] for line in lines if "decision" in line}
    converted = decisions.pop("王芳's converted verde at a Macau checkpoint")
    verdicts = [line for line in lines if "decision" not in line]
    for line in verdicts:
        assert set(line) >= JSON_FIELDS
    by_case = {line["case"]: line for line in verdicts}

    def outcome(prefix: str) -> tuple[str, str, str]:
        (line,) = [v for k, v in by_case.items() if k.startswith(prefix)]
        return line["status"], line["colour"], line["reason"]

    # The region x state table: every region's green, yellow and red, and the pending states.
    for region in ("hangzhou", "zhejiang", "beijing", "shanghai", "guangdong", "macau", "hubei"):
        assert outcome(f"{region} 王芳") == ("VALID", "GREEN", "OK")
        assert outcome(f"{region} 李强") == ("VALID", "YELLOW", "OK")
        assert outcome(f"{region} 张伟") == ("VALID", "RED", "OK")
    for pending in (
        "hangzhou 陈静 灰码",
        "zhejiang 陈静 init",
        "beijing 陈静 弹窗",
        "hubei 陈静 99",
    ):
        assert outcome(pending) == ("VALID", "GREY", "OK")
    # One person, one subject reference, whatever the region's identity carrier.
    subjects = {
        v["subject"] for k, v in by_case.items() if " 王芳 " in k and v["colour"] == "GREEN"
    }
    assert len(subjects) == 1
    assert outcome("陈静 shanghai after review") == ("VALID", "GREEN", "OK")
    assert outcome("张伟 corrected code") == ("VALID", "GREEN", "OK")
    assert outcome("李强 edits Beijing") == ("REJECTED", "GREY", "ERR_SIGNATURE")
    assert outcome("王芳 shows a 31-minute-old Shanghai") == ("REJECTED", "GREY", "ERR_EXPIRED")
    assert outcome("王芳 shows a 4-day-old Hubei") == ("VALID", "YELLOW", "OK")
    assert outcome("a 绿码 from issuer 'yuhang'") == ("REJECTED", "GREY", "ERR_ISSUER_UNKNOWN")
    assert outcome("a Zhejiang URL with a made-up token") == (
        "REJECTED",
        "GREY",
        "ERR_TOKEN_UNKNOWN",
    )
    assert outcome("Zhejiang's API is down") == ("UNVERIFIABLE", "GREY", "ERR_ISSUER_UNAVAILABLE")
    assert outcome("meanwhile") == ("VALID", "GREEN", "OK")
    assert outcome("王芳's Macau verde, before") == ("VALID", "GREEN", "OK")
    assert outcome("王芳's Macau verde, after revocation") == (
        "REJECTED",
        "GREY",
        "ERR_KEY_REVOKED",
    )
    # Mutual recognition: the same two codes, five destinations, five policies.
    assert outcome("刘洋 code 1: zhejiang") == ("VALID", "YELLOW", "OK")
    assert outcome("刘洋 code 2: hangzhou") == ("VALID", "GREEN", "OK")
    decided = {
        case.split("(")[1].rstrip(")"): (d["colour"], d["reason"], d["deciding"], d["policy_id"])
        for case, d in decisions.items()
    }
    assert decided == {
        "110000": ("YELLOW", "REQUIREMENT_UNMET", [0], "beijing"),
        "310000": ("GREEN", "RECOGNISED", [1], "shanghai"),
        "440000": ("RED", "RECOGNISED", [0], "guangdong"),
        "820000": ("GREY", "NO_RECOGNISED_CODE", [], "macau"),
        "420000": ("YELLOW", "RECOGNISED", [0], "national-default"),
    }
    for decision in decisions.values():
        assert decision["steps"][-1]["rule"].startswith("decide.")
        assert [c["verdict"]["issuer"] for c in decision["codes"]] == ["zhejiang", "hangzhou"]
    assert decisions["刘洋 at 北京 Beijing (110000)"]["code_stacking"] is True
    # 转码: Guangdong's blue, the hub's attestation for Macau, Macau's own verde at a checkpoint;
    # the attestation is refused everywhere once its key is revoked (the demo checks that
    # Macau's issuer stops converting, and that 张伟's red gets no attestation).
    assert outcome("王芳's 粤康码 blue") == ("VALID", "GREEN", "OK")
    attestation = by_case["the attestation, verified as a code"]
    assert (attestation["status"], attestation["colour"]) == ("VALID", "GREEN")
    assert (attestation["region"], attestation["issuer"]) == ("100000", "huren-hub")
    assert attestation["subject"] in subjects
    assert (converted["colour"], converted["policy_id"], converted["policy_version"]) == (
        "GREEN",
        "macau",
        2,
    )
    assert [c["verdict"]["issuer"] for c in converted["codes"]] == ["macau"]
    assert outcome("the attestation at the gateway, after") == (
        "REJECTED",
        "GREY",
        "ERR_KEY_REVOKED",
    )


def test_demo_prints_a_readable_story_and_keeps_serving_its_pages():
    with spawn("demo", "--serve") as proc:
        try:
            assert proc.stdout is not None
            story = []
            while "Serving until Ctrl-C" not in (line := proc.stdout.readline()):
                assert line, (
                    f"the demo ended before serving: {proc.stderr.read() if proc.stderr else ''}"
                )
                story.append(line)
            served = [proc.stdout.readline() for _ in range(9)]
            urls = dict(
                re.findall(r"^\s+(\S+)\s+(http://127\.0\.0\.1:\d+)/$", "".join(served), re.M)
            )
            assert len(urls) == 7, served
            with urllib.request.urlopen(urls["杭州健康码"] + "/", timeout=10) as page:  # loopback
                assert page.status == 200
                assert "杭州健康码" in page.read().decode("utf-8")
            # Zhejiang's service, which the scenario stopped, serves again on its registered port.
            with urllib.request.urlopen(urls["浙江健康码"] + "/", timeout=10) as page:  # loopback
                assert page.status == 200
            assert any("huren verify --gateway 127.0.0.1:" in line for line in served)
        finally:
            proc.send_signal(signal.SIGINT)
            rest, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    text = "".join(story) + rest
    for expected in (
        "registers its issuer over mutual TLS",
        "refused: PERMISSION_DENIED",
        "ERR_KEY_REVOKED",
        "audit chain intact",
        "未见异常 -> GREEN",
        "verde -> GREEN",
        "00 -> GREEN",
        "1 subject reference",
        "after review",
        "duty-officer",
        "ERR_SIGNATURE",
        "ERR_EXPIRED",
        "UNVERIFIABLE",
        "ERR_ISSUER_UNKNOWN",
        "Mutual recognition",
        "[combine.jurisdiction]",
        "[require.own_region.unmet]",
        "verdicts and decisions are as expected",
    ):
        assert expected in text


def _region_files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A region's state directory and a JWKS file of its public key, as its service makes them."""
    from regions import build_region, spec_of
    from regions.common.keys import load_secrets
    from regions.common.spec import RegionContext

    state = tmp_path / name
    spec = spec_of(name)
    build_region(name, RegionContext(None, "https://zj.example", state))  # type: ignore[arg-type]
    secrets = load_secrets(spec, state, b"k" * 32)
    public = secrets.key.public_key()
    jwks = tmp_path / f"{name}.jwks"
    jwks.write_text(json.dumps({"keys": [{**public.jwk(), "kid": secrets.kid}]}))
    return state, jwks


def test_pseudonym_and_online_issuers_register_with_their_credentials(tmp_path):
    gateway = tmp_path / "gateway"
    init_state(gateway, ("110000", "北京"), ("330000", "浙江"))
    beijing, beijing_jwks = _region_files(tmp_path, "beijing")
    common = ["registry", "add-issuer", "--state-dir", str(gateway)]
    refused = huren(
        *common,
        *("--id", "beijing", "--region", "110000", "--name", "北京健康宝"),
        *("--profile", str(REPO / "regions" / "beijing" / "profile.toml")),
        *("--keys", str(beijing_jwks)),
        *("--signing-key", str(beijing / "signing-key.pem")),
    )
    assert refused.returncode == 2
    assert "pseudonym profile needs the issuer's pseudonym key" in refused.stderr
    added = huren(
        *common,
        *("--id", "beijing", "--region", "110000", "--name", "北京健康宝"),
        *("--profile", str(REPO / "regions" / "beijing" / "profile.toml")),
        *("--keys", str(beijing_jwks)),
        *("--signing-key", str(beijing / "signing-key.pem")),
        *("--pseudonym-key-file", str(beijing / "pseudonym.key")),
    )
    assert added.returncode == 0, added.stderr
    zhejiang, zhejiang_jwks = _region_files(tmp_path, "zhejiang")
    online = [
        *common,
        *("--id", "zhejiang", "--region", "330000", "--name", "浙江健康码"),
        *("--profile", str(REPO / "regions" / "zhejiang" / "profile.toml")),
        *("--keys", str(zhejiang_jwks)),
        *("--signing-key", str(zhejiang / "signing-key.pem")),
    ]
    incomplete = huren(*online, "--online-code-prefix", "https://zj.example/hc/v1/")
    assert incomplete.returncode == 2
    assert "--online-verify-url" in incomplete.stderr
    added = huren(
        *online,
        *("--online-code-prefix", "https://zj.example/hc/v1/"),
        *("--online-verify-url", "https://zj.example/api/verify"),
        *("--online-client", str(zhejiang / "hub-client.json")),
    )
    assert added.returncode == 0, added.stderr
    assert "trust version 8" in added.stdout  # two regions, then profile, issuer, key twice


def test_an_unquoted_base45_code_split_by_the_shell_is_named_not_verified_in_pieces():
    """Issue 11, 9: base45's alphabet has a space, so an unquoted HC1 code arrives as several
    arguments; each piece used to be verified (and refused) on its own, silently."""
    pieces = ["HC1:NCFOXN%TS3DH", "3ZSUZK+.V0ETD%65NL-AH", "RCIOOP-IMJ7"]
    for command in (["verify", "--insecure"], ["recognise", "--insecure", "--at", "310000"]):
        result = huren(*command, "--gateway", "127.0.0.1:9", *pieces)
        assert result.returncode == 2, result.stderr
        assert "argument 2 does not start like a code" in result.stderr
        assert "Quote each code" in result.stderr
        assert result.stdout == ""


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """Issue 11, 10: `huren profile check X | head -3` printed `huren: [Errno 32] Broken pipe`."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        result = subprocess.run(
            [*HUREN, "profile", "check", str(REPO / "gateway/profiles/formats/eu-dcc.toml")],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO,
        )
    finally:
        os.close(write)
    assert result.stderr == ""
    assert result.returncode == 141


# ------------------------------------------------------------------ a checkpoint's terminal


def _scanner(address: str, pki: str, *options: str) -> subprocess.Popen[str]:
    """``huren verify`` reading from a pipe a hand-held scanner types into."""
    return subprocess.Popen(
        [*HUREN, "verify", "--gateway", address, "--pki", pki, *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=ENV,
    )


def _answer(proc: subprocess.Popen[str], line: str) -> str:
    """Types ``line`` and Enter, and reads the answer while the input stays open."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline()


def test_verify_answers_each_scanned_line_at_once_with_the_input_still_open(served_gateway):
    address, codes, pki = served_gateway
    with _scanner(address, pki, "--at", "310000") as proc:
        try:
            # Each answer is read before the next line is typed: nothing waits for the end.
            assert _answer(proc, codes["green"]).startswith("GREEN  VALID")
            red = _answer(proc, codes["red"])
            assert red.startswith("RED    VALID")
            assert "红码" in red
            assert _answer(proc, "garbage").startswith("GREY   REJECTED     ERR_FORMAT_UNKNOWN")
            # A scanner that sends CR LF, and an empty scan, are not codes of their own.
            assert _answer(proc, "\n" + codes["green"] + "\r").startswith("GREEN  VALID")
        finally:
            out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (1, "", "")  # garbage was not VALID
    assert resident_id() not in out


def test_a_line_that_is_not_a_code_is_named_and_the_next_lines_are_still_answered(
    served_gateway,
):
    address, codes, pki = served_gateway
    stdin = codes["green"].encode() + b"\n" + "测试".encode("gbk") + b"\n"
    stdin += codes["red"].encode() + b"\n"
    text = huren_bytes("verify", "--gateway", address, "--pki", pki, stdin=stdin)
    assert text.returncode == 2  # something could not be answered
    assert [line.split()[0] for line in text.stdout.splitlines()] == ["GREEN", "RED"]
    assert text.stderr.splitlines() == [
        "huren: standard input is not UTF-8 text at line 2 (byte 0xb2 at offset 0 of the line):"
        " health codes are ASCII; convert it (iconv -f GBK -t UTF-8)"
    ]
    # With --json every line has its answer on stdout, in order: a gate program stays aligned.
    as_json = huren_bytes("verify", "--gateway", address, "--pki", pki, "--json", stdin=stdin)
    answers = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [a.get("colour") or a["error"]["reason"] for a in answers] == [
        "GREEN",
        "RequestInvalid",
        "RED",
    ]
    assert answers[1]["line"] == 2
    assert (as_json.returncode, as_json.stderr) == (2, "")


def test_require_green_is_what_lets_a_gate_open(served_gateway):
    address, codes, pki = served_gateway
    verify = ("verify", "--gateway", address, "--pki", pki, "--at", "310000")
    # A VALID red code is verified: plain `verify` says 0, which must never open a gate.
    assert huren(*verify, codes["red"]).returncode == 0
    assert huren(*verify, "--require", "green", codes["red"]).returncode == 1
    assert huren(*verify, "--require", "green", codes["green"]).returncode == 0
    assert huren(*verify, "--require", "green", codes["green"], codes["red"]).returncode == 1
    assert huren(*verify, "--require", "green", codes["expired"]).returncode == 1
    streamed = huren(*verify, "--require", "green", stdin=codes["green"] + "\n" + codes["red"])
    assert (streamed.returncode, len(streamed.stdout.splitlines())) == (1, 2)
    assert huren(*verify, "--require", "green", stdin=codes["green"] + "\n").returncode == 0


def test_a_gateway_that_goes_away_costs_the_codes_it_did_not_answer_and_no_more(tmp_path):
    # Nothing listens: each scanned line is reported as not verified (never as a verdict),
    # the command keeps reading, and the exit status says something went unanswered.
    result = huren(
        "verify", "--insecure", "--gateway", "127.0.0.1:1", "--timeout", "5", stdin="a\nb\n"
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["line 1", "line 2"]
    assert all("nothing is listening at 127.0.0.1:1" in line for line in lines)
