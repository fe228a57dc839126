"""docs/scaling.md's capacity plan holds: its figures are the ones docs/performance.md
measured, and every number of its table follows from them by the formula it states."""

from __future__ import annotations

import math
import re

from tests.conftest import REPO


def _section(path: str, title: str) -> str:
    text = (REPO / path).read_text("utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _number(text: str) -> float:
    found = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    assert found, text
    return float(found.group().replace(",", ""))


PLAN = _section("docs/scaling.md", "Capacity plan")
PROSE = " ".join(PLAN.split())
"""The section with its line breaks as spaces (prose may be wrapped anywhere)."""
FIGURES = {name: _number(value) for name, value in _rows(PLAN, "figure")}
UNARY = FIGURES["unary `Verify` per core"]
BATCHED = FIGURES["`VerifyBatch` per core (64 codes a call)"]
UTILISATION = FIGURES["planned CPU utilisation (headroom)"] / 100


def test_the_per_core_figures_are_the_measured_ones():
    measured = (REPO / "docs" / "performance.md").read_text("utf-8")
    assert f"{BATCHED:,.0f} batched codes/s" in measured
    assert f"{UNARY:,.0f} unary `Verify` RPC/s" in measured
    assert 0 < UTILISATION < 1


def test_every_row_of_the_plan_follows_from_the_figures():
    rows = _rows(PLAN, "load")
    assert len(rows) == 4
    seen = set()
    for load, rate, calls, per_core, cores, replicas in rows:
        if "/min" in load:
            expected_rate = _number(load.split(",", 1)[1]) / 60
        else:
            expected_rate = _number(load.split(",", 1)[1])
        assert _number(rate) == expected_rate, load
        per = (UNARY if calls == "unary `Verify`" else BATCHED) * UTILISATION
        assert _number(per_core) == round(per), (load, calls)
        assert _number(cores) == math.ceil(expected_rate / per), (load, calls)
        assert _number(replicas) == _number(cores)  # one process, one core
        seen.add((expected_rate, calls))
    assert seen == {
        (r, c) for r in (25_000, 20_000) for c in ("unary `Verify`", "`VerifyBatch` of 64")
    }


def test_the_worked_example_shows_the_same_arithmetic():
    unary = UNARY * UTILISATION
    batched = BATCHED * UTILISATION
    assert f"25,000 ÷ ({UNARY:,.0f} × {UTILISATION:.2f}) = 25,000 ÷ {unary:,.1f}" in PROSE
    assert f"= {25_000 / unary:.1f}, so {math.ceil(25_000 / unary)} cores" in PROSE
    assert f"25,000 ÷ ({BATCHED:,.0f} × {UTILISATION:.2f}) = 25,000 ÷ {batched:,.1f}" in PROSE
    assert f"= {25_000 / batched:.1f}, so {math.ceil(25_000 / batched)}" in PROSE
    assert f"{BATCHED / UNARY:.1f} times as many codes per core" in PROSE
    # Losing one replica of the unary plan: the others' utilisation, before and after.
    cores = math.ceil(25_000 / unary)
    before, after = (25_000 / (n * UNARY) for n in (cores, cores - 1))
    assert (
        f"{cores} replicas at {before:.0%} become {cores - 1} at {after:.0%}".replace("%", " %")
        in PROSE
    )
