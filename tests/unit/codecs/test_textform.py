"""The numeric text of SMART Health Cards, decoded in bulk, agrees with the pair-by-pair rule
of the specification on every input (issue 14 made the decoding bulk)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import textform
from gateway.errors import CodeRejected
from gateway.model import Reason


def _pair_by_pair(digits: str) -> str | None:
    """The specification's rule, one pair at a time: None where a pair is above 77."""
    out = []
    for i in range(0, len(digits), 2):
        value = int(digits[i : i + 2])
        if value > 77:
            return None
        out.append(chr(value + 45))
    return "".join(out)


@given(st.text(alphabet="0123456789", min_size=1, max_size=400).filter(lambda d: len(d) % 2 == 0))
def test_bulk_decoding_agrees_with_the_pair_by_pair_rule(digits: str) -> None:
    expected = _pair_by_pair(digits)
    if expected is None:
        with pytest.raises(CodeRejected) as refused:
            textform.decode_numeric("shc:/" + digits, "shc:/", 1000)
        assert refused.value.reason is Reason.ERR_NUMERIC
    else:
        assert textform.decode_numeric("shc:/" + digits, "shc:/", 1000) == expected


@given(st.text(alphabet=[chr(c) for c in range(45, 123)], min_size=1, max_size=300))
def test_every_character_of_a_compact_jws_round_trips(text: str) -> None:
    numeric = textform.encode_numeric("shc:/", text)
    assert textform.decode_numeric(numeric, "shc:/", 1000) == text
