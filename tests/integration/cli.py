"""Running the ``huren`` command line as a user runs it: separate processes, UTF-8 output."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import REPO

HUREN = [sys.executable, "-m", "gateway"]
ENV = {**os.environ, "PYTHONUTF8": "1"}
SHELL_ENV = {
    **ENV,
    "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
}
"""A shell user's environment with this ``huren`` on ``PATH``, for docs' command sequences."""


def huren(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUREN, *args],
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
        cwd=REPO,
        env=ENV,
    )


def huren_bytes(*args: str, stdin: bytes) -> subprocess.CompletedProcess[str]:
    """``huren`` with raw bytes on standard input."""
    result = subprocess.run(
        [*HUREN, *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env=ENV,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def huren_all(*commands: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at the same time, each its own process; results in order."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: huren(*args), commands))


def spawn(*args: str) -> subprocess.Popen[str]:
    """``huren ARGS`` started in the background, its output read as text by the caller."""
    return subprocess.Popen(
        [*HUREN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=ENV,
    )


@contextlib.contextmanager
def running(*args: str) -> Iterator[str]:
    """A long-running ``huren`` command; yields the first line it prints."""
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(
            [*HUREN, *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            encoding="utf-8",
            cwd=REPO,
            env=ENV,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=10)
                errors.seek(0)
                pytest.fail(f"huren {args[0]} exited {proc.returncode}: {errors.read().decode()}")
            yield line
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@dataclass
class Served:
    """A ``huren serve`` process started by :func:`serving`."""

    address: str
    metrics: int
    stderr: IO[bytes]
    process: subprocess.Popen[str]
    registry: str | None = None
    """A hub's registry address (mutual TLS), as it printed it; None for a replica or
    ``--insecure``."""
    web: str | None = None
    """The web edge's URL (``--web-listen``), as it printed it; None without one."""

    def log_lines(self) -> list[str]:
        self.stderr.seek(0)
        return self.stderr.read().decode().splitlines()


@contextlib.contextmanager
def serving(
    state: Path | None,
    pki: Path | None,
    *extra: str,
    front: tuple[str, ...] = (),
    env: dict[str, str] = ENV,
    listen: str = "127.0.0.1:0",
    registry_listen: str = "127.0.0.1:0",
) -> Iterator[Served]:
    """``huren serve`` with ``extra`` options (and global options ``front``) until the block
    ends, its metrics on a port of its own; its standard error is kept for the test. Without
    ``state`` and ``pki``, only ``extra`` and ``env`` say what to serve. The block may stop or
    kill the process itself (``Served.process``)."""
    where = (
        []
        if state is None or pki is None
        else [
            *("--listen", listen, "--registry-listen", registry_listen),
            *("--state-dir", str(state), "--tls-dir", str(pki), "--metrics-listen", "127.0.0.1:0"),
        ]
    )
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(
            [*HUREN, *front, "serve", *where, *extra],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=REPO,
            env=env,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            address = metrics = registry = web = None
            while metrics is None:
                line = proc.stdout.readline()
                if not line:
                    errors.seek(0)
                    pytest.fail(f"huren serve exited: {errors.read().decode()}")
                if found := re.search(r"(?:gateway|replica) listening on (\S+) ", line):
                    address = found.group(1)
                if found := re.search(r"; registry on (\S+)\)$", line.rstrip()):
                    registry = found.group(1)
                if found := re.search(r"huren web listening on (\S+) ", line):
                    web = found.group(1)
                if found := re.search(r"metrics on http://[^:]+:(\d+)/metrics", line):
                    metrics = int(found.group(1))
            assert address is not None
            yield Served(address, metrics, errors, proc, registry, web)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def refused(result: subprocess.CompletedProcess[str], status: str, message: str) -> None:
    """The CLI's answer to a call the gateway refused: nothing on stdout, one line on stderr."""
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr == f"huren: gateway call failed: {status}: {message}\n", result.stderr


def init_state(state: object, *regions: tuple[str, str]) -> None:
    """``huren registry init`` a new state directory, and create ``regions`` (code, name) in
    it, as the host's administrator does."""
    created = huren("registry", "init", "--state-dir", str(state))
    assert created.returncode == 0, created.stderr
    for code, name in regions:
        made = huren(
            *("registry", "create-region", "--state-dir", str(state)),
            *("--region", code, "--name", name),
        )
        assert made.returncode == 0, made.stderr
