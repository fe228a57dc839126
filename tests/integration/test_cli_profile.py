"""``huren profile ...`` run as a profile's author runs it: a separate process, files only, no
gateway, no registry, no network."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gateway.codecs import base64url, jws, strictjson
from gateway.crypto import Algorithm, PrivateKey
from tests.conftest import REPO, resident_id
from tests.integration.cli import huren, huren_all
from tests.integration.conftest import MutableClock, RegionHandle

pytestmark = pytest.mark.slow

REGIONS = REPO / "regions"
FORMATS = REPO / "gateway" / "profiles" / "formats"
HOLDER = resident_id()


# ------------------------------------------------------------------ profile check


def test_profile_check_says_how_codes_are_signed_timed_and_carry_their_holder():
    """Issue 11, item 7: besides the summary, the allowed algorithms, every time's field, format
    and zone, and where the identity is read (and how it is carried)."""
    shanghai, beijing, eu, hubei = huren_all(
        ("profile", "check", str(REGIONS / "shanghai" / "profile.toml")),
        ("profile", "check", str(REGIONS / "beijing" / "profile.toml")),
        ("profile", "check", str(FORMATS / "eu-dcc.toml")),
        ("profile", "check", str(REGIONS / "hubei" / "profile.toml")),
    )
    for result in (shanghai, beijing, eu, hubei):
        assert (result.returncode, result.stderr) == (0, "")
    assert shanghai.stdout.splitlines() == [
        "profile shanghai@1: valid",
        "  envelope  delimited / delimited / delimited, codes start with 'SH1:'",
        "  signed    by keys of any algorithm the gateway admits (ES256, ES384, EdDSA, PS256)",
        "  issuer    iss",
        "  issued    time (local, pattern 'YYYYMMDDHHmmss' in Asia/Shanghai)",
        "  expiry    earliest of: issue + 30m",
        "  identity  cn-resident-id: full number at idn (masked in every verdict)",
        "  state     status (text)",
        "  state     '0' -> GREEN",
        "  state     '1' -> YELLOW",
        "  state     '2' -> RED",
        "  anything else -> refused (ERR_COLOUR_UNKNOWN)",
    ]
    # A state's note is shown beside it (issue 11, item 6).
    assert (
        "  identity  pseudonym: sealed number at 11 (opened with the issuer's pseudonym key)\n"
        in (beijing.stdout)
    )
    assert "  state     '弹窗' -> GREY  (pop-up: the holder must be checked before passing)\n" in (
        beijing.stdout
    )
    assert "  expiry    earliest of: end of day in Asia/Shanghai\n" in beijing.stdout
    for line in (
        "  signed    by ES256, PS256 keys only",
        "  region    1 must be the issuer's registered region",
        "  issued    6 (numeric-date)",
        "  expires   4 (numeric-date)",
        "  starts    5 (numeric-date, optional)",
        "  key ids   x509-sha256-8",
        "  identity  name-dob: family name at -260.1.nam.fnt, given name at -260.1.nam.gnt, "
        "date of birth at -260.1.dob",
    ):
        assert line in eu.stdout.splitlines(), line
    for line in (
        "  issued    iat (unix-ms)",
        "  expires   exp (unix-ms)",
        "  degrade   GREEN -> YELLOW after 72h",
        "  identity  masked-link: masked number at id.masked, link hash at id.hash",
        "  state     '99' -> GREY  (pending review)",
    ):
        assert line in hubei.stdout.splitlines(), line


def test_profile_check_refuses_a_broken_profile_in_one_line(tmp_path):
    broken = tmp_path / "profile.toml"
    broken.write_text(
        (REGIONS / "shanghai" / "profile.toml")
        .read_text("utf-8")
        .replace('pattern = "YYYYMMDDHHmmss"', 'pattern = "YYYY-MM-DDTHH:mm:ss"'),
        "utf-8",
    )
    not_utf8 = tmp_path / "latin1.toml"
    not_utf8.write_bytes('[profile]\nid = "café"\n'.encode("latin-1"))
    result, encoding, missing = huren_all(
        ("profile", "check", str(broken)),
        ("profile", "check", str(not_utf8)),
        ("profile", "check", str(tmp_path / "absent.toml")),
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "huren: ERR_PROFILE: claims.issued_at.pattern: pattern 'YYYY-MM-DDTHH:mm:ss': unknown "
        "pattern letter 'T' at position 10; quote letters that stand for themselves: 'T'\n"
    )
    assert (encoding.returncode, encoding.stdout) == (2, "")
    assert encoding.stderr == "huren: ERR_PROFILE: latin1.toml is not UTF-8 text (byte 19)\n"
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith("huren: [Errno 2] No such file or directory")
    assert len(missing.stderr.splitlines()) == 1


# ------------------------------------------------------------------ profile test (the dry run)

HANGZHOU_PROFILE = str(REGIONS / "hangzhou" / "profile.toml")


@dataclass(frozen=True)
class Minted:
    """Codes the running Hangzhou service issued, its published keys, and the instant."""

    green: str
    yellow: str
    purple: str
    """Signed with Hangzhou's own key, in a state its profile does not list (紫码)."""
    jwks: Path
    kid: str
    at: datetime

    def test(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``huren profile test`` with the Hangzhou profile, as of the issue time."""
        return huren(
            *("profile", "test", HANGZHOU_PROFILE, "--at", self.at.isoformat()), *args, stdin=stdin
        )


@pytest_asyncio.fixture
async def minted(hangzhou: RegionHandle, clock: MutableClock, tmp_path: Path) -> Minted:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{hangzhou.url}/api/keys") as response,
    ):
        assert response.status == 200
        jwks = tmp_path / "hangzhou-jwks.json"
        jwks.write_bytes(await response.read())
    green = await hangzhou.issue(id_number=HOLDER)
    yellow = await hangzhou.issue(id_number=HOLDER, symptoms=["发热"])
    header, payload, _ = green.split(".")
    claims = json.loads(base64url.decode(payload))
    purple = jws.sign(
        json.loads(base64url.decode(header)),
        strictjson.dumps({**claims, "hc": "紫码"}),
        hangzhou.running.secrets.key,
    )
    return Minted(green, yellow, purple, jwks, hangzhou.kid, clock.now)


def _steps(stdout: str) -> list[str]:
    """The step lines of ``huren profile test``'s output (number, title and outcome)."""
    return [
        " ".join(line.split()[:3])
        for line in stdout.splitlines()
        if re.match(r"^ {2}[ 1][0-9] [a-z]", line)
    ]


ALL_STEPS = [
    "1 screen ok",
    "2 route ok",
    "3 envelope ok",
    "4 issuer ok",
    "5 key ok",
    "6 signature ok",
    "7 key status",
    "8 times ok",
    "9 translation ok",
    "10 identity ok",
]


@pytest.mark.asyncio
async def test_a_dry_run_verifies_a_regions_codes_and_shows_every_step(minted):
    result = minted.test("--key", str(minted.jwks), minted.green, minted.yellow)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    out = result.stdout
    assert HOLDER not in out  # never the identity number: only its masked form
    first, second = out.split("\ncode 2: ")
    assert first.startswith("code 1: GREEN  VALID        XX hangzhou 绿码 330*************")
    assert second.startswith("YELLOW VALID        XX hangzhou 黄码 330*************")
    for code in (first, second):
        assert _steps(code) == ALL_STEPS
    kid = minted.kid
    for line in (
        "  assumed      issuer 'hangzhou': as the code names it, unauthenticated (--issuer "
        "checks the name)",
        "  assumed      region XX: none given (--region names one)",
        "   2 route        ok     starts with 'eyJ' (the compact-JWS shape): envelope jws / "
        "compact / json, issuers hangzhou",
        f"   5 key          ok     key id {kid!r} selects hangzhou/{kid} (ES256)",
        "   9 translation  ok     issuer at iss = 'hangzhou' (must be 'hangzhou')",
        "                        state at hc (text) = '绿码'",
        "                        '绿码' -> GREEN by the profile's states",
    ):
        assert line in first.splitlines(), line
    assert "                        '黄码' -> YELLOW by the profile's states" in second
    assert re.search(
        rf"^   3 envelope     ok     compact JWS: alg ES256, kid '{kid}'; \d+-byte JSON payload, "
        r"a map of 5 members$",
        first,
        re.M,
    )
    assert re.search(
        rf"^   6 signature    ok     ES256 signature verifies with key hangzhou/{kid} over the "
        r"\d+ bytes received",
        first,
        re.M,
    )
    assert re.search(
        r"^  10 identity     ok     cn-resident-id: full number at idn \(masked in every "
        r"verdict\) -> 330\*{13}[0-9X]{2}$",
        first,
        re.M,
    )

    # The same, as JSON: one object per code, no subject or trust version (there is no registry).
    as_json = minted.test("--key", str(minted.jwks), "--json", minted.green)
    assert as_json.returncode == 0, as_json.stderr
    (line,) = as_json.stdout.splitlines()
    trial = json.loads(line)
    assert (trial["code"], trial["verdict"]["status"], trial["verdict"]["colour"]) == (
        1,
        "VALID",
        "GREEN",
    )
    assert "subject" not in trial["verdict"]
    assert "trust_version" not in trial["verdict"]
    assert [(s["step"], s["name"], s["passed"]) for s in trial["steps"]] == [
        (n, name, True)
        for n, name in enumerate(
            [
                "screen",
                "route",
                "envelope",
                "issuer",
                "key",
                "signature",
                "key status",
                "times",
                "translation",
                "identity",
            ],
            1,
        )
    ]
    assert HOLDER not in as_json.stdout


@pytest.mark.asyncio
async def test_a_tampered_code_fails_at_the_signature_and_nothing_after_runs(minted):
    header, payload, signature = minted.green.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    # From standard input, one code a line, with a good code after the bad one.
    result = minted.test("--key", str(minted.jwks), stdin=f"{tampered}\n{minted.green}\n")
    assert (result.returncode, result.stderr) == (1, "")
    bad, good = result.stdout.split("\ncode 2: ")
    assert bad.splitlines()[0] == (
        "code 1: GREY   REJECTED     ERR_SIGNATURE: signature does not verify with the registered "
        "key (issuer hangzhou, region XX)"
    )
    assert _steps(bad) == [*ALL_STEPS[:5], "6 signature FAILED"]
    assert bad.splitlines()[-2:] == [
        "   6 signature    FAILED ERR_SIGNATURE: signature does not verify with the registered key",
        "                        steps 7 to 10 did not run",
    ]
    assert good.startswith("GREEN  VALID ")


@pytest.mark.asyncio
async def test_a_state_the_profile_does_not_list_fails_at_the_translation(minted):
    result = minted.test("--key", str(minted.jwks), "--json", minted.purple)
    assert (result.returncode, result.stderr) == (1, "")
    trial = json.loads(result.stdout)
    assert (trial["verdict"]["status"], trial["verdict"]["reason"]) == (
        "REJECTED",
        "ERR_COLOUR_UNKNOWN",
    )
    assert trial["verdict"]["colour"] == "GREY"  # fail closed: a verified signature is not enough
    *passed, failed = trial["steps"]
    assert [(s["step"], s["passed"]) for s in passed] == [(n, True) for n in range(1, 9)]
    assert (failed["step"], failed["name"], failed["passed"], failed["reason"]) == (
        9,
        "translation",
        False,
        "ERR_COLOUR_UNKNOWN",
    )
    assert failed["detail"] == "local state not listed in profile hangzhou@1"
    assert "state at hc (text) = '紫码'" in failed["facts"]  # what was read, shown in the trace
    # For people, the same step, and nothing after it.
    text = minted.test("--key", str(minted.jwks), minted.purple)
    assert text.returncode == 1
    assert _steps(text.stdout) == [*ALL_STEPS[:8], "9 translation FAILED"]
    assert text.stdout.splitlines()[-1] == "                        step 10 did not run"


@pytest.mark.asyncio
async def test_an_expired_code_fails_at_the_times_as_of_the_instant_given(minted):
    later = (minted.at + timedelta(hours=24)).isoformat()
    result = minted.test("--key", str(minted.jwks), minted.green, "--at", later)
    assert (result.returncode, result.stderr) == (1, "")
    issued = minted.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    expires = (minted.at + timedelta(hours=24)).astimezone(UTC)
    assert _steps(result.stdout) == [*ALL_STEPS[:7], "8 times FAILED"]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"code 1: GREY   REJECTED     ERR_EXPIRED: code expired at {expires.isoformat()} "
    )
    assert lines[-5:] == [
        f"   8 times        FAILED ERR_EXPIRED: code expired at {expires.isoformat()}",
        f"                        issued_at at iat (unix-s) = {int(minted.at.timestamp())}",
        f"                        expires_at at exp (unix-s) = {int(expires.timestamp())}",
        f"                        issued {issued}, expires {expires.isoformat()[:19]}Z",
        "                        steps 9 to 10 did not run",
    ]
    # An instant before issue (beyond the leeway) is not yet valid.
    early = minted.test("--key", str(minted.jwks), minted.green, "--at", "2026-01-01T00:00:00Z")
    assert early.returncode == 1
    assert (
        "   8 times        FAILED ERR_NOT_YET_VALID: code is issued in the future" in early.stdout
    )


