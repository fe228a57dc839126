"""The conformance harness: official test data through the gateway's own verify path.

Used by ``scripts/conformance.py`` (a report) and by the test suite (the same checks). Three
sources, read in place from a ``conformance`` folder (``../shared/conformance`` by default):

- **EU DCC** (``eu-dcc/``): each case's signer certificate is imported as the only trust anchor of
  an issuer with the ``eu-dcc`` profile, exactly as ``huren registry import-certificates`` does,
  and its ``HC1:`` text is verified with its ``VALIDATIONCLOCK`` as "now". The verdict's reason
  says which step failed; each ``EXPECTED...`` flag of the case is compared with it.
- **SMART Health Cards** (``shc/``): the four examples' QR texts against the example issuer (keys
  from its JWKS, its revocation list loaded), at a pinned clock.
- **JOSE** (``wycheproof/json_web_signature_test.json``): every compact JWS through the JWS
  parser and the signature module, with the group's public key.

Nothing here trusts the data beyond what a test needs; known upstream errors are listed in
:data:`KNOWN_UPSTREAM_ERRORS` with the evidence in docs/conformance.md, and the cases whose
``iss`` names another country than the one they are filed under (which the ``eu-dcc`` profile
refuses, ``ERR_ISSUER_MISMATCH``) in :data:`KNOWN_ISSUER_MISMATCHES`.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import crypto
from gateway.codecs import jws
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.model import IssuerId, Reason, RegionCode, Status, Verdict
from gateway.profiles import Profile, load_profile
from gateway.registry import Issuer, IssuerKey, TrustState
from gateway.registry.admission import certificate_key
from gateway.registry.keyfiles import read_keys, read_revocation_list
from gateway.registry.model import Region
from gateway.verify import verify_code

FORMATS = Path(__file__).parent / "profiles" / "formats"
LIMITS = Limits()
_ISSUER_MISMATCH = Reason.ERR_ISSUER_MISMATCH.value

# The steps of the EU DCC test data, in the order a verifier performs them, and the verdict
# reasons that mean a step failed (a reason not listed fails no step the data names).
STEPS = ("UNPREFIX", "B45DECODE", "COMPRESSION", "DECODE", "VERIFY", "EXPIRATIONCHECK", "KEYUSAGE")
_FAILED_STEP: Mapping[Reason, str] = {
    Reason.ERR_FORMAT_UNKNOWN: "UNPREFIX",
    Reason.ERR_BASE45: "B45DECODE",
    Reason.ERR_DECOMPRESS: "COMPRESSION",
    Reason.ERR_DECOMPRESSED_TOO_LARGE: "COMPRESSION",
    Reason.ERR_CBOR: "DECODE",
    Reason.ERR_CBOR_TAG: "DECODE",
    Reason.ERR_COSE_STRUCTURE: "DECODE",
    Reason.ERR_NONCANONICAL: "DECODE",
    Reason.ERR_TRAILING_DATA: "DECODE",
    Reason.ERR_DUPLICATE_KEY: "DECODE",
    Reason.ERR_TOO_DEEP: "DECODE",
    Reason.ERR_HEADER: "DECODE",
    Reason.ERR_SCHEMA: "DECODE",
    Reason.ERR_KEY_UNKNOWN: "VERIFY",
    Reason.ERR_SIGNATURE: "VERIFY",
    Reason.ERR_SIG_ENCODING: "VERIFY",
    Reason.ERR_ALG_NOT_ALLOWED: "VERIFY",
    Reason.ERR_KEY_USAGE: "KEYUSAGE",
    Reason.ERR_EXPIRED: "EXPIRATIONCHECK",
    Reason.ERR_NOT_YET_VALID: "EXPIRATIONCHECK",
    Reason.ERR_KEY_NOT_VALID: "EXPIRATIONCHECK",
}

_MISLABELLED = (
    "the signer certificate holds a P-384 key and the signature is 96 bytes (ES384), but the "
    "COSE header names ES256 (-7); listed upstream in tests/known_issues.csv (dgc-testdata #228)"
)
KNOWN_UPSTREAM_ERRORS: Mapping[str, str] = {
    "ES/401": _MISLABELLED,
    "ES/402": _MISLABELLED,
    "ES/403": _MISLABELLED,
}
"""Cases whose expectations are wrong upstream: case name -> the evidence (docs/conformance.md)."""

_COMMON = (
    "a common case, run under region EU (it belongs to no country), whose iss is AT; its "
    "certificate (CN=EC-Me or RSA-Me) names no country"
)
_GEORGIA = (
    "iss is the issuing ministry's name, 'Ministry of IDPs from the occupied territories, Labour, "
    "Health and SA of Georgia', not the country code GE"
)
_DEMO = (
    "signed with a demonstration certificate (C=US, CN=My Certificate, O=Demo) and iss US, "
    "filed under ES"
)
_SWEDEN = "signed with the Swedish eHealth Agency's certificate (C=SE) and iss SE, filed under "
KNOWN_ISSUER_MISMATCHES: Mapping[str, str] = {
    **{f"ES/{n}": _DEMO for n in (1001, 1002, 1003)},
    **{f"GE/{n}": _GEORGIA for n in (1, 2, 3)},
    "LI/4": _SWEDEN + "LI",
    **{
        f"common/{n}": _COMMON
        for n in (
            "CBO1",
            *(f"CO{i}" for i in (1, 2, 3, *range(5, 24))),
            *(f"DGC{i}" for i in range(1, 7)),
            "Q1",
        )
    },
    "common/CO28": _SWEDEN + "common (run under region EU)",
}
"""Cases whose ``iss`` (CWT claim 1) is not the country the runner registers their signer under
(their folder's; ``EU`` for ``common``): case name -> why (docs/conformance.md). The ``eu-dcc``
profile refuses them with ``ERR_ISSUER_MISMATCH``, a check the data has no step for, made after
every step it names; one that fails an earlier step is refused for that first. A listed case is
never accepted, and an unlisted one refused for its issuer is a mismatch."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    source: str
    """``eu-dcc``, ``shc`` or ``jose``."""
    group: str
    """The country (EU DCC), ``examples`` (SHC) or the test group (JOSE)."""
    name: str
    outcome: str
    """What the gateway did: ``VALID`` or the reason it refused."""
    mismatches: tuple[str, ...] = ()
    known_upstream_error: str | None = None
    checked: tuple[str, ...] = field(default=())
    """The expectations this case compared."""
    issuer_mismatch: str | None = None
    """Why its ``iss`` names another country, for a case in :data:`KNOWN_ISSUER_MISMATCHES`."""

    @property
    def matches(self) -> bool:
        return not self.mismatches

    @property
    def accepted(self) -> bool:
        """Matches, or mismatches only because the case's expectation is wrong upstream."""
        return self.matches or self.known_upstream_error is not None

    @property
    def refused_for_its_issuer(self) -> bool:
        """A listed issuer mismatch that reached the issuer check and was refused by it."""
        return self.issuer_mismatch is not None and self.outcome == _ISSUER_MISMATCH


# ------------------------------------------------------------------ EU DCC


def _profile(name: str) -> Profile:
    return load_profile((FORMATS / f"{name}.toml").read_text("utf-8"))


def _identities() -> IdentityKeys:
    return IdentityKeys(secrets.token_bytes(32), secrets.token_bytes(32))


def _clock(text: str) -> datetime:
    """VALIDATIONCLOCK: ISO 8601, with or without an offset (UTC then), with or without
    fractional seconds."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def eu_dcc_cases(root: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(country, case name, test case) for every EU DCC test file, in a stable order."""
    for path in sorted((root / "eu-dcc").rglob("*.json")):
        parts = path.relative_to(root / "eu-dcc").parts
        country, versions = parts[0], parts[1:-3]  # <CC>[/<version>]/2DCode/raw/<case>.json
        yield (
            country,
            "/".join([country, *versions, path.stem]),
            json.loads(path.read_text("utf-8")),
        )


def run_eu_dcc_case(country: str, name: str, case: Mapping[str, Any]) -> CaseResult:
    profile = _profile("eu-dcc")
    expected = case.get("EXPECTEDRESULTS") or {}
    checks = {
        s: expected[f"EXPECTED{s}"] for s in STEPS if isinstance(expected.get(f"EXPECTED{s}"), bool)
    }
    context = case.get("TESTCTX") or {}
    code = case.get("PREFIX")
    certificate = context.get("CERTIFICATE")
    clock_text = context.get("VALIDATIONCLOCK")
    if not isinstance(code, str) or not isinstance(certificate, str) or not clock_text:
        return CaseResult("eu-dcc", country, name, "not runnable (no code, certificate or clock)")
    region = RegionCode(country if len(country) == 2 and country.isupper() else "EU")
    issuer = Issuer(
        IssuerId(f"eu-dcc-{region.lower()}"),
        region,
        f"EU DCC {country}",
        profile.id,
        profile.version,
    )
    state = TrustState()
    state.add_profile(profile)
    state.add_region(Region(region, country))
    state.add_issuer(issuer)
    import_failure = None
    try:
        state.add_key(certificate_key(issuer.id, base64.b64decode(certificate)))
    except ConfigurationInvalid as e:
        import_failure = f"certificate not importable: {e.reason.value}"
    verdict = verify_code(
        code,
        trust=state.snapshot(),
        now=_clock(clock_text),
        limits=LIMITS,
        identities=_identities(),
    )
    steps = step_outcomes(verdict)
    outcome = "VALID" if verdict.status is Status.VALID else verdict.reason.value
    if import_failure and verdict.reason is Reason.ERR_KEY_UNKNOWN:
        outcome += f" ({import_failure})"
    failure_expected = any(steps[s] is False and checks.get(s) is False for s in STEPS)
    mismatches = []
    for step, want in checks.items():
        got = steps[step]
        if got is None and (failure_expected or not want):
            continue  # not reached: a fail-closed verifier stops at the first failure
        if got is not want:
            said = "not reached" if got is None else outcome
            mismatches.append(f"{step} expected {'pass' if want else 'fail'}, got {said}")
    listed = KNOWN_ISSUER_MISMATCHES.get(name)
    if outcome == _ISSUER_MISMATCH and listed is None:
        mismatches.append(f"refused {outcome}, but its iss is not listed as another country's")
    if listed is not None and outcome == "VALID":
        mismatches.append("accepted, but its iss is listed as another country's")
    return CaseResult(
        "eu-dcc",
        country,
        name,
        outcome,
        tuple(mismatches),
        KNOWN_UPSTREAM_ERRORS.get(name),
        tuple(checks),
        listed,
    )


def step_outcomes(verdict: Verdict) -> dict[str, bool | None]:
    """Which EU DCC test steps a verdict passed (True), failed (False) or did not reach (None).

    The pipeline checks the steps in :data:`STEPS` order and stops at the first failure. A
    payload that verified but does not hold the certificate structure the profile reads
    (``ERR_SCHEMA`` after a key was found) failed DECODE, though it passed the checks after it.
    A refusal after every step, for a check the data has no step for (``ERR_ISSUER_MISMATCH``,
    ``ERR_REVOKED``), passed them all: :func:`run_eu_dcc_case` judges the issuer check itself.
    """
    if verdict.status is Status.VALID:
        return dict.fromkeys(STEPS, True)
    verified = verdict.provenance.kid is not None
    if verdict.reason is Reason.ERR_SCHEMA and verified:
        return {s: s != "DECODE" for s in STEPS}
    failed = _FAILED_STEP.get(verdict.reason)
    if failed is None:
        if verdict.reason is Reason.ERR_CLAIMS:
            failed = "EXPIRATIONCHECK"  # the times could not be read, so not checked
        elif not verified:
            failed = "DECODE"  # refused before a key was found (a payload that is not a map)
        else:
            return dict.fromkeys(STEPS, True)  # refused after every step (revoked by id, say)
    at = STEPS.index(failed)
    return {s: (True if i < at else False if i == at else None) for i, s in enumerate(STEPS)}


def run_eu_dcc(root: Path) -> list[CaseResult]:
    return [run_eu_dcc_case(c, n, case) for c, n, case in eu_dcc_cases(root)]


# ------------------------------------------------------------------ SMART Health Cards

SHC_CLOCK = datetime(2023, 7, 1, tzinfo=UTC)
"""After every example's nbf (2023-06-22) and before example 03's exp (2024-06-21)."""
# What each example must give, and why (docs/conformance.md).
SHC_EXPECTED: Mapping[str, str] = {
    "example-00": "VALID",  # three completed immunizations: GREEN
    "example-01": "VALID",  # the same card, signed with the key that carries an x5c chain
    "example-02/1": Reason.ERR_CHUNKS.value,  # chunked QR: deprecated, refused
    "example-02/2": Reason.ERR_CHUNKS.value,
    "example-02/3": Reason.ERR_CHUNKS.value,
    "example-03": Reason.ERR_REVOKED.value,  # its rid is on the issuer's revocation list
}


def shc_trust(root: Path) -> TrustState:
    """The example issuer as an operator registers it: the profile, the issuer with its ``iss``
    URL as its name in codes, its JWKS (kids are thumbprints), and its revocation list."""
    profile = _profile("smart-health-card")
    issuer_dir = root / "shc" / "examples" / "issuer" / ".well-known"
    state = TrustState()
    state.add_profile(profile)
    issuer = Issuer(
        IssuerId("shc-example"),
        RegionCode("US"),
        "SMART Health Card example issuer",
        profile.id,
        profile.version,
        code_name="https://spec.smarthealth.cards/examples/issuer",
    )
    state.add_region(Region(issuer.region, "United States"))
    state.add_issuer(issuer)
    for entry in read_keys((issuer_dir / "jwks.json").read_bytes()):
        state.add_key(
            IssuerKey(
                issuer.id,
                entry.kid,
                entry.public_key,
                entry.not_before,
                entry.not_after,
                certificate_sha256=entry.certificate_sha256,
            )
        )
    for path in sorted((issuer_dir / "crl").glob("*.json")):
        kid, revocations = read_revocation_list(path.read_bytes())
        state.set_revocations(issuer.id, kid, revocations)
    return state


def shc_cases(root: Path) -> Iterator[tuple[str, str]]:
    """(case name, numeric QR text) for every example QR file."""
    for path in sorted((root / "shc" / "examples").glob("example-*-f-qr-code-numeric-value-*.txt")):
        example = path.name[: len("example-NN")]
        chunk = path.stem.rsplit("-", 1)[1]
        chunked = (root / "shc" / "examples" / f"{example}-f-qr-code-numeric-value-1.txt").exists()
        yield (f"{example}/{int(chunk) + 1}" if chunked else example), path.read_text().strip()


def run_shc(root: Path) -> list[CaseResult]:
    state = shc_trust(root).snapshot()
    results = []
    for name, code in shc_cases(root):
        verdict = verify_code(
            code, trust=state, now=SHC_CLOCK, limits=LIMITS, identities=_identities()
        )
        outcome = "VALID" if verdict.status is Status.VALID else verdict.reason.value
        expected = SHC_EXPECTED.get(name, "(no expectation)")
        mismatch = () if outcome == expected else (f"expected {expected}, got {outcome}",)
        results.append(CaseResult("shc", "examples", name, outcome, mismatch, checked=("OUTCOME",)))
    return results


# ------------------------------------------------------------------ JOSE (Wycheproof)

POLICY_REASONS = frozenset(
    {Reason.ERR_KEY_PRIVATE, Reason.ERR_KEY_WEAK, Reason.ERR_ALG_NOT_ALLOWED}
)
"""Refusals that come from what the gateway admits (algorithms, key types), not from a fault."""


def _jose_key(jwk: Mapping[str, Any]) -> tuple[IssuerKey | None, Reason | None]:
    """The group's key as the registry would admit it, or why it would not."""
    try:
        (entry,) = read_keys(json.dumps(dict(jwk)).encode(), kid="jose")
    except ConfigurationInvalid as e:
        return None, e.reason
    if entry.public_key.algorithm not in crypto.ADMISSIBLE:
        return None, Reason.ERR_KEY_WEAK
    return IssuerKey(IssuerId("jose"), entry.kid, entry.public_key), None


def jose_outcome(text: Any, key: IssuerKey | None, refused: Reason | None) -> str:
    """The JWS path on one vector: parse strictly, select the key by kid, the registered key's
    algorithm must be the header's, verify. ``VALID`` or the reason it was refused."""
    if not isinstance(text, str):
        return Reason.ERR_JWS_FORMAT.value  # JSON serialization: only compact JWS is read
    try:
        token = jws.parse(text, LIMITS)
    except CodeRejected as e:
        return str(e.reason.value)
    if key is None:
        assert refused is not None
        return refused.value
    if token.kid != key.kid:
        return Reason.ERR_KEY_UNKNOWN.value
    if token.algorithm is not key.public_key.algorithm:
        return Reason.ERR_ALG_NOT_ALLOWED.value
    try:
        ok = key.public_key.verify(token.signing_input, token.signature)
    except CodeRejected as e:
        return str(e.reason.value)
    return "VALID" if ok else Reason.ERR_SIGNATURE.value


def _not_admitted(jwk: Mapping[str, Any], text: Any) -> str | None:
    """The vector's algorithm, if the gateway admits no key for it (HS256, RS384, PS512, ...):
    such a vector can never verify here, whatever its other merits."""
    admitted = {a.value for a in crypto.ADMISSIBLE}
    names = [str(jwk.get("alg", ""))]
    if isinstance(text, str) and "." in text:
        try:
            header = json.loads(base64.urlsafe_b64decode(text.split(".")[0] + "=="))
            names.append(str(header.get("alg", "")) if isinstance(header, dict) else "")
        except ValueError:
            pass
    foreign = [n for n in names if n and n not in admitted]
    return foreign[0] if foreign else None


def run_jose(root: Path) -> list[CaseResult]:
    data = json.loads((root / "wycheproof" / "json_web_signature_test.json").read_text("utf-8"))
    results = []
    for group in data["testGroups"]:
        jwk = group.get("public") or group.get("private") or {}
        key, refused = _jose_key(jwk)
        for test in group["tests"]:
            outcome = jose_outcome(test["jws"], key, refused)
            want = test["result"]
            if want == "valid" and outcome != "VALID":
                foreign = _not_admitted(jwk, test["jws"])
                mismatch = () if foreign else (f"expected valid, got {outcome}",)
                outcome += f" (algorithm not admitted: {foreign})" if foreign else ""
            else:
                mismatch = (
                    ()
                    if (outcome == "VALID") == (want == "valid")
                    else (f"expected {want}, got {outcome}",)
                )
            results.append(
                CaseResult(
                    "jose",
                    str(group.get("comment", ""))[:32],
                    f"tc{test['tcId']}",
                    outcome,
                    mismatch,
                    checked=("RESULT",),
                )
            )
    return results
