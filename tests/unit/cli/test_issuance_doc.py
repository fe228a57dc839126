"""docs/transfer.md's example of the issuance log is what ``print_issuances`` prints for the
entries it shows (the host's and the remote command share that printer)."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import datetime

from gateway import transfer
from gateway.cli.local import print_issuances
from gateway.model import RegionCode
from gateway.storage.attestations import DEFAULT_MAX_ENTRIES
from tests.conftest import REPO

LINE = re.compile(
    r"#(\d+) (\S+) (\S+) for (\d{6}) under (\S+), expires (\S+), key (\S+), sources (.+)"
)
SUMMARY = re.compile(
    r"(\d+) shown of (\d+) kept \(the log keeps the latest (\d+)\); older ones: --before (\d+)"
)


def test_the_documented_issuance_log_is_what_the_commands_print():
    text = (REPO / "docs" / "transfer.md").read_text("utf-8")
    block = text.split("print the same lines, newest first, then a summary:\n\n```\n", 1)[1]
    shown = block.split("```", 1)[0]
    *lines, summary = shown.splitlines()
    entries = []
    for line in lines:
        found = LINE.fullmatch(line)
        assert found, line
        seq, issued, ref, destination, policy, expires, kid, sources = found.groups()
        issuance = transfer.Issuance(
            ref,
            RegionCode(destination),
            *transfer.policy_label(policy),
            tuple(sources.split(" ")),
            kid,
            datetime.fromisoformat(issued),
            datetime.fromisoformat(expires),
        )
        entries.append((int(seq), issuance))
    counted = SUMMARY.fullmatch(summary)
    assert counted, summary
    assert int(counted.group(1)) == len(entries)
    page = transfer.IssuancePage(
        tuple(entries), int(counted.group(4)), int(counted.group(2)), int(counted.group(3))
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_issuances(page, as_json=False)
    assert printed.getvalue() == shown
    assert page.next_before == entries[-1][0]  # the next page starts below the last shown
    assert page.max_kept == DEFAULT_MAX_ENTRIES  # the bound the docs name is the log's
