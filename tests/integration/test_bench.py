"""`make bench` keeps working: a short run prints every ratio (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, REPO

pytestmark = pytest.mark.slow


def _quick_run(script: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``scripts/SCRIPT --quick --json OUT EXTRA``, which must succeed."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--quick", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_bench_quick_run_reports_every_ratio(tmp_path):
    out = tmp_path / "bench.json"
    result = _quick_run("bench.py", out)
    for label in (
        "R1 in-process verify",
        "R2 Verify RPC/s",
        "R3 VerifyBatch codes/s",
        "R4 EU DCC in-process verify",
        "P1 ",
    ):
        assert label in result.stdout
    data = json.loads(out.read_text())
    for key in ("in_process", "verify_vs_empty", "batch_vs_empty"):
        assert data[key]["median"] > 0
    assert data["dcc"]["in_process"]["median"] > 0
    # The cwt peer runs only where `make bench` set up its virtualenv; otherwise it says so.
    if data["dcc"]["peer"] is None:
        assert "peer (cwt) not measured" in result.stdout
    else:
        assert data["dcc"]["peer"]["median"] > 0


def test_the_step_profile_measures_every_step_of_six_formats(tmp_path):
    out = tmp_path / "steps.json"
    result = _quick_run("bench_steps.py", out)
    data = json.loads(out.read_text())
    # Six formats; the SMART Health Card needs the official test data next to the repository.
    assert len(data) == (6 if (CONFORMANCE / "shc" / "examples").is_dir() else 5)
    for name, steps in data.items():
        assert name in result.stdout
        for step in ("1 screen", "6 raw verify, cached key (floor)", "9 translate"):
            assert steps[step] > 0, (name, step)
        assert "glue (all minus the steps)" in steps


def test_the_trust_list_scale_benchmark_compares_each_size_with_the_smallest(tmp_path):
    out = tmp_path / "scale.json"
    result = _quick_run("bench_scale.py", out)
    data = json.loads(out.read_text())
    registry = data.pop("registry")
    assert list(data) == ["10", "100", "1000"]
    assert data["10"]["ratio_to_smallest"] == 1.0
    for size in data.values():
        assert size["verify_per_s"] > 0
        assert size["registry_state_bytes"] > 0
    # The signed trust list grows with the keys it lists, compressed to less than half.
    assert data["10"]["trust_list_chars"] < data["100"]["trust_list_chars"]
    assert data["100"]["trust_list_chars"] < data["1000"]["trust_list_chars"]
    big = data["1000"]
    assert big["trust_list_chars"] < big["trust_list_uncompressed_chars"] / 2
    assert big["trust_list_sign_s"] > 0
    assert big["trust_list_hub_heartbeat_s"] > 0
    assert big["trust_list_heartbeat_s"] > 0
    assert big["trust_list_load_s"] > 0
    assert "replica load" in result.stdout
    assert "ratio to 10 keys" in result.stdout
    # The registry on disk at the same sizes: start-up of a real gateway, and one change.
    assert list(registry) == ["10", "100", "1000"]
    for size in registry.values():
        for figure in ("start_up_s", "import_certificate_s", "revoke_key_s", "fill_s"):
            assert size[figure] > 0, figure
    assert "start-up" in result.stdout


def test_the_latency_benchmark_reports_percentiles_and_the_overload(tmp_path):
    out = tmp_path / "latency.json"
    result = _quick_run("bench_latency.py", out)
    data = json.loads(out.read_text())
    for name in ("n1", "n16"):
        for figure in ("verify_p50_ms", "verify_p99_ms", "empty_p50_ms", "empty_p99_ms"):
            assert data[name][figure] > 0, (name, figure)
        assert data[name]["p99_ratio"] > 0
    overload = data["overload"]
    assert overload["offered_per_s"] == 3 * data["capacity_per_s"]
    assert sum(overload["outcomes"].values()) == overload["calls"] > 0
    # Every call ended one way or another, and the server still answers afterwards.
    assert data["after"]["verify_p50_ms"] > 0
    for label in ("capacity", "admitted:", "refused:", "outcomes:"):
        assert label in result.stdout


def test_through_the_front_the_overload_is_answered_or_refused_with_the_gateways_status(tmp_path):
    out = tmp_path / "latency-front.json"
    result = _quick_run("bench_latency.py", out, "--front")
    data = json.loads(out.read_text())
    assert data["front"] == "defaults"
    outcomes = data["overload"]["outcomes"]
    # Every call answered with the right verdict or refused RESOURCE_EXHAUSTED carrying the
    # gateway's huren-reason: none CANCELLED, none refused bare, none wrong.
    assert set(outcomes) <= {"answered", "refused"}, outcomes
    assert outcomes.get("answered", 0) > 0, outcomes
    assert outcomes.get("refused", 0) > 0, outcomes  # three times the capacity, for 1.5 s
    assert "; front defaults)" in result.stdout


def test_the_propagation_benchmark_reports_revocations_and_recovery(tmp_path):
    out = tmp_path / "propagation.json"
    result = _quick_run("bench_propagation.py", out)
    data = json.loads(out.read_text())
    spread, back = data["propagation"], data["recovery"]
    assert len(spread["delays_s"]) == spread["revocations"] == 2
    assert all(len(row) == 3 and min(row) > 0 for row in spread["delays_s"])  # every replica
    assert 0 < spread["p50_s"] <= spread["max_s"] == max(max(r) for r in spread["delays_s"])
    assert len(back["delays_s"]) == back["restarts"] == 1
    assert back["p50_s"] <= back["max_s"]
    for label in ("first refusal", "recovery after a hub restart"):
        assert label in result.stdout


def test_the_workers_benchmark_compares_two_workers_with_one(tmp_path):
    out = tmp_path / "workers.json"
    result = _quick_run("bench_workers.py", out)
    data = json.loads(out.read_text())
    for name in ("verify", "batch"):
        figures = data[name]
        assert figures["median"] > 0
        assert figures["two_per_s"] > 0
        assert figures["one_per_s"] > 0
        assert figures["ceiling_ratio"] > 0
        assert sum(figures["worker_shares"]) == pytest.approx(1.0)
    for label in ("Verify      2 workers ÷ 1 worker", "VerifyBatch 2 workers ÷ 1 worker"):
        assert label in result.stdout


def test_the_latency_benchmark_measures_a_replica_with_workers(tmp_path):
    out = tmp_path / "latency-workers.json"
    result = _quick_run("bench_latency.py", out, "--workers", "2")
    data = json.loads(out.read_text())
    assert (data["workers"], data["connections"]) == (2, 16)
    assert sum(data["overload"]["outcomes"].values()) == data["overload"]["calls"] > 0
    assert "replica with 2 workers" in result.stdout
