#!/usr/bin/env python3
"""Where the time of one verification goes: each step of the pipeline in µs per code.

For six kinds of code (Hangzhou compact JWS ES256, Beijing COSE EdDSA, Shanghai delimited PS256,
Hubei JWS ES384, EU DCC ``HC1:`` ES256 and a SMART Health Card ``shc:/`` ES256) every step of
:mod:`gateway.verify` is replayed on its own with the same inputs, many times, and timed with
``time.perf_counter_ns`` (the best of several rounds, so that noise from other processes
inflates nothing): the screen, the route, opening the envelope (text form and envelope parse),
decoding the payload, the code reference, the candidate issuers, the key selection with the
signature check, the signature check alone, the raw signature check with a cached
``cryptography`` key (the floor), the times, the translation, the identity and the verdict.
``verify_code`` itself is timed too; what the steps do not account for is the glue between them.

The script reads the gateway's internals on purpose (it measures them); a test runs it with
``--quick`` so that it follows them.

Usage: python scripts/bench_steps.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402

from gateway import verify as v  # noqa: E402
from gateway.clock import system_clock  # noqa: E402
from gateway.conformance import SHC_CLOCK, shc_cases, shc_trust  # noqa: E402
from gateway.crypto import Algorithm, PrivateKey  # noqa: E402
from gateway.identity import IdentityKeys, IdentityScheme  # noqa: E402
from gateway.limits import Limits  # noqa: E402
from gateway.model import IssuerId, KeyId, RegionCode, Status  # noqa: E402
from gateway.profiles import EnvelopeFormat, decode_payload, load_profile, translate  # noqa: E402
from gateway.profiles.translate import read_times  # noqa: E402
from gateway.registry import Issuer, IssuerKey, TrustSnapshot, TrustState  # noqa: E402
from gateway.registry.admission import certificate_key  # noqa: E402
from gateway.registry.model import Region  # noqa: E402
from regions import beijing, hangzhou, hubei, shanghai  # noqa: E402
from regions.common.spec import Holder, Level, Secrets  # noqa: E402

CONFORMANCE = Path(os.environ.get("HUREN_CONFORMANCE", ROOT.parent / "shared" / "conformance"))
HOLDER = Holder("330106199003071228", "王芳")


@dataclass(frozen=True)
class Case:
    """One code and everything its verification needs."""

    name: str
    code: str
    trust: TrustSnapshot
    now: datetime
    identities: IdentityKeys


def _region_case(name: str, region: Any) -> Case:
    spec = region.spec
    key = PrivateKey.generate(spec.algorithm)
    kid = base64.b64encode(os.urandom(8)).decode() if spec.binary_kid else "bench-steps-1"
    link_key = os.urandom(32)
    identities = IdentityKeys(os.urandom(32), link_key)
    pseudonym_key = os.urandom(64) if spec.identity is IdentityScheme.PSEUDONYM else None
    profile = load_profile(spec.profile_text())
    state = TrustState()
    state.add_profile(profile)
    state.add_region(Region(spec.code, spec.display_name))
    state.add_issuer(
        Issuer(
            spec.issuer,
            spec.code,
            spec.display_name,
            profile.id,
            profile.version,
            pseudonym_key=pseudonym_key,
        )
    )
    secrets = Secrets(key, kid, link_key, pseudonym_key)
    now = system_clock()
    issued = region.issue(HOLDER, spec.states[Level.GREEN], now, secrets, "bench")
    state.add_key(IssuerKey(spec.issuer, KeyId(kid), key.public_key()))
    return Case(name, issued.code, state.snapshot(), now, identities)


def _dcc_case() -> Case:
    from bench import _dcc_codes, _dcc_issuer  # this folder is on the path of a script

    key, certificate = _dcc_issuer()
    profile = load_profile((ROOT / "gateway" / "profiles" / "formats" / "eu-dcc.toml").read_text())
    state = TrustState()
    state.add_profile(profile)
    issuer = Issuer(IssuerId("eu-dcc-xx"), RegionCode("XX"), "bench", profile.id, profile.version)
    state.add_region(Region(issuer.region, "XX"))
    state.add_issuer(issuer)
    state.add_key(certificate_key(issuer.id, certificate))
    identities = IdentityKeys(os.urandom(32), os.urandom(32))
    return Case(
        "EU DCC (HC1:, ES256)",
        _dcc_codes(key, certificate, 1)[0],
        state.snapshot(),
        system_clock(),
        identities,
    )


def _shc_case() -> Case:
    trust = shc_trust(CONFORMANCE).snapshot()
    code = next(c for n, c in shc_cases(CONFORMANCE) if n == "example-00")
    return Case(
        "SMART Health Card (shc:/, ES256)",
        code,
        trust,
        SHC_CLOCK,
        IdentityKeys(os.urandom(32), os.urandom(32)),
    )


def cases() -> list[Case]:
    return [
        _region_case("Hangzhou (JWS, ES256)", hangzhou.Hangzhou()),
        _region_case("Beijing (COSE, EdDSA)", beijing.Beijing()),
        _region_case("Shanghai (delimited, PS256)", shanghai.Shanghai()),
        _region_case("Hubei (JWS, ES384)", hubei.Hubei()),
        _dcc_case(),
        _shc_case(),
    ]


def _per_call_us(run: Callable[[], object], budget_s: float, rounds: int = 5) -> float:
    """The best of ``rounds`` mean times of ``run``, each round about ``budget_s`` long."""
    start = time.perf_counter_ns()
    run()
    once = max(time.perf_counter_ns() - start, 1)
    n = max(1, int(budget_s * 1e9 / once))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(n):
            run()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best / 1000


def _raw_verify(public: Any, message: bytes, signature: bytes) -> Callable[[], object]:
    """The floor: ``cryptography``'s verify of the same bytes with a cached key object and the
    signature already in the form the library takes (no checks, no conversions)."""
    key = serialization.load_der_public_key(public.spki_der)
    algorithm = public.algorithm
    if isinstance(key, ec.EllipticCurvePublicKey):
        half = len(signature) // 2
        der = encode_dss_signature(
            int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        )
        digest = hashes.SHA256() if algorithm is Algorithm.ES256 else hashes.SHA384()
        ecdsa = ec.ECDSA(digest)
        return lambda: key.verify(der, message, ecdsa)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return lambda: key.verify(signature, message)
    assert isinstance(key, rsa.RSAPublicKey)
    pad: padding.AsymmetricPadding = (
        padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        if algorithm is Algorithm.PS256
        else padding.PKCS1v15()
    )
    sha256 = hashes.SHA256()
    return lambda: key.verify(signature, message, pad, sha256)


def steps(case: Case, budget_s: float) -> dict[str, float]:
    """µs per code of each step of ``case``'s verification, and of the whole."""
    limits, trust, now, ids = Limits(), case.trust, case.now, case.identities
    verdict = v.verify_code(case.code, trust=trust, now=now, limits=limits, identities=ids)
    if verdict.status is not Status.VALID:
        raise SystemExit(f"{case.name}: {verdict.reason.value} {verdict.detail}")
    route = trust.route_for(case.code)
    assert route is not None
    opened = v.open_envelope(case.code, route.envelope, limits)
    candidates = v._candidate_issuers(route, opened)
    context = v._Context(trust, now, limits, ids)
    signer = v._authenticate(opened, candidates, context, v._Facts(trust.version, None))
    issuer = trust.issuers[signer.issuer]
    profile = trust.profile_of(issuer)
    times = read_times(profile, opened.claims)
    translated = translate(profile, opened.claims, issuer.name_in_codes, now, times)
    public = signer.public_key
    floor = _raw_verify(public, opened.signed, opened.signature)
    payload_format = route.envelope.payload
    if route.envelope.format is EnvelopeFormat.DELIMITED:
        decode = None
    else:
        date_tags = route.envelope.date_tags

        def decode() -> object:
            return decode_payload(opened.payload, payload_format, limits, date_tags=date_tags)

    def identity() -> object:
        resolved = v._resolve(translated.identity, issuer, ids)
        return ids.subject(resolved)

    measured: dict[str, Callable[[], object] | None] = {
        "1 screen": lambda: v.screen(case.code, limits),
        "2 route": lambda: trust.route_for(case.code),
        "3-4 open envelope and decode payload": lambda: v.open_envelope(
            case.code, route.envelope, limits
        ),
        "4 payload decode alone": decode,
        "code reference": lambda: ids.code_ref(opened.payload),
        "4 candidate issuers": lambda: v._candidate_issuers(route, opened),
        "5-7 keys and signature": lambda: v._authenticate(
            opened, candidates, context, v._Facts(trust.version, None)
        ),
        "6 signature alone (gateway)": lambda: public.verify(opened.signed, opened.signature),
        "6 raw verify, cached key (floor)": floor,
        "8 times": lambda: read_times(profile, opened.claims),
        "9 translate": lambda: translate(profile, opened.claims, issuer.name_in_codes, now, times),
        "10 identity and subject": identity,
        "verify_code (all)": lambda: v.verify_code(
            case.code, trust=trust, now=now, limits=limits, identities=ids
        ),
    }
    out = {name: _per_call_us(run, budget_s) for name, run in measured.items() if run is not None}
    parts = (
        "1 screen",
        "2 route",
        "3-4 open envelope and decode payload",
        "code reference",
        "4 candidate issuers",
        "5-7 keys and signature",
        "8 times",
        "9 translate",
        "10 identity and subject",
    )
    out["glue (all minus the steps)"] = out["verify_code (all)"] - sum(out[p] for p in parts)
    out["non-signature work"] = out["verify_code (all)"] - out["6 signature alone (gateway)"]
    return out


def table(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    rows = list(next(iter(results.values())))
    head = "| step (µs per code) | " + " | ".join(names) + " |"
    rule = "| --- |" + " ---: |" * len(names)
    lines = [head, rule]
    for row in rows:
        cells = [f"{results[n][row]:.1f}" if row in results[n] else "–" for n in names]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    budget = 0.002 if args.quick else 0.2
    results = {case.name: steps(case, budget) for case in cases()}
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
