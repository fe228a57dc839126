"""``huren serve --web-listen`` and ``huren web`` as a user runs them (issue 13)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.cli import huren, spawn

pytestmark = pytest.mark.slow


@contextmanager
def started(*args: str, lines: int) -> Iterator[list[str]]:
    """A long-running ``huren`` command; yields the first ``lines`` lines it prints."""
    with spawn(*args) as proc:
        try:
            assert proc.stdout is not None
            printed = [proc.stdout.readline() for _ in range(lines)]
            assert all(printed), (printed, proc.stderr.read() if proc.stderr else "")
            yield printed
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def web_verify(base: str, code: str) -> dict[str, object]:
    request = urllib.request.Request(
        base + "/api/verify",
        data=json.dumps({"code": code}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        answer: dict[str, object] = json.loads(response.read())
        return answer


def test_serve_with_web_listen_and_huren_web_both_answer_as_the_gateway(tmp_path: Path):
    serve = ("serve", "--insecure", "--init", "--state-dir", str(tmp_path / "gw"))
    listen = ("--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0")
    with started(*serve, *listen, lines=2) as (gateway_line, web_line):
        gateway = re.search(r"listening on (\S+) ", gateway_line)
        web = re.search(r"huren web listening on (http://127\.0\.0\.1:\d+)", web_line)
        assert gateway, gateway_line
        assert web, web_line
        with urllib.request.urlopen(web.group(1) + "/checkpoint?at=310000", timeout=10) as page:
            assert page.status == 200
            assert "扫码核验" in page.read().decode("utf-8")
        answer = web_verify(web.group(1), "not a health code")
        assert (answer["status"], answer["reason"]) == ("REJECTED", "ERR_FORMAT_UNKNOWN")
        # The same through `huren web`, a separate client of the same gateway.
        client = ("web", "--insecure", "--gateway", gateway.group(1), "--listen", "127.0.0.1:0")
        with started(*client, lines=1) as (line,):
            other = re.search(r"(http://127\.0\.0\.1:(\d+))", line)
            assert other, line
            assert web_verify(other.group(1), "not a health code")["reason"] == "ERR_FORMAT_UNKNOWN"
            # Its port is taken now: a second one says so in one line.
            taken = huren(*client[:-1], f"127.0.0.1:{other.group(2)}", timeout=30)
            assert taken.returncode == 2
            assert taken.stderr.startswith("huren: ")
            assert "cannot serve the web pages on 127.0.0.1:" in taken.stderr
            assert len(taken.stderr.splitlines()) == 1
