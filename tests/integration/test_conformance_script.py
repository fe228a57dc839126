"""``scripts/conformance.py`` run as a user runs it (a separate process): a table per country
and a total, JSON lines, and exit status 0, 1 (a case does not meet its expectation: named) or 2
(no data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.conformance import KNOWN_ISSUER_MISMATCHES, KNOWN_UPSTREAM_ERRORS
from gateway.model import Reason
from tests.conftest import REPO
from tests.unit.test_conformance import a_valid_case, conformance_data

SCRIPT = REPO / "scripts" / "conformance.py"


@pytest.fixture(scope="module")
def data() -> Path:
    return conformance_data()


def _script(*args: str, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("HUREN_CONFORMANCE", None)
    extra = ["--data", str(data)] if data is not None else []
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_script_prints_a_table_per_country_and_a_total_and_exits_0(data: Path) -> None:
    run = _script(data=data)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any(line.split()[:2] == ["eu-dcc", "NL"] for line in lines if line.strip())
    assert any(line.split()[:2] == ["shc", "examples"] for line in lines if line.strip())
    total = lines[-1]
    assert total.startswith("TOTAL ")
    assert " 0 mismatches" in total
    for name in KNOWN_UPSTREAM_ERRORS:
        assert name in run.stdout


def test_script_json_gives_one_object_per_case_and_totals(data: Path) -> None:
    run = _script("--json", data=data)
    assert run.returncode == 0, run.stderr
    objects = [json.loads(line) for line in run.stdout.splitlines()]
    *cases, last = objects
    totals = last["totals"]
    assert totals["cases"] == len(cases)
    assert totals["mismatches"] == 0
    assert totals["known_upstream_errors"] == len(KNOWN_UPSTREAM_ERRORS)
    assert totals["matches"] == sum(1 for c in cases if not c["mismatches"])
    listed = [c for c in cases if c.get("issuer_mismatch")]
    assert {c["case"] for c in listed} == set(KNOWN_ISSUER_MISMATCHES)
    assert totals["refused_for_their_issuer"] == sum(
        c["outcome"] == Reason.ERR_ISSUER_MISMATCH.value for c in listed
    )
    assert {c["source"] for c in cases} == {"eu-dcc", "shc", "jose"}
    assert all({"group", "case", "outcome", "checked"} <= set(c) for c in cases)


def test_script_exits_2_with_a_clear_message_when_the_data_is_missing(tmp_path: Path) -> None:
    run = _script(data=tmp_path)
    assert run.returncode == 2
    assert "conformance data not found" in run.stderr
    assert "eu-dcc" in run.stderr


def test_script_exits_1_and_names_the_case_when_an_expectation_is_not_met(
    data: Path, tmp_path: Path
) -> None:
    """A data folder with one EU DCC case whose expectation was flipped (a valid code said to
    fail its signature check): the script reports that case as a mismatch."""
    country, _, case = a_valid_case(data)
    flipped = dict(case)
    flipped["EXPECTEDRESULTS"] = dict(case["EXPECTEDRESULTS"], EXPECTEDVERIFY=False)
    raw = tmp_path / "eu-dcc" / country / "2DCode" / "raw"
    raw.mkdir(parents=True)
    (raw / "1.json").write_text(json.dumps(flipped), "utf-8")
    (tmp_path / "wycheproof").mkdir()
    shutil.copy(
        data / "wycheproof" / "json_web_signature_test.json",
        tmp_path / "wycheproof" / "json_web_signature_test.json",
    )
    (tmp_path / "shc").symlink_to(data / "shc", target_is_directory=True)
    run = _script(data=tmp_path)
    assert run.returncode == 1
    assert f"{country}/1: VERIFY expected fail, got VALID" in run.stdout
    assert run.stdout.splitlines()[-1].endswith(" 1 mismatches")
