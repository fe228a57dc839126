"""``huren --help`` as a shell user sees it: the same in every run (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PRINT_EVERY_HELP = (
    "from gateway.cli import build_parser, parsers\n"
    "for p in parsers(build_parser()):\n"
    "    print(p.format_help())\n"
)


def test_help_is_the_same_in_every_run() -> None:
    """Nothing in it depends on hash order (sets of choices once came out shuffled)."""
    outputs = {
        subprocess.run(
            [sys.executable, "-c", PRINT_EVERY_HELP],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed, "COLUMNS": "100"},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    assert "huren operator add-key" in outputs.pop()
