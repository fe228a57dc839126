"""The committed generated code is exactly what ``make proto`` produces from proto/."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_generated_code_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
