"""docs/profiles.md's tutorial runs as written, from an empty folder (issue 11, item 2): the
profile, sample codes signed with openssl, the dry run, then a real gateway on ports the system
picks, the region, its operator and the issuer registered over mutual TLS, and the codes verified
through the gateway."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.cli import SHELL_ENV

pytestmark = pytest.mark.slow

MARKER = "<!-- tutorial-sequence:"
# A fenced block and its info string (```sh run, ```toml file=xihu.toml, ``` alone).
_BLOCK = re.compile(r"^```([^\n]*)\n(.*?)^```\n", re.S | re.M)
_LISTENING = re.compile(
    r"^huren gateway listening on (127\.0\.0\.1:\d+) \(trust version 1, 0 issuers; "
    r"registry on (127\.0\.0\.1:\d+)\)$"
)


@dataclass(frozen=True)
class Tutorial:
    files: dict[str, str]
    before: str
    """The ``sh run`` blocks before the gateway starts, as one script."""
    serve: list[str]
    after: str
    """The ``sh run`` blocks once the gateway runs."""
    shown: list[str]
    """The plain blocks: what the tutorial says the commands print."""


def tutorial() -> Tutorial:
    text = (REPO / "docs" / "profiles.md").read_text("utf-8")
    start = text.index(MARKER)
    section = text[start : text.index("\n## ", start)]
    files: dict[str, str] = {}
    before: list[str] = []
    after: list[str] = []
    serve: list[str] = []
    shown: list[str] = []
    for match in _BLOCK.finditer(section):
        info, body = match.group(1).split(), match.group(2)
        if info[:1] == ["toml"] and info[1:2] and info[1].startswith("file="):
            files[info[1].removeprefix("file=")] = body
        elif info == ["sh", "run"]:
            (after if serve else before).append(body)
        elif info == ["sh", "serve"]:
            assert not serve, "the tutorial starts one gateway"
            serve = shlex.split(body)
        elif not info:
            shown.append(body)
        else:
            pytest.fail(f"a block the test does not know how to run: ```{' '.join(info)}")
    for part, name in ((files, "files"), (before, "commands"), (serve, "gateway"), (after, "rest")):
        assert part, f"the tutorial lost its runnable blocks ({name})"
    return Tutorial(files, "".join(before), serve, "".join(after), shown)


def _digitless(text: str) -> str:
    """``text`` with every run of digits as ``0``: times, lengths and ports differ per run."""
    return re.sub(r"[0-9]+", "0", text)


def test_the_profile_tutorial_runs_as_written(tmp_path: Path) -> None:
    assert shutil.which("openssl"), "the tutorial signs its sample codes with openssl"
    steps = tutorial()
    for name, content in steps.files.items():
        (tmp_path / name).write_text(content, "utf-8")
    environment = dict(SHELL_ENV)

    def bash(script: str) -> str:
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    # Steps 1 to 5: check, mint, dry run (valid, then expired), the PKI and the registry.
    out = bash(steps.before)
    documented_check = next(b for b in steps.shown if b.startswith("profile xihu@1: valid"))
    assert out.startswith(documented_check)
    valid, expired = out.split("\ncode 1: GREY   REJECTED     ERR_EXPIRED: ")
    amber = "code 2: " + valid.split("\ncode 2: ")[1]
    documented_amber = next(b for b in steps.shown if b.startswith("code 2: YELLOW VALID"))
    assert _digitless(amber.split("\ndevelopment PKI")[0] + "\n") == _digitless(documented_amber)
    assert "   8 times        FAILED ERR_EXPIRED: code expired at " in expired
    assert "330106199003071228" not in out  # the sample holder's number, only ever masked

    # The gateway, as the tutorial starts it, on ports the system picks.
    serve = [*steps.serve, "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"]
    with subprocess.Popen(
        serve,
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as gateway:
        try:
            assert gateway.stdout is not None
            first = gateway.stdout.readline().rstrip("\n")
            listening = _LISTENING.match(first)
            assert listening, first
            environment["GATEWAY"], environment["REGISTRY"] = listening.groups()
            # Steps 6 to 8: the region, its operator, the issuer, the codes through the gateway.
            out = bash(steps.after)
        finally:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.communicate(timeout=30)
    lines = out.splitlines()
    assert lines[0].startswith("create-region 330106: 西湖区 (trust version 2, audit entry 3, ")
    assert lines[1].startswith("create-operator xihu-ops: operator of 330106, key ")
    assert lines[2].startswith(
        "register-issuer xihu: region 330106, profile xihu@1, keys xihu-1 (trust version 6, "
        "audit entry 5, request "
    )
    documented_verify = next(b for b in steps.shown if b.startswith("GREEN  VALID        330106"))
    assert _digitless("\n".join(lines[3:]) + "\n") == _digitless(documented_verify)
