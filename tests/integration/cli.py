"""Running the ``huren`` command line as a user runs it: separate processes, UTF-8 output."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

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
