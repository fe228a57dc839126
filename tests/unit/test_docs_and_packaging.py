"""What the documentation and packaging promise holds: examples work as written."""

from __future__ import annotations

import json
import re
import shlex
from datetime import timedelta
from pathlib import Path

from gateway.cli import build_parser, environment, main
from gateway.cli.main import configurable
from gateway.codecs import jws, strictjson
from gateway.crypto import Algorithm, PrivateKey
from gateway.model import Colour, IssuerId, KeyId, ProfileId, RegionCode, Status
from gateway.profiles import load_profile
from gateway.registry import Issuer, IssuerKey, TrustState
from gateway.verify import verify_code
from tests.conftest import NOW, REPO, add_issuer, make_world, resident_id


def _blocks(path: str, language: str) -> list[str]:
    """The fenced code blocks of a Markdown file whose info string starts with the word
    ``language`` (``toml file=xihu.toml`` is a ``toml`` block)."""
    blocks: list[str] = []
    current: list[str] = []
    info: str | None = None
    for line in (REPO / path).read_text("utf-8").splitlines(keepends=True):
        if line.startswith("```"):
            if info is None:
                info, current = line[3:].strip(), []
            else:
                if (info.split() or [""])[0] == language:
                    blocks.append("".join(current))
                info = None
        elif info is not None:
            current.append(line)
    return blocks


def test_every_profile_in_the_profile_guide_loads():
    blocks = [b for b in _blocks("docs/profiles.md", "toml") if "[profile]" in b]
    assert len(blocks) >= 2
    for block in blocks:
        load_profile(block)


def test_the_guide_shows_what_profile_check_really_prints(tmp_path, capsys):
    xihu = next(b for b in _blocks("docs/profiles.md", "toml") if 'id = "xihu"' in b)
    path = tmp_path / "xihu.toml"
    path.write_text(xihu)
    assert main(["profile", "check", str(path)]) == 0
    printed = capsys.readouterr().out
    documented = next(b for b in _blocks("docs/profiles.md", "") if b.startswith("profile xihu@1"))
    assert printed == documented


def test_the_tutorials_profile_verifies_its_sample_payload_beside_hangzhou():
    """docs/profiles.md's tutorial, its pure core: the Xihu profile (EdDSA, local times written
    the Chinese way, a state with a note) reads the payload the tutorial shows, and Hangzhou's
    codes, on the same compact-JWS route, still verify. tests/integration/
    test_profile_tutorial.py runs the whole tutorial as written."""
    xihu = load_profile(next(b for b in _blocks("docs/profiles.md", "toml") if 'id = "xihu"' in b))
    world = make_world()
    state = TrustState(world.snapshot)
    state.add_profile(xihu)
    add_issuer(state, Issuer(IssuerId("xihu"), RegionCode("330106"), "西湖", ProfileId("xihu"), 1))
    key = PrivateKey.generate(Algorithm.EDDSA)
    state.add_key(IssuerKey(IssuerId("xihu"), KeyId("xihu-1"), key.public_key()))
    number = resident_id()
    payload = {
        "iss": "xihu",
        "issued": "2026年11月23日 09时55分",  # NOW is 10:00 in Beijing time
        "status": "amber",
        "holder": {"id": number},
    }
    code = jws.sign({"alg": "EdDSA", "kid": "xihu-1"}, strictjson.dumps(payload), key)
    snapshot = state.snapshot()
    verdict = verify_code(
        code, trust=snapshot, now=NOW, limits=world.limits, identities=world.identities
    )
    assert verdict.status is Status.VALID, verdict.detail
    assert verdict.colour is Colour.YELLOW
    assert verdict.detail == "verified; amber: home observation: check again in 3 days"
    assert verdict.code is not None
    assert (verdict.code.issuer, verdict.code.local_state) == ("xihu", "amber")
    assert verdict.code.expires_at == NOW - timedelta(minutes=5) + timedelta(hours=12)
    keys = world.identities
    assert verdict.code.subject == keys.subject(keys.from_number(number))
    # Hangzhou's codes still verify on the shared route.
    hangzhou = verify_code(
        world.code(), trust=snapshot, now=NOW, limits=world.limits, identities=world.identities
    )
    assert hangzhou.colour is Colour.GREEN


