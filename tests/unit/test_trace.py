"""The verify pipeline's trace (the dry run's): each numbered step says what it read and
established, the step that refused a code is the one marked, tracing changes no verdict, and no
fact holds an identity number."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import base64url, strictjson
from gateway.model import IssuerId, Reason, Status, Verdict
from gateway.registry import KeyStatus, TrustState
from gateway.trace import MAX_SHOWN_CHARS, Step, StepRecord, Trace, shown
from gateway.verify import verify_code
from tests.conftest import NOW, World, resident_id

NUMBER = resident_id()


def traced(world: World, code: str, **changes: Any) -> tuple[Verdict, tuple[StepRecord, ...]]:
    """The verdict with a trace; checked to be the verdict without one."""
    now = changes.get("now", NOW)
    snapshot = changes.get("snapshot", world.snapshot)
    common = {"trust": snapshot, "now": now, "limits": world.limits}
    trace = Trace()
    verdict = verify_code(code, **common, identities=world.identities, trace=trace)
    untraced = verify_code(code, **common, identities=world.identities)
    assert verdict == untraced
    return verdict, trace.steps


def _flipped(code: str) -> str:
    head, payload, signature = code.split(".")
    middle = len(signature) // 2
    flip = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flip}{signature[middle + 1 :]}"


def _named(world: World, algorithm: str) -> str:
    """A code signed with the world's ES256 key whose header names ``algorithm``."""
    header = base64url.encode(strictjson.dumps({"alg": algorithm, "kid": world.kid}))
    payload = base64url.encode(strictjson.dumps(world.payload(idn=NUMBER)))
    signature = world.key.sign(f"{header}.{payload}".encode("ascii"))
    return f"{header}.{payload}.{base64url.encode(signature)}"


def _revoked(world: World) -> World:
    state = TrustState(world.snapshot)
    state.revoke_key(IssuerId("hangzhou"), world.kid, NOW - timedelta(days=1))
    assert state.snapshot().keys[(IssuerId("hangzhou"), world.kid)].status is KeyStatus.REVOKED
    return replace(world, snapshot=state.snapshot())


CASES: list[tuple[str, Any, Step, Reason]] = [
    ("empty", lambda w: ("", {}), Step.SCREEN, Reason.ERR_EMPTY),
    ("not-ascii", lambda w: ("eyJ码", {}), Step.SCREEN, Reason.ERR_ENCODING),
    ("unknown-start", lambda w: ("HC1:NCFOXN", {}), Step.ROUTE, Reason.ERR_FORMAT_UNKNOWN),
    ("broken-jws", lambda w: ("eyJhbGciOi.x.y", {}), Step.ENVELOPE, Reason.ERR_BASE64),
    (
        "other-issuer",
        lambda w: (w.code(iss="shanghai", idn=NUMBER), {}),
        Step.ISSUER,
        Reason.ERR_ISSUER_UNKNOWN,
    ),
    (
        "unknown-kid",
        lambda w: (w.code(header={"alg": "ES256", "kid": "other"}, idn=NUMBER), {}),
        Step.KEY,
        Reason.ERR_KEY_UNKNOWN,
    ),
    (
        "tampered",
        lambda w: (_flipped(w.code(idn=NUMBER)), {}),
        Step.SIGNATURE,
        Reason.ERR_SIGNATURE,
    ),
    (
        "header-names-another-algorithm",
        lambda w: (_named(w, "ES384"), {}),
        Step.SIGNATURE,
        Reason.ERR_ALG_NOT_ALLOWED,
    ),
    (
        "revoked-key",
        lambda w: (w.code(idn=NUMBER), {"snapshot": _revoked(w).snapshot}),
        Step.KEY_STATUS,
        Reason.ERR_KEY_REVOKED,
    ),
    (
        "expired",
        lambda w: (w.code(idn=NUMBER), {"now": NOW + timedelta(days=1)}),
        Step.TIMES,
        Reason.ERR_EXPIRED,
    ),
    (
        "time-as-text",
        lambda w: (w.code(iat="1795393800", idn=NUMBER), {}),
        Step.TIMES,
        Reason.ERR_CLAIMS,
    ),
    (
        "unlisted-state",
        lambda w: (w.code(hc="紫码", idn=NUMBER), {}),
        Step.TRANSLATION,
        Reason.ERR_COLOUR_UNKNOWN,
    ),
    (
        "bad-identity",
        lambda w: (w.code(idn=NUMBER[:-1] + ("0" if NUMBER[-1] != "0" else "1")), {}),
        Step.TRANSLATION,  # read with the other facts; step 10 resolves what was read
        Reason.ERR_SCHEMA,
    ),
]


