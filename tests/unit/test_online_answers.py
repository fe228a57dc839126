"""Zhejiang-style online answers through the pure core: what a signed answer may and may not
vouch for. Answers come from Zhejiang's own answer function and are signed with its registered
key (amended first where a test says so), so only the meaning of the answer is under test."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.model import Colour, Reason, Status
from regions.common.spec import Level
from tests.regionworld import RegionsWorld, build_world

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
NUMBER = "330106199003071228"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> RegionsWorld:
    return build_world(Path(tmp_path_factory.mktemp("regions")))


def _with_error(value: Any):
    def amend(body: dict[str, Any]) -> None:
        body["error"] = value

    return amend


def test_a_genuine_green_answer_signed_again_is_still_green(world):
    """The re-signing the other tests use changes nothing by itself."""
    code = world.issue_level("zhejiang", NUMBER, Level.GREEN, T0).code
    verdict = world.verify(code, T0, amend=lambda body: None)
    assert (verdict.status, verdict.colour) == (Status.VALID, Colour.GREEN)


@pytest.mark.parametrize(
    "error",
    ["suspended", "Unknown-Token", "", 7, 0, None, True, ["unknown-token"], {"code": "x"}],
    ids=["word", "other-case", "empty", "number", "zero", "null", "true", "list", "object"],
)
def test_an_answer_with_any_other_error_is_unverifiable_whatever_else_it_says(world, error):
    """A signed answer saying green *and* carrying an error the protocol does not define is
    never VALID: the gateway cannot tell what the error means, so it cannot vouch for the code."""
    code = world.issue_level("zhejiang", NUMBER, Level.GREEN, T0).code
    verdict = world.verify(code, T0, amend=_with_error(error))
    assert (verdict.status, verdict.reason, verdict.colour) == (
        Status.UNVERIFIABLE,
        Reason.ERR_ISSUER_UNAVAILABLE,
        Colour.GREY,
    )
    assert verdict.code is None
    assert "error other than unknown-token" in verdict.detail
    assert verdict.provenance.issuer == "zhejiang"


def test_unknown_token_is_rejected_even_beside_a_green_status(world):
    code = world.issue_level("zhejiang", NUMBER, Level.GREEN, T0).code
    verdict = world.verify(code, T0, amend=_with_error("unknown-token"))
    assert (verdict.status, verdict.reason, verdict.colour) == (
        Status.REJECTED,
        Reason.ERR_TOKEN_UNKNOWN,
        Colour.GREY,
    )
    assert verdict.code is None
