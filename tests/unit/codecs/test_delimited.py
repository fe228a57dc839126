"""The delimited envelope (Shanghai style): fields, their count, and the detached signature."""

from __future__ import annotations

import pytest

from gateway.codecs import base64url, delimited
from gateway.errors import CodeRejected
from gateway.model import Reason

NAMES = ("iss", "kid", "hc", "iat", "idn")
VALUES = ["shanghai", "sh-1", "0", "20221123100000", "330106199003071228"]
SIGNATURE = base64url.encode(b"\x01" * 64)


def _code(values: list[str], signature: str = SIGNATURE) -> str:
    return "SH1:" + "|".join([*values, signature])


def test_fields_are_named_in_order_and_the_signature_covers_the_text_before_it() -> None:
    code = _code(VALUES)
    parsed = delimited.parse(code, "SH1:", "|", NAMES)
    assert parsed.fields == dict(zip(NAMES, VALUES, strict=True))
    assert parsed.signed == code[: -len(SIGNATURE) - 1].encode("ascii")
    assert parsed.signature == b"\x01" * 64


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param(_code([*VALUES, "extra"]), Reason.ERR_ENVELOPE, id="one-field-too-many"),
        pytest.param(_code(VALUES[:-1]), Reason.ERR_ENVELOPE, id="one-field-missing"),
        pytest.param(_code([*VALUES[:2], "", *VALUES[3:]]), Reason.ERR_ENVELOPE, id="empty-field"),
        pytest.param(_code([*VALUES[:2], "x" * 257, *VALUES[3:]]), Reason.ERR_ENVELOPE, id="long"),
        pytest.param(_code(VALUES, ""), Reason.ERR_ENVELOPE, id="no-signature"),
        pytest.param(_code(VALUES, SIGNATURE + "="), Reason.ERR_BASE64, id="padded-signature"),
        pytest.param(_code(VALUES) + "|" + _code(VALUES), Reason.ERR_ENVELOPE, id="two-codes"),
        pytest.param("sh1:" + _code(VALUES)[4:], Reason.ERR_FORMAT_UNKNOWN, id="lower-prefix"),
    ],
)
def test_malformed_delimited_codes_are_refused_with_their_reason(code: str, reason: Reason) -> None:
    with pytest.raises(CodeRejected) as refused:
        delimited.parse(code, "SH1:", "|", NAMES)
    assert refused.value.reason is reason