@pytest.mark.parametrize(
    ("make", "step", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_step_that_refuses_a_code_is_the_one_marked(world, make, step, reason):
    code, changes = make(world)
    verdict, steps = traced(world, code, **changes)
    assert verdict.reason is reason
    assert [s.step for s in steps] == list(Step)[:step]
    *passed, failed = steps
    assert all(s.passed and s.facts for s in passed)
    assert (failed.step, failed.reason, failed.detail) == (step, reason, verdict.detail)
    assert NUMBER not in repr(steps)


def test_a_valid_code_runs_every_step_and_says_what_each_read(world):
    verdict, steps = traced(world, world.code(hc="灰码", idn=NUMBER))
    assert verdict.status is Status.VALID
    assert [s.step for s in steps] == list(Step)
    assert all(s.passed for s in steps)
    facts = {s.step: s.facts for s in steps}
    assert facts[Step.ENVELOPE] == (
        f"compact JWS: alg ES256, kid {world.kid!r}; 93-byte JSON payload, a map of 5 members",
    )
    assert facts[Step.ISSUER] == ("iss = 'hangzhou': candidate issuer hangzhou",)
    assert facts[Step.KEY] == (f"key id {world.kid!r} selects hangzhou/{world.kid} (ES256)",)
    assert facts[Step.SIGNATURE][0].startswith(
        f"ES256 signature verifies with key hangzhou/{world.kid} over the "
    )
    assert facts[Step.TIMES][:3] == (
        f"issued_at at iat (unix-s) = {int(NOW.timestamp()) - 600}",
        f"expires_at at exp (unix-s) = {int(NOW.timestamp()) + 3600}",
        "issued 2026-11-23T01:50:00Z, expires 2026-11-23T03:00:00Z",
    )
    assert facts[Step.TRANSLATION] == (
        "issuer at iss = 'hangzhou' (must be 'hangzhou')",
        "state at hc (text) = '灰码'",
        "'灰码' -> GREY by the profile's states; note: pending: the back-end check has not "
        "finished",
    )
    assert facts[Step.IDENTITY] == (
        "cn-resident-id: full number at idn (masked in every verdict) -> "
        f"{verdict.code.masked_identity if verdict.code else ''}",
    )
    assert NUMBER not in repr(steps)


@given(
    where=st.sampled_from(["hc", "iss", "iat", "exp", "kid"]),
    spelled=st.sampled_from([NUMBER, NUMBER.lower(), int(NUMBER[:17]), f"x{NUMBER}y", NUMBER[:15]]),
)
def test_no_fact_ever_holds_an_identity_number_wherever_the_code_puts_one(world, where, spelled):
    """A region that writes the number where the profile reads something else (a state, an
    issuer, a time, a key id): the trace shows the value it read, masked."""
    if where == "kid":
        code = world.code(header={"alg": "ES256", "kid": str(spelled)}, idn=NUMBER)
    else:
        code = world.code(**{where: spelled, "idn": NUMBER})
    verdict, steps = traced(world, code)
    assert verdict.status is not Status.VALID
    text = repr(steps)
    for digits in (NUMBER, NUMBER[:17], NUMBER[:15]):
        assert digits not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("绿码", "'绿码'"),
        (1795393800, "1795393800"),
        (True, "true"),
        (None, "null"),
        (b"\x00" * 32, "32 bytes"),
        ({"a": 1}, "a map of 1 members"),
        ([1, 2], "a list of 2 values"),
        (NUMBER, repr(NUMBER[:3] + "*" * 13 + NUMBER[-2:])),
        ("x" * 100, repr("x" * MAX_SHOWN_CHARS + "…")),
        ("a\nb", "'a\\nb'"),
    ],
    ids=["text", "integer", "boolean", "null", "bytes", "map", "list", "number", "long", "newline"],
)
def test_values_read_from_a_code_are_shown_short_and_never_as_identity_numbers(value, expected):
    assert shown(value) == expected
