"""``huren recognise`` and ``huren policy ...`` run as a user runs them: separate processes against
one ``huren serve`` gateway on loopback and two real regional issuers (``huren region serve``:
Zhejiang, whose codes are URLs the gateway checks online, and Hangzhou), each registered by its
own operator with ``huren region register``.

One gateway serves the whole module. The hub administrator's set-up (regions, operators) and the
Shanghai and Guangdong policies are made once, in-process over mutual TLS, to save start-ups;
every test then sets only the policies of its own destinations, so the tests do not depend on one
another's order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.pki import create_development_pki
from gateway.clients import RegistryClient, TlsCredentials, new_request_id
from gateway.clock import system_clock
from gateway.registry.commands import CreateOperator, CreateRegion, SetPolicy
from regions import spec_of
from tests.conftest import REPO, resident_id
from tests.integration.cli import huren, huren_all, init_state, refused, running

pytestmark = pytest.mark.slow

DEMO = ("beijing", "shanghai", "guangdong", "macau")
TRAVELLER = resident_id("330105", "19920618", "045")
STRANGER = resident_id("110105", "19850101", "017")
STACKING = "code-stacking: requires a code from the destination's own region"
CHANGE = re.compile(
    r"\(trust version (?P<version>\d+), audit entry (?P<seq>\d+), request (?P<request>\S+)\)$"
)


def demo_file(name: str) -> Path:
    return REPO / "regions" / name / "policy.toml"


def write_policy(folder: Path, policy_id: str, version: int, destination: str, body: str) -> Path:
    path = folder / f"{policy_id}-{version}.toml"
    path.write_text(
        f'[policy]\nid = "{policy_id}"\nversion = {version}\ndestination = "{destination}"\n\n'
        + body,
        "utf-8",
    )
    return path


@dataclass(frozen=True)
class Hub:
    pki: Path
    state: Path
    address: str
    """The verification address (TLS, server authentication only)."""
    registry: str
    """The registry address (mutual TLS)."""
    regions: dict[str, str]
    """The URL of each running region."""

    def set(self, path: Path, who: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return huren(*self.set_command(path, who, *extra))

    def set_command(self, path: Path, who: str, *extra: str) -> list[str]:
        connection = ["--pki", str(self.pki), "--as", who, "--gateway", self.registry]
        return ["policy", "set", str(path), *connection, *extra]

    def show_command(self, where: str) -> list[str]:
        return ["policy", "show", "--at", where, "--pki", str(self.pki), "--gateway", self.address]

    def recognise_command(self, where: str, *args: str) -> list[str]:
        connection = ["--pki", str(self.pki), "--gateway", self.address]
        return ["recognise", "--at", where, *connection, *args]

    def audit(self) -> list[dict[str, Any]]:
        result = huren(
            *("operator", "audit", "--pki", str(self.pki), "--as", "hub-admin"),
            *("--gateway", self.registry, "--json"),
        )
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def code(self, region: str, **overrides: Any) -> str:
        """A code from a running region, for a declaration by TRAVELLER unless overridden."""
        body = {
            "id_number": TRAVELLER,
            "name": "刘洋",
            "phone": "13800000005",
            "trips": [],
            "symptoms": [],
            "contact": False,
            **overrides,
        }
        request = urllib.request.Request(
            f"{self.regions[region]}/api/declarations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            code: str = json.loads(response.read())["code"]
        return code


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("policy-hub")
    folder, state = root / "pki", root / "state"
    create_development_pki(folder)
    init_state(state)
    bootstrap = huren(
        *("registry", "create-operator", "--state-dir", str(state)),
        *("--name", "hub-admin", "--cert", str(folder / "operators" / "hub-admin.pem")),
    )
    assert bootstrap.returncode == 0, bootstrap.stderr
    serve = ["serve", "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"]
    with contextlib.ExitStack() as stack:
        line = stack.enter_context(
            running(*serve, "--state-dir", str(state), "--tls-dir", str(folder))
        )
        match = re.search(r"listening on (127\.0\.0\.1:\d+) .*registry on (127\.0\.0\.1:\d+)", line)
        assert match, line
        address, registry = match[1], match[2]
        names = ("zhejiang", "hangzhou", *DEMO)
        with RegistryClient(registry, TlsCredentials.from_pki(folder, "hub-admin")) as admin:
            for name in names:
                spec = spec_of(name)
                admin.submit(new_request_id(), CreateRegion(spec.code, spec.display_name))
                certificate = (folder / "operators" / f"{name}-ops.pem").read_bytes()
                operator = CreateOperator(f"{name}-ops", spec.code, certificate)
                admin.submit(new_request_id(), operator)
        urls = {}
        for name, extra in (
            ("zhejiang", ["--link-key-file", str(state / "link.key")]),
            ("hangzhou", []),
        ):
            line = stack.enter_context(
                running(
                    *("region", "serve", name, "--port", "0"),
                    *("--state-dir", str(root / name), *extra),
                )
            )
            found = re.match(
                rf"region {name} \(\d+\) listening on (http://127\.0\.0\.1:\d+) ", line
            )
            assert found, line
            urls[name] = found[1]
        registered = huren_all(
            *(
                [
                    *("region", "register", name, "--url", urls[name]),
                    *("--state-dir", str(root / name), "--gateway", registry),
                    *("--pki", str(folder), "--as", f"{name}-ops"),
                ]
                for name in urls
            )
        )
        for result in registered:
            assert result.returncode == 0, result.stderr
        for name in ("shanghai", "guangdong", "macau"):
            credentials = TlsCredentials.from_pki(folder, f"{name}-ops")
            with RegistryClient(registry, credentials) as client:
                policy = SetPolicy(demo_file(name).read_text("utf-8"))
                client.submit(new_request_id(), policy)
        yield Hub(folder, state, address, registry, urls)


# ------------------------------------------------------------------ huren policy check


def test_policy_check_says_what_each_demo_policy_does() -> None:
    results = huren_all(*(("policy", "check", str(demo_file(name))) for name in DEMO))
    for result in results:
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
    beijing, shanghai, guangdong, macau = (r.stdout.splitlines() for r in results)
    assert beijing[0] == "policy beijing@1 for 110000"
    assert "  combines   most_severe" in beijing
    assert "  max age    24h by default; older codes are ignored" in beijing
    assert beijing[-1] == f"  FLAG       {STACKING}"
    assert shanghai[0] == "policy shanghai@1 for 310000"
    assert "  combines   jurisdiction (the more specific region wins)" in shanghai
    assert "  reads      330000: YELLOW as RED" in guangdong
    assert "  combines   most_severe" in guangdong
    assert "  recognises 820000, 440000" in macau
    assert "  max age    6h by default; older codes are ignored" in macau
    for lines in (shanghai, guangdong, macau):
        assert not [line for line in lines if "FLAG" in line]


BROKEN = {
    "strategy": (
        '[combine]\nstrategy = "loudest"\n',
        "combine.strategy is 'loudest'; expected one of 'most_severe', 'destination_first', "
        "'freshest', 'jurisdiction'",
    ),
    "green": (
        '[severity.regions."420000"]\nYELLOW = "GREEN"\n',
        "severity.regions.420000.YELLOW: nothing may be read as GREEN",
    ),
    "unknown": ("[combine]\nloudest = true\n", "combine.loudest"),
    "lenient": (
        '[severity.regions."420000"]\nRED = "YELLOW"\n',
        "severity.regions.420000.RED: reading RED as YELLOW is less severe",
    ),
    "stale-green": ('[freshness]\nmax_age = "1h"\nstale = "GREEN"\n', "freshness.stale"),
    "duration": ('[freshness]\nmax_age = "a while"\n', "freshness.max_age"),
}


def test_policy_check_refuses_a_broken_policy_naming_the_key(tmp_path: Path) -> None:
    files = {
        name: write_policy(tmp_path, name, 1, "110000", body) for name, (body, _) in BROKEN.items()
    }
    no_table = tmp_path / "no-table.toml"
    no_table.write_text('[combine]\nstrategy = "most_severe"\n', "utf-8")
    results = huren_all(
        *(("policy", "check", str(path)) for path in files.values()),
        ("policy", "check", str(no_table)),
    )
    *broken, missing = results
    for (name, (_, message)), result in zip(BROKEN.items(), broken, strict=True):
        assert (result.returncode, result.stdout) == (2, ""), (name, result.stdout)
        assert result.stderr.startswith("huren: ERR_POLICY: "), (name, result.stderr)
        assert message in result.stderr, (name, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith("huren: ERR_POLICY: ")
    assert "policy" in missing.stderr


# ------------------------------------------------------------------ huren policy set / show


def test_a_regions_operator_sets_its_policy_and_anyone_can_show_it(
    hub: Hub, tmp_path: Path
) -> None:
    beijing = demo_file("beijing")
    wrong, right = huren_all(
        hub.set_command(beijing, "hangzhou-ops"), hub.set_command(beijing, "beijing-ops")
    )
    refused(wrong, "PERMISSION_DENIED", "only an operator of 110000 sets its policy")
    assert right.returncode == 0, right.stderr
    text = right.stdout.strip()
    assert len(right.stdout.splitlines()) == 1
    assert re.fullmatch(
        rf"set-policy 110000: policy beijing@1 \([0-9a-f]{{16}}\); {STACKING} "
        r"\(trust version \d+, audit entry \d+, request \S+\)",
        text,
    ), text
    found = CHANGE.search(text)
    assert found
    digest = hashlib.sha256(beijing.read_bytes()).hexdigest()
    assert f"({digest[:16]})" in text

    again, broken = huren_all(
        hub.set_command(beijing, "beijing-ops"),
        hub.set_command(
            write_policy(tmp_path, "beijing", 2, "110000", "[nonsense]\n"), "beijing-ops"
        ),
    )
    refused(
        again,
        "FAILED_PRECONDITION",
        "ERR_VERSION: the next policy of 110000 is version 2, not 1",
    )
    # A broken file is refused before it leaves the operator's machine.
    assert (broken.returncode, broken.stdout) == (2, "")
    assert broken.stderr.startswith("huren: ERR_POLICY: ")
    assert "nonsense" in broken.stderr

    entries = [e for e in hub.audit() if e["action"] == "set-policy" and e["target"] == "110000"]
    outcomes = [(e["actor"], e["outcome"]) for e in entries]
    # The first two ran at the same time, in either order; the version conflict came after.
    assert sorted(outcomes[:2]) == [
        ("operator:110000:beijing-ops", "ok"),
        ("operator:330100:hangzhou-ops", "denied"),
    ]
    assert outcomes[2:] == [("operator:110000:beijing-ops", "refused")]
    ok = next(e for e in entries if e["outcome"] == "ok")
    assert int(ok["seq"]) == int(found["seq"])
    assert STACKING in ok["detail"]

    human, as_json = huren_all(hub.show_command("110000"), [*hub.show_command("110000"), "--json"])
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0] == "at 110000: policy beijing@1, filed for 110000"
    assert lines[1] == "policy beijing@1 for 110000"
    assert f"  FLAG       {STACKING}" in lines
    assert not [line for line in lines if "earlier" in line]
    assert as_json.returncode == 0, as_json.stderr
    record = json.loads(as_json.stdout)
    assert {k: record[k] for k in ("destination", "applies_from", "policy_id", "flags")} == {
        "destination": "110000",
        "applies_from": "110000",
        "policy_id": "beijing",
        "flags": [STACKING],
    }
    assert int(record["policy_version"]) == 1
    (version,) = record["versions"]
    assert (int(version["version"]), version["policy_id"]) == (1, "beijing")
    assert (version["sha256"], version["policy_toml"]) == (digest, beijing.read_text("utf-8"))

    # The next version, with --json: it decides from now on, and both versions stay readable.
    relaxed = write_policy(
        tmp_path, "beijing", 2, "110000", '[combine]\nstrategy = "destination_first"\n'
    )
    answer = hub.set(relaxed, "beijing-ops", "--json")
    assert answer.returncode == 0, answer.stderr
    change = json.loads(answer.stdout)
    assert (change["audit"]["action"], change["audit"]["target"]) == ("set-policy", "110000")
    assert int(change["trust_version"]) > int(found["version"])
    human, as_json = huren_all(hub.show_command("110000"), [*hub.show_command("110000"), "--json"])
    assert human.stdout.splitlines()[0] == "at 110000: policy beijing@2, filed for 110000"
    assert "  combines   destination_first" in human.stdout.splitlines()
    assert "  earlier    beijing@1" in human.stdout.splitlines()
    assert "FLAG" not in human.stdout
    record = json.loads(as_json.stdout)
    assert [int(v["version"]) for v in record["versions"]] == [1, 2]
    assert record["flags"] == []


def test_a_city_without_a_policy_shows_its_provinces(hub: Hub, tmp_path: Path) -> None:
    provincial = write_policy(
        tmp_path, "zhejiang", 1, "330000", '[combine]\nstrategy = "jurisdiction"\n'
    )
    denied, done = huren_all(
        hub.set_command(provincial, "hangzhou-ops"), hub.set_command(provincial, "zhejiang-ops")
    )
    refused(denied, "PERMISSION_DENIED", "only an operator of 330000 sets its policy")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("set-policy 330000: policy zhejiang@1 (")
    city, county, elsewhere, as_json = huren_all(
        hub.show_command("330100"),
        hub.show_command("330106"),
        hub.show_command("420000"),
        [*hub.show_command("330100"), "--json"],
    )
    for result in (city, county, elsewhere, as_json):
        assert result.returncode == 0, result.stderr
    assert city.stdout.splitlines()[:2] == [
        "at 330100: policy zhejiang@1, filed for 330000",
        "policy zhejiang@1 for 330000",
    ]
    assert county.stdout.splitlines()[0] == "at 330106: policy zhejiang@1, filed for 330000"
    assert elsewhere.stdout.splitlines() == [
        "at 420000: policy national-default@0, filed for built-in",
        "  built in: every registered issuer recognised, the most severe colour decides",
    ]
    record = json.loads(as_json.stdout)
    assert (record["destination"], record["applies_from"]) == ("330100", "330000")
    assert [v["policy_toml"] for v in record["versions"]] == [provincial.read_text("utf-8")]
    bad = huren(*hub.show_command("33010"))
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.startswith("huren: gateway call failed: INVALID_ARGUMENT: destination")


# ------------------------------------------------------------------ huren recognise


def test_recognise_prints_the_decision_and_exits_by_its_colour(hub: Hub) -> None:
    provincial = hub.code("zhejiang", symptoms=["发热"])
    city = hub.code("hangzhou")
    green, red, human_red, human_green = huren_all(
        hub.recognise_command("310000", "--json", provincial, city),
        hub.recognise_command("440000", "--json", provincial, city),
        hub.recognise_command("440000", provincial, city),
        hub.recognise_command("310000", provincial, city),
    )
    assert (green.returncode, green.stderr) == (0, ""), green.stderr
    assert len(green.stdout.splitlines()) == 1
    decision = json.loads(green.stdout)
    assert (decision["status"], decision["reason"], decision["colour"]) == (
        "DECIDED",
        "RECOGNISED",
        "GREEN",
    )
    assert decision["deciding"] == [1]
    assert decision["destination"] == "310000"
    assert (decision["policy_id"], decision["policy_version"]) == ("shanghai", 1)
    assert decision["code_stacking"] is False
    assert decision["subject"].startswith("s1.")
    assert isinstance(decision["trust_version"], int)
    assert datetime.fromisoformat(decision["decided_at"]).utcoffset() == timedelta(0)
    assert [(c["index"], c["role"], c["counted_as"]) for c in decision["codes"]] == [
        (0, "SUPERSEDED", "YELLOW"),
        (1, "DECIDING", "GREEN"),
    ]
    verdicts = [c["verdict"] for c in decision["codes"]]
    assert [(v["status"], v["colour"], v["issuer"], v["region"]) for v in verdicts] == [
        ("VALID", "YELLOW", "zhejiang", "330000"),
        ("VALID", "GREEN", "hangzhou", "330100"),
    ]
    assert all(v["subject"] == decision["subject"] for v in verdicts)
    assert [(s["rule"], s["codes"]) for s in decision["steps"]] == [
        ("policy", []),
        ("combine.jurisdiction", [0, 1]),
        ("decide.colour", [1]),
    ]
    assert TRAVELLER not in green.stdout

    assert (red.returncode, red.stderr) == (1, ""), red.stderr
    decision = json.loads(red.stdout)
    assert (decision["colour"], decision["deciding"], decision["policy_id"]) == (
        "RED",
        [0],
        "guangdong",
    )
    assert "severity.adjusted" in [s["rule"] for s in decision["steps"]]

    assert (human_red.returncode, human_red.stderr) == (1, ""), human_red.stderr
    lines = human_red.stdout.splitlines()
    assert lines[0] == "RED    RECOGNISED  at 440000 under policy guangdong@1"
    assert lines[1].startswith("  code 1: deciding as RED  YELLOW VALID ")
    assert lines[2].startswith("  code 2: counted as GREEN  GREEN  VALID ")
    steps = [line for line in lines if re.match(r"  \d+\. \[", line)]
    assert [re.findall(r"^  (\d+)\. \[([a-z_.]+)\]", s)[0] for s in steps] == [
        ("1", "policy"),
        ("2", "severity.adjusted"),
        ("3", "combine.most_severe"),
        ("4", "decide.colour"),
    ]
    assert "YELLOW is read as RED" in steps[1]

    assert human_green.returncode == 0, human_green.stderr
    lines = human_green.stdout.splitlines()
    assert lines[0] == "GREEN  RECOGNISED  at 310000 under policy shanghai@1"
    assert re.match(r"  code 1: superseded as YELLOW  YELLOW VALID +330000 zhejiang ", lines[1])
    assert re.match(r"  code 2: deciding as GREEN  GREEN  VALID +330100 hangzhou ", lines[2])
    assert lines[3:] == [
        "  1. [policy] policy shanghai@1 of 310000 decides for 310000: jurisdiction",
        "  2. [combine.jurisdiction] code 1 (330000) is set aside: code 2 is more specific "
        "(330100)",
        "  3. [decide.colour] GREEN, decided by code 2",
    ]


def test_recognise_reads_codes_from_stdin_and_refuses_what_it_cannot_decide(hub: Hub) -> None:
    provincial = hub.code("zhejiang", symptoms=["发热"])
    city = hub.code("hangzhou")
    stranger = hub.code("hangzhou", id_number=STRANGER)
    now = system_clock()
    piped = huren(*hub.recognise_command("310000", "--json"), stdin=f"{provincial}\n\n{city}\n")
    grey, invalid, national, two_people, recent, too_old, future, nothing = huren_all(
        hub.recognise_command("820000", "--json", provincial, city),
        hub.recognise_command("310000", "HC1:not-a-code"),
        hub.recognise_command("420000", "--json", provincial, city),
        hub.recognise_command("310000", "--json", city, stranger),
        hub.recognise_command(
            "310000", "--json", "--time", (now - timedelta(seconds=30)).isoformat(), city
        ),
        hub.recognise_command("310000", "--time", (now - timedelta(minutes=20)).isoformat(), city),
        hub.recognise_command("310000", "--time", (now + timedelta(minutes=5)).isoformat(), city),
        hub.recognise_command("310000"),
    )
    assert piped.returncode == 0, piped.stderr
    decision = json.loads(piped.stdout)
    assert (decision["colour"], decision["deciding"]) == ("GREEN", [1])
    assert [c["verdict"]["issuer"] for c in decision["codes"]] == ["zhejiang", "hangzhou"]

    # Macau recognises neither code: GREY, exit 1.
    assert (grey.returncode, grey.stderr) == (1, ""), grey.stderr
    decision = json.loads(grey.stdout)
    assert (decision["colour"], decision["reason"], decision["policy_id"]) == (
        "GREY",
        "NO_RECOGNISED_CODE",
        "macau",
    )
    assert [c["role"] for c in decision["codes"]] == ["NOT_RECOGNISED", "NOT_RECOGNISED"]
    # Nothing valid at all: GREY, exit 1, and the code's own verdict says why.
    assert invalid.returncode == 1, invalid.stderr
    lines = invalid.stdout.splitlines()
    assert lines[0] == "GREY   NO_RECOGNISED_CODE  at 310000 under policy shanghai@1"
    assert lines[1].startswith("  code 1: not_valid  ")
    assert lines[-1].endswith(
        "[decide.no_recognised_code] GREY: no valid, recognised, fresh code remains"
    )
    # Hubei has no policy and there is no national one: the built-in default, most severe.
    assert national.returncode == 1, national.stderr
    decision = json.loads(national.stdout)
    assert (
        decision["colour"],
        decision["deciding"],
        decision["policy_id"],
        decision["policy_version"],
    ) == ("YELLOW", [0], "national-default", 0)

    assert two_people.returncode == 1, two_people.stderr
    decision = json.loads(two_people.stdout)
    assert (decision["status"], decision["reason"], decision["colour"]) == (
        "REFUSED",
        "SUBJECT_MISMATCH",
        None,
    )
    assert decision["deciding"] == []
    assert decision["subject"] is None
    assert [c["role"] for c in decision["codes"]] == ["UNUSED", "UNUSED"]

    assert recent.returncode == 0, recent.stderr
    decision = json.loads(recent.stdout)
    assert datetime.fromisoformat(decision["decided_at"]) == now - timedelta(seconds=30)

    window = "INVALID_ARGUMENT: the instant of presentation must be within"
    for result in (too_old, future):
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert result.stderr.startswith(f"huren: gateway call failed: {window}"), result.stderr
    assert (nothing.returncode, nothing.stdout) == (2, "")
    assert nothing.stderr == (
        "huren: no codes given (as arguments, or one per line on standard input)\n"
    )


# ------------------------------------------------------------------ edges that once crashed


def test_recognise_refuses_a_time_without_an_offset_as_a_usage_error() -> None:
    # Refused before any connection is made: no gateway is needed.
    result = huren(
        *("recognise", "--at", "310000", "--insecure", "--gateway", "127.0.0.1:1"),
        *("--time", "2026-11-23T10:00:00", "HC1:anything"),
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stdout) == (2, "")


def test_policy_check_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(
        '[policy]\nid = "p\xe9kin"\nversion = 1\ndestination = "110000"\n'.encode("latin-1")
    )
    result = huren("policy", "check", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("huren: ERR_POLICY: "), result.stderr
