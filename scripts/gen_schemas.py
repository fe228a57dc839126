#!/usr/bin/env python3
"""Write the JSON Schemas of the declarative languages into ``docs/schemas/``.

Each schema is built by the language's own package from its loader's rules
(:mod:`gateway.policy.schema`, :mod:`gateway.profiles.schema`); the files are committed so that
editors and CI jobs in any language can use them. ``--check`` fails if a committed file
differs from what the code builds (the test suite runs it).

Usage: python scripts/gen_schemas.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.policy import policy_schema  # noqa: E402
from gateway.profiles import profile_schema  # noqa: E402

OUT = ROOT / "docs" / "schemas"
SCHEMAS = {"policy.schema.json": policy_schema, "profile.schema.json": profile_schema}


def render(build: object) -> str:
    assert callable(build)
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    stale = []
    for name, build in SCHEMAS.items():
        path, text = OUT / name, render(build)
        if args.check:
            if not path.is_file() or path.read_text("utf-8") != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text, "utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run `make schemas`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