def test_the_quick_start_is_exactly_two_commands():
    readme = (REPO / "README.md").read_text("utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_container_runs_as_a_user_and_checks_its_health_with_huren():
    dockerfile = (REPO / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert final.startswith("python:3.11-slim")
    user = re.search(r"^USER (\S+)", final, flags=re.M)
    assert user is not None
    assert user.group(1) not in ("root", "0")
    assert final.index("USER ") < final.index("ENTRYPOINT")
    health = re.search(r"HEALTHCHECK .*?CMD (.*?)\n", final.replace("\\\n", ""), flags=re.S)
    assert health is not None
    # A shell form: ${VAR:-default} is the default unless the variable is set.
    shell = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", health.group(1))
    command = shlex.split(shell)
    assert command[0] == "huren"
    parsed = build_parser().parse_args(command[1:])
    assert parsed.command == "health"
    cmd = json.loads(re.search(r"^CMD (\[.*\])", final, flags=re.M).group(1))  # type: ignore[union-attr]
    environ = dict(re.findall(r"(HUREN_\w+)=(\S+)", final.split("ENV ", 1)[1].split("\nEXPOSE")[0]))
    parser = build_parser()
    for each in configurable(parser):
        environment.apply(each, environ)
    served = parser.parse_args(cmd)
    assert served.command == "serve"
    # HUREN_* alone choose the role: a hub creates its registry at its first start, and a
    # replica (which refuses --init on its command line) turns that off with HUREN_INIT=0.
    assert "--init" not in cmd
    assert served.init
    assert len(re.findall(r"^FROM ", dockerfile, flags=re.M)) >= 2  # built apart, no compiler
    assert served.state_dir == Path("/var/lib/huren")
    assert served.tls_dir == Path("/var/lib/huren/pki")
    assert served.listen == "0.0.0.0:50051"
    assert not served.insecure
    assert parsed.ca == served.tls_dir / "ca.pem"
    assert parsed.server_certificate == served.tls_dir / "gateway.pem"
    assert parsed.gateway.endswith(":50051")
    assert 'VOLUME ["/var/lib/huren"]' in final


def test_the_license_file_is_the_one_the_package_declares():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["license"]
    assert declared == "Apache-2.0"
    text = (REPO / "LICENSE").read_text("utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_contributing_guide_names_tests_and_places_that_exist():
    import ast

    guide = "\n".join(_blocks("CONTRIBUTING.md", "sh"))
    targets = re.findall(r"pytest \"?(tests/[^\s\"]+)", guide)
    assert len(targets) == 3
    for target in targets:
        path, _, name = target.partition("::")
        assert (REPO / path).exists(), target
        if name:
            tree = ast.parse((REPO / path).read_text("utf-8"))
            assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, name
    text = (REPO / "CONTRIBUTING.md").read_text("utf-8")
    for place in re.findall(r"`((?:gateway|regions|tests|proto|docs)/[\w/.<>-]*)`", text):
        if "<" not in place:
            assert (REPO / place).exists(), place
    for target in ("demo", "test", "unit", "proto", "lint"):
        assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), re.M), target


def test_every_local_link_and_picture_in_the_readme_and_docs_exists():
    """A renamed document or a picture not regenerated (`make screenshots`) breaks a link."""
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    checked = 0
    for document in documents:
        text = document.read_text("utf-8")
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        targets += re.findall(r'<img src="([^"]+)"', text)
        for target in targets:
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (document.parent / target).exists(), f"{document.name}: {target}"
            checked += 1
    assert checked > 20
