"""The official test data, through the gateway's verify path, in `make test`.

The same runner as `scripts/conformance.py` (gateway/conformance.py): every EU DCC case matches
its expectations except the known upstream errors listed in docs/conformance.md, the four SMART
Health Cards examples give their expected outcomes, and every Wycheproof JOSE vector gives its
expected result. Tests also show the runner can fail: a tampered code is reported as a mismatch (the script's
exit status: tests/integration/test_conformance_script.py).
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest

from gateway import crypto
from gateway.codecs import base45
from gateway.codecs.textform import encode_numeric
from gateway.conformance import (
    KNOWN_ISSUER_MISMATCHES,
    KNOWN_UPSTREAM_ERRORS,
    LIMITS,
    SHC_CLOCK,
    SHC_EXPECTED,
    STEPS,
    CaseResult,
    eu_dcc_cases,
    run_eu_dcc,
    run_eu_dcc_case,
    run_jose,
    run_shc,
    shc_trust,
)
from gateway.errors import CodeRejected
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.model import Colour, IssuerId, KeyId, Reason, Status, Verdict
from gateway.registry import Revocations, TrustState
from gateway.verify import verify_code
from tests.conftest import REPO, conformance

IDENTITIES = IdentityKeys(bytes(range(32)), bytes(range(32, 64)))


@pytest.fixture(scope="module")
def data() -> Path:
    return conformance_data()


def conformance_data() -> Path:
    root = conformance()
    for part in ("eu-dcc", "shc", "wycheproof/json_web_signature_test.json"):
        conformance(part)
    return root


@pytest.fixture(scope="module")
def eu_results(data: Path) -> list[CaseResult]:
    return run_eu_dcc(data)


# ------------------------------------------------------------------ EU DCC


def test_every_eu_dcc_case_matches_or_is_a_listed_upstream_error(
    eu_results: list[CaseResult],
) -> None:
    failing = [
        f"{r.name}: {'; '.join(r.mismatches)} (outcome {r.outcome})"
        for r in eu_results
        if not r.accepted
    ]
    assert failing == []
    assert len(eu_results) >= 500, "the EU DCC test data should hold every country's cases"
    countries = {r.group for r in eu_results}
    assert len(countries) >= 30


def test_the_known_upstream_errors_are_few_and_each_one_still_mismatches(
    eu_results: list[CaseResult],
) -> None:
    """No more than three, each with its evidence; a listed case that starts to match (the data
    was fixed upstream) must leave the list rather than hide a future regression."""
    assert 0 < len(KNOWN_UPSTREAM_ERRORS) <= 3
    by_name = {r.name: r for r in eu_results}
    for name, evidence in KNOWN_UPSTREAM_ERRORS.items():
        assert name in by_name, f"{name} is listed as an upstream error but is not in the data"
        assert by_name[name].mismatches, f"{name} now matches: remove it from the list"
        assert len(evidence) > 40
    documented = (REPO / "docs" / "conformance.md").read_text("utf-8")
    for name in KNOWN_UPSTREAM_ERRORS:
        assert _documents(name, documented), f"docs/conformance.md does not list {name}"


def test_every_runnable_case_checks_something_and_refusals_are_really_exercised(
    eu_results: list[CaseResult],
) -> None:
    """The cases are not vacuous: every case compares at least one step, and the data expects
    failures at every step the gateway reports, which the gateway reproduces."""
    unchecked = sorted(r.name for r in eu_results if not r.checked)
    assert unchecked == [f"common/DGC{i}" for i in range(1, 7)] + ["common/Q1"]
    documented = (REPO / "docs" / "conformance.md").read_text("utf-8")
    assert "`common/DGC1`–`DGC6`, `Q1`) set none of these flags" in documented
    assert not [r.name for r in eu_results if r.outcome.startswith("not runnable")]
    outcomes = Counter(r.outcome.split(" ")[0] for r in eu_results if r.matches)
    assert outcomes["VALID"] >= 400
    for reason in (
        Reason.ERR_KEY_UNKNOWN,
        Reason.ERR_EXPIRED,
        Reason.ERR_NOT_YET_VALID,
        Reason.ERR_KEY_USAGE,
        Reason.ERR_BASE45,
        Reason.ERR_DECOMPRESS,
        Reason.ERR_FORMAT_UNKNOWN,
    ):
        assert outcomes[reason.value] > 0, f"no matching case is refused with {reason.value}"
    failing_steps = Counter(
        step
        for r in eu_results
        if r.matches and r.outcome != "VALID"
        for step in r.checked
        if step in STEPS
    )
    assert {"VERIFY", "EXPIRATIONCHECK", "KEYUSAGE", "DECODE"} <= set(failing_steps)


def _documents(name: str, documented: str) -> bool:
    """Whether a table row of docs/conformance.md starts with ``name``'s country and numbers
    (``| ES 401, 402, 403 | ...``)."""
    country, number = name.split("/")
    cells = [line.split(" | ")[0].replace(",", " ").split() for line in documented.splitlines()]
    return any(cell[:2] == ["|", country] and number in cell[2:] for cell in cells)


def _iss(code: object) -> object:
    """The CWT ``iss`` (claim 1) of an ``HC1:`` code, decoded here with cbor2 and zlib (not the
    gateway's decoders), or None if the code does not decode that far."""
    if not isinstance(code, str) or not code.startswith("HC1:"):
        return None
    try:
        message = cbor2.loads(zlib.decompress(base45.decode(code[4:])))
        while isinstance(message, cbor2.CBORTag):
            message = message.value
        claims = cbor2.loads(message[2])
    except (CodeRejected, zlib.error, ValueError, TypeError, IndexError, KeyError):
        return None
    return claims.get(1) if isinstance(claims, dict) else None


def test_the_cases_whose_iss_names_another_country_are_exactly_the_listed_ones(data: Path) -> None:
    """Every case whose iss is not the country the runner registers its signer under (its
    folder's; EU for common) is listed with a reason that quotes that iss, and no other case is;
    docs/conformance.md lists each one."""
    found = {}
    for country, name, case in eu_dcc_cases(data):
        region = country if len(country) == 2 and country.isupper() else "EU"
        iss = _iss(case.get("PREFIX"))
        if iss is not None and iss != region:
            found[name] = iss
    assert set(found) == set(KNOWN_ISSUER_MISMATCHES)
    documented = (REPO / "docs" / "conformance.md").read_text("utf-8")
    for name, iss in found.items():
        assert str(iss) in KNOWN_ISSUER_MISMATCHES[name]
        assert _documents(name, documented), f"docs/conformance.md does not list {name}"


def test_listed_issuer_mismatches_are_never_accepted_and_refused_for_it_unless_refused_earlier(
    eu_results: list[CaseResult],
) -> None:
    """The eu-dcc profile compares iss with the signer's country: a listed case is refused for
    it (ERR_ISSUER_MISMATCH) once every step the data names has passed, or earlier for the
    failure the data expects; none is ever VALID, and each still meets the data's expectations."""
    listed = {r.name: r for r in eu_results if r.issuer_mismatch is not None}
    assert set(listed) == set(KNOWN_ISSUER_MISMATCHES)
    assert all(r.outcome != "VALID" and r.matches for r in listed.values())
    refused = {n for n, r in listed.items() if r.refused_for_its_issuer}
    assert {"GE/1", "GE/2", "GE/3", "common/CO1", "common/CO28", "common/Q1"} <= refused
    for name, result in listed.items():
        if name not in refused:
            assert result.outcome.split(" ")[0] in {
                Reason.ERR_KEY_USAGE.value,
                Reason.ERR_SCHEMA.value,
                Reason.ERR_KEY_UNKNOWN.value,
                Reason.ERR_EXPIRED.value,
                Reason.ERR_NOT_YET_VALID.value,
                Reason.ERR_SIG_ENCODING.value,
            }, name


def test_a_case_filed_under_another_country_is_refused_and_reported_as_a_mismatch(
    data: Path,
) -> None:
    """A valid code whose signer is registered for a country its iss does not name: refused
    for its issuer, and the runner reports it, since no such case is expected outside the list."""
    _, _, case = a_valid_case(data)
    result = run_eu_dcc_case("ZZ", "ZZ/1", case)
    assert result.outcome == Reason.ERR_ISSUER_MISMATCH.value
    assert not result.accepted
    assert "not listed as another country's" in "; ".join(result.mismatches)


def a_valid_case(data: Path) -> tuple[str, str, dict[str, Any]]:
    for country, name, case in eu_dcc_cases(data):
        expected = case.get("EXPECTEDRESULTS") or {}
        if expected.get("EXPECTEDVERIFY") is not True:
            continue
        result = run_eu_dcc_case(country, name, case)
        if result.matches and result.outcome == "VALID":
            return country, name, case
    raise AssertionError("no valid EU DCC case found")


def test_a_tampered_code_is_reported_as_a_mismatch(data: Path) -> None:
    country, name, case = a_valid_case(data)
    code = str(case["PREFIX"])
    # Replace one base45 character in the middle: the decode or the signature must fail.
    middle = len(code) // 2
    replacement = "0" if code[middle] != "0" else "1"
    tampered = dict(case, PREFIX=code[:middle] + replacement + code[middle + 1 :])
    result = run_eu_dcc_case(country, name, tampered)
    assert result.outcome != "VALID"
    assert not result.matches
    assert not result.accepted


def test_a_case_checked_at_a_clock_after_expiry_is_refused(data: Path) -> None:
    country, name, case = a_valid_case(data)
    context = dict(case["TESTCTX"])
    context["VALIDATIONCLOCK"] = "2099-01-01T00:00:00Z"
    result = run_eu_dcc_case(country, name, dict(case, TESTCTX=context))
    assert result.outcome in {Reason.ERR_EXPIRED.value, Reason.ERR_KEY_NOT_VALID.value}


def test_a_case_signed_by_another_certificate_is_not_verified(data: Path) -> None:
    """Trust comes from the registered certificate, never from the code itself."""
    cases = [
        (c, n, case)
        for c, n, case in eu_dcc_cases(data)
        if (case.get("EXPECTEDRESULTS") or {}).get("EXPECTEDVERIFY") is True
    ]
    first, *rest = cases
    other = next(
        case
        for _, _, case in rest
        if case["TESTCTX"]["CERTIFICATE"] != first[2]["TESTCTX"]["CERTIFICATE"]
    )
    swapped = dict(
        first[2], TESTCTX=dict(first[2]["TESTCTX"], CERTIFICATE=other["TESTCTX"]["CERTIFICATE"])
    )
    result = run_eu_dcc_case(first[0], first[1], swapped)
    assert result.outcome.split(" ")[0] in {
        Reason.ERR_KEY_UNKNOWN.value,
        Reason.ERR_SIGNATURE.value,
    }


# ------------------------------------------------------------------ SMART Health Cards


def test_the_four_shc_examples_give_their_expected_outcomes(data: Path) -> None:
    results = {r.name: r for r in run_shc(data)}
    assert set(results) == set(SHC_EXPECTED)
    assert {n: r.outcome for n, r in results.items()} == dict(SHC_EXPECTED)
    assert all(r.matches for r in results.values())


def _verify_shc(
    data: Path,
    code: str,
    *,
    state: TrustState | None = None,
    now: datetime = SHC_CLOCK,
    limits: Limits = LIMITS,
) -> Verdict:
    trust = state if state is not None else shc_trust(data)
    return verify_code(code, trust=trust.snapshot(), now=now, limits=limits, identities=IDENTITIES)


def _qr(data: Path, example: str) -> str:
    path = data / "shc" / "examples" / f"{example}-f-qr-code-numeric-value-0.txt"
    return path.read_text().strip()


def test_shc_example_00_is_green_with_a_masked_name_and_its_issuer(data: Path) -> None:
    verdict = _verify_shc(data, _qr(data, "example-00"))
    assert verdict.status is Status.VALID
    assert verdict.colour is Colour.GREEN
    assert verdict.provenance.issuer == IssuerId("shc-example")
    bundle = (data / "shc" / "examples" / "example-00-a-fhirBundle.json").read_text("utf-8")
    family = json.loads(bundle)["entry"][0]["resource"]["name"][0]["family"]
    assert family not in repr(verdict)


def test_the_chunked_example_as_one_code_is_too_large_and_names_no_patient(data: Path) -> None:
    """Example 02's chunks are refused because chunking is deprecated. Its JWS (3,285
    characters) is more than one QR code holds, so as one numeric code it is too large. With
    that limit raised, it passes the signature check (the key is found) and is then refused
    because the card, a lab report, names no patient: it is never GREEN."""
    jws_text = (data / "shc" / "examples" / "example-02-d-jws.txt").read_text().strip()
    assert len(jws_text) > LIMITS.max_numeric_jws_chars
    whole = encode_numeric("shc:/", jws_text)
    assert _verify_shc(data, whole).reason is Reason.ERR_TOO_LARGE
    roomy = replace(LIMITS, max_numeric_jws_chars=len(jws_text))
    verdict = _verify_shc(data, whole, limits=roomy)
    assert verdict.reason is Reason.ERR_SCHEMA
    assert verdict.provenance.kid is not None
    assert "family name" in verdict.detail
    broken = jws_text[:-8] + ("A" * 8 if not jws_text.endswith("A" * 8) else "B" * 8)
    assert _verify_shc(data, encode_numeric("shc:/", broken), limits=roomy).reason in {
        Reason.ERR_SIGNATURE,
        Reason.ERR_SIG_ENCODING,
    }


def test_example_03_is_refused_because_of_the_revocation_list_alone(data: Path) -> None:
    """Without its issuer's revocation list, example 03 would verify; with a newer list that
    no longer names it, it verifies again."""
    code = _qr(data, "example-03")
    assert _verify_shc(data, code).reason is Reason.ERR_REVOKED
    state = shc_trust(data)
    issuer = IssuerId("shc-example")
    (kid,) = _crl_kids(data)
    current = state.revocations(issuer, kid)
    assert current is not None
    assert current.ids
    state.set_revocations(issuer, kid, Revocations(current.counter + 1, {}))
    assert _verify_shc(data, code, state=state).status is Status.VALID


def _crl_kids(data: Path) -> set[KeyId]:
    crl = data / "shc" / "examples" / "issuer" / ".well-known" / "crl"
    return {KeyId(p.stem) for p in crl.glob("*.json")}


@pytest.mark.parametrize(
    ("shift", "reason"),
    [
        pytest.param(timedelta(days=-30), Reason.ERR_NOT_YET_VALID, id="before-nbf"),
        pytest.param(timedelta(days=365 * 5), Reason.ERR_EXPIRED, id="after-exp"),
    ],
)
def test_shc_example_03_is_judged_by_its_times_first(
    data: Path, shift: timedelta, reason: Reason
) -> None:
    """Example 03 carries an expiry: before nbf and after exp it is refused for its times."""
    verdict = _verify_shc(data, _qr(data, "example-03"), now=SHC_CLOCK + shift)
    assert verdict.reason is reason


# ------------------------------------------------------------------ JOSE


def test_every_jose_vector_gives_its_expected_result(data: Path) -> None:
    results = run_jose(data)
    assert [f"{r.group}/{r.name}: {r.mismatches}" for r in results if not r.matches] == []
    assert len(results) >= 300


def test_jose_valid_vectors_verify_for_every_admitted_algorithm(data: Path) -> None:
    """A valid vector passes only as VALID, unless its algorithm is one huren never admits
    (HS256, RS384, ...): then it is refused, and the report names that algorithm."""
    vectors = json.loads((data / "wycheproof" / "json_web_signature_test.json").read_text("utf-8"))
    expected = {f"tc{t['tcId']}": t["result"] for g in vectors["testGroups"] for t in g["tests"]}
    results = run_jose(data)
    verified = [r for r in results if r.outcome == "VALID"]
    assert verified
    assert all(expected[r.name] == "valid" for r in verified)
    admitted = {a.value for a in crypto.ADMISSIBLE}
    verified_groups = {r.group for r in verified}
    assert {"es256", "ps256"} <= verified_groups
    for r in results:
        if expected[r.name] == "valid" and r.outcome != "VALID":
            assert "algorithm not admitted" in r.outcome
            named = r.outcome.rsplit(": ", 1)[1].rstrip(")")
            assert named not in admitted
