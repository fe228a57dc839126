#!/usr/bin/env python3
"""Run the official test data through huren's verify path and report, per source and group.

    python scripts/conformance.py [--json] [--data DIR]

DIR defaults to $HUREN_CONFORMANCE or ../shared/conformance (next to the repository). Sources:
EU DCC test cases (per country), the SMART Health Cards examples, the Wycheproof JOSE vectors.
Exit status: 0 if every case matches its expectations (or its expectation is a known upstream
error, listed in docs/conformance.md), 1 otherwise, 2 if the data is missing. EU DCC cases whose
``iss`` names another country than their folder's are listed too; those refused for it are
counted (``iss``), and match when the data's steps do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.conformance import CaseResult, run_eu_dcc, run_jose, run_shc  # noqa: E402

SOURCES: dict[str, tuple[str, Callable[[Path], list[CaseResult]]]] = {
    "eu-dcc": ("eu-dcc", run_eu_dcc),
    "shc": ("shc", run_shc),
    "jose": ("wycheproof/json_web_signature_test.json", run_jose),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per case, then totals")
    default = Path(os.environ.get("HUREN_CONFORMANCE", ROOT.parent / "shared" / "conformance"))
    parser.add_argument("--data", type=Path, default=default, help="the conformance folder")
    args = parser.parse_args()
    missing = [where for where, _ in SOURCES.values() if not (args.data / where).exists()]
    if missing:
        print(
            f"conformance data not found under {args.data}: {', '.join(missing)}", file=sys.stderr
        )
        return 2
    results = [r for _, run in SOURCES.values() for r in run(args.data)]
    if args.json:
        for r in results:
            print(
                json.dumps(
                    {
                        "source": r.source,
                        "group": r.group,
                        "case": r.name,
                        "outcome": r.outcome,
                        "checked": list(r.checked),
                        "mismatches": list(r.mismatches),
                        "known_upstream_error": r.known_upstream_error,
                        "issuer_mismatch": r.issuer_mismatch,
                    },
                    ensure_ascii=False,
                )
            )
    else:
        _table(results)
    failures = [r for r in results if not r.accepted]
    totals = {
        "cases": len(results),
        "matches": sum(r.matches for r in results),
        "known_upstream_errors": sum(1 for r in results if not r.matches and r.accepted),
        "refused_for_their_issuer": sum(r.refused_for_its_issuer for r in results),
        "mismatches": len(failures),
    }
    if args.json:
        print(json.dumps({"totals": totals}))
    else:
        print(
            f"\nTOTAL {totals['cases']} cases: {totals['matches']} match "
            f"({totals['refused_for_their_issuer']} of them refused for an iss naming another "
            f"country, listed), {totals['known_upstream_errors']} known upstream errors, "
            f"{totals['mismatches']} mismatches"
        )
    return 0 if not failures else 1


def _table(results: list[CaseResult]) -> None:
    groups: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for r in results:
        groups[(r.source, r.group)].append(r)
    print(
        f"{'source':<7} {'group':<34} {'cases':>5} {'match':>5} {'iss':>5} {'known':>5} {'miss':>5}"
    )
    for (source, group), cases in groups.items():
        known = sum(1 for r in cases if not r.matches and r.accepted)
        missed = [r for r in cases if not r.accepted]
        matched = sum(r.matches for r in cases)
        iss = sum(r.refused_for_its_issuer for r in cases)
        print(
            f"{source:<7} {group:<34} {len(cases):>5} {matched:>5} {iss:>5} {known:>5} "
            f"{len(missed):>5}"
        )
        for r in cases:
            if not r.matches:
                note = f"known upstream error: {r.known_upstream_error}" if r.accepted else ""
                print(f"          {r.name}: {'; '.join(r.mismatches)} {note}".rstrip())


if __name__ == "__main__":
    sys.exit(main())
