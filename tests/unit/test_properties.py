"""Properties of the whole pipeline: nothing unverified is ever GREEN.

- Arbitrary text or bytes give a typed rejection: a Verdict, never an exception, never GREEN.
- Changing any single character of a valid code never yields GREEN (nor VALID at all: the
  strict decoders leave no room for a second spelling of the same code).
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.model import Colour, Reason, Status, Verdict
from gateway.verify import verify_code
from tests.conftest import NOW, make_world

WORLD = make_world()
GREEN_CODE = WORLD.code(hc="绿码")
YELLOW_CODE = WORLD.code(hc="黄码")
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def _verify(code: str) -> Verdict:
    return verify_code(
        code, trust=WORLD.snapshot, now=NOW, limits=WORLD.limits, identities=WORLD.identities
    )


def _never_green(code: str) -> None:
    verdict = _verify(code)
    assert verdict.colour is not Colour.GREEN
    assert verdict.status is not Status.VALID
    assert verdict.code is None
    assert verdict.reason is not Reason.OK
    assert verdict.reason is not Reason.ERR_INTERNAL, "an input reached an unexpected exception"


@given(st.text(max_size=400))
def test_arbitrary_text_is_a_typed_rejection(text: str) -> None:
    _never_green(text)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_text_are_a_typed_rejection(data: bytes) -> None:
    _never_green(data.decode("latin-1"))


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", max_size=300
    )
)
def test_arbitrary_jws_alphabet_text_is_a_typed_rejection(text: str) -> None:
    _never_green("eyJ" + text)


@given(st.data())
def test_changing_one_character_of_a_green_code_never_yields_green(data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(GREEN_CODE) - 1), label="index")
    replacement = data.draw(PRINTABLE, label="replacement")
    assume(replacement != GREEN_CODE[index])
    _never_green(GREEN_CODE[:index] + replacement + GREEN_CODE[index + 1 :])


@given(st.data())
def test_changing_one_character_of_a_yellow_code_never_yields_any_valid_verdict(
    data: st.DataObject,
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(YELLOW_CODE) - 1), label="index")
    replacement = data.draw(PRINTABLE, label="replacement")
    assume(replacement != YELLOW_CODE[index])
    _never_green(YELLOW_CODE[:index] + replacement + YELLOW_CODE[index + 1 :])


@given(
    st.integers(min_value=0, max_value=len(GREEN_CODE)), st.text(PRINTABLE, min_size=1, max_size=8)
)
def test_inserting_text_into_a_green_code_never_yields_green(index: int, extra: str) -> None:
    _never_green(GREEN_CODE[:index] + extra + GREEN_CODE[index:])


def test_the_unmodified_codes_are_valid() -> None:
    """Guards the properties above against passing vacuously."""
    assert _verify(GREEN_CODE).colour is Colour.GREEN
    assert _verify(YELLOW_CODE).colour is Colour.YELLOW
