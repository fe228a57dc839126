"""The README's "Using it" sequence runs as written, from a fresh folder (issue 12)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.conftest import REPO
from tests.integration.cli import SHELL_ENV

MARKER = "<!-- readme-sequence: the test runs the next block as it stands -->\n```sh\n"
PORTS = (50051, 50052, 8001)  # the defaults the sequence relies on


def readme_sequence() -> str:
    text = (REPO / "README.md").read_text("utf-8")
    start = text.index(MARKER) + len(MARKER)
    return text[start : text.index("```\n", start)]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_sequence_runs_as_written(tmp_path: Path) -> None:
    busy = [port for port in PORTS if not _free(port)]
    assert not busy, f"the README's sequence needs 127.0.0.1 ports {busy}, which are in use"
    # A folder like a fresh clone's: the sequence reads regions/ and makes .huren/ beside it.
    (tmp_path / "regions").symlink_to(REPO / "regions")
    with subprocess.Popen(
        ["bash", "-e", "-c", readme_sequence()],
        cwd=tmp_path,
        env=SHELL_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as run:
        try:
            out, err = run.communicate(timeout=180)
        finally:
            os.killpg(run.pid, signal.SIGTERM)  # whatever it left running
    assert run.returncode == 0, f"{out}\n{err}"
    assert "Traceback" not in err, err
    lines = out.splitlines()
    assert "SERVING" in lines
    assert any(
        line.startswith("registered hangzhou: region 330100, profile hangzhou@1") for line in lines
    )
    assert any('"status": "VALID", "colour": "GREEN"' in line for line in lines), out
    assert "GREEN  RECOGNISED  at 310000 under policy shanghai@1" in lines
    assert any("REJECTED     ERR_KEY_REVOKED" in line for line in lines), out
    assert "refused, as it should be" in lines
    assert any(line.startswith("audit chain intact: 9 entries") for line in lines), out
    for port in PORTS:  # the sequence stopped what it started
        assert _free(port), port