@pytest.mark.asyncio
async def test_a_wrong_key_is_found_out_at_the_key_or_the_signature(minted, tmp_path):
    other = PrivateKey.generate(Algorithm.ES256)
    other_jwks = tmp_path / "other-jwks.json"
    other_jwks.write_text(json.dumps({"keys": [{**other.public_key().jwk(), "kid": "other-1"}]}))
    other_pem = tmp_path / "other.pem"
    other_pem.write_text(other.public_key().pem())
    unknown, impostor = huren_all(
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(other_jwks), minted.green),
        # The right key id, another key: the signature is what tells.
        (
            *("profile", "test", HANGZHOU_PROFILE, "--key", str(other_pem)),
            *("--kid", minted.kid, "--at", minted.at.isoformat(), minted.green),
        ),
    )
    assert (unknown.returncode, unknown.stderr) == (1, "")
    assert _steps(unknown.stdout) == [*ALL_STEPS[:4], "5 key FAILED"]
    assert (
        "   5 key          FAILED ERR_KEY_UNKNOWN: no registered key has the code's key id"
        in unknown.stdout
    )
    assert (impostor.returncode, impostor.stderr) == (1, "")
    assert _steps(impostor.stdout) == [*ALL_STEPS[:5], "6 signature FAILED"]


def test_a_dry_run_refuses_what_it_cannot_do_in_one_line(tmp_path):
    key = PrivateKey.generate(Algorithm.ES256)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**key.public_key().jwk(), "kid": "k1"}]}))
    private = tmp_path / "private.jwk"
    private.write_text(json.dumps({**key.public_key().jwk(), "kid": "k1", "d": "c2VjcmV0"}))
    zhejiang = str(REGIONS / "zhejiang" / "profile.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[profile]\n")
    results = huren_all(
        ("profile", "test", str(broken), "--key", str(jwks), "eyJ.a.b"),
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(tmp_path / "absent.jwks"), "eyJ.a.b"),
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(broken), "eyJ.a.b"),
        ("profile", "test", zhejiang, "--key", str(jwks), "https://zj.example/hc/v1/abc"),
        ("profile", "test", HANGZHOU_PROFILE, "eyJ.a.b"),
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(jwks), "--at", "now", "eyJ.a.b"),
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(private), "eyJ.a.b"),
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(jwks), "--region", "3301", "eyJ.a.b"),
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(jwks), "HC1:NCF", "OXN"),
        ("profile", "test", HANGZHOU_PROFILE, "--key", str(jwks), *["eyJ.a.b"] * 101),
    )
    expected = [
        "huren: ERR_PROFILE: missing profile.id",
        f"huren: [Errno 2] No such file or directory: '{tmp_path / 'absent.jwks'}'",
        "huren: ERR_KEY_WEAK: not a valid X.509 certificate",  # what the registry says of it
        "huren: ERR_PROFILE: profile zhejiang@1 is an online profile: its codes are verified by "
        "asking their issuer, which a dry run cannot do (register the issuer, then use huren "
        "verify)",
        "huren profile test: the following arguments are required: --key",
        "huren profile test: argument --at: not an ISO 8601 time: 'now'",
        "huren: ERR_KEY_PRIVATE: JWK contains private key material",
        "huren: ERR_IDENTIFIER: not a GB/T 2260 region code or ISO 3166 country code: '3301'",
        "huren: argument 2 does not start like a code, and argument 1 is a prefixed "
        "base45 code, whose alphabet has a space: the shell split it. Quote each code "
        "('HC1:...'), or give codes one per line on standard input",
        "huren: at most 100 codes at a time (max_batch)",
    ]
    # Standard input that holds no code.
    results.append(huren("profile", "test", HANGZHOU_PROFILE, "--key", str(jwks), stdin="\n\n"))
    expected.append("huren: no codes given (as arguments, or one per line on standard input)")
    for result, message in zip(results, expected, strict=True):
        assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n")
