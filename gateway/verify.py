"""The verify pipeline: one code in, one verdict out. Pure: no I/O, no clock, no globals.

Steps (comments in the code cite them):

1. Screen the text: not empty, within the size limit, printable ASCII only (no trimming, no
   normalisation).
2. Route by the code's start (prefix, or the compact-JWS shape) to an envelope and the issuers
   registered for it; unknown starts are ``ERR_FORMAT_UNKNOWN``.
3. Open the envelope within limits: strict text decoding, decompression cap, strict JWS/COSE.
4. Decode the payload strictly and read the issuer it names. The name is only a hint that
   selects the candidate issuer; without one (EU DCC style) every issuer of the route is a
   candidate, each with its own keys only.
5. Select keys by the code's key id (also a hint) among the candidates' registered keys.
6. Verify the signature over the exact bytes received, with the algorithm of the registered key;
   a header naming another algorithm is ``ERR_ALG_NOT_ALLOWED``. The first candidate key that
   verifies is the signer; no other issuer's key is ever tried for a named issuer.
7. Refuse revoked keys.
8. Translate the verified payload with the signer's profile (issuer must match, types checked,
   unlisted local states refused).
9. Check times against the injected ``now``: not issued in the future beyond the leeway, not
   expired, issued inside the key's validity window.
10. Derive the masked identity and the subject reference; return VALID.

Any :class:`CodeRejected` becomes a verdict with its reason; any other exception becomes
``ERR_INTERNAL``, logged without the code. Success is returned only from step 10.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.codecs import cose, jws, textform
from gateway.crypto import Algorithm
from gateway.errors import CodeRejected
from gateway.identity import SubjectKeys, mask
from gateway.limits import Limits
from gateway.model import (
    CanonicalCode,
    IssuerId,
    KeyId,
    Provenance,
    Reason,
    RegionCode,
    Verdict,
)
from gateway.profiles import EnvelopeFormat, EnvelopeSpec, Profile, decode_payload, translate
from gateway.profiles.model import MISSING
from gateway.registry import Issuer, IssuerKey, KeyStatus, Route, TrustSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Opened:
    """An opened envelope: what was signed, the signature, and the unauthenticated hints."""

    algorithm: Algorithm
    kid: KeyId | None
    signed: bytes
    signature: bytes
    payload: bytes


def open_envelope(code: str, spec: EnvelopeSpec, limits: Limits) -> Opened:
    """Step 3: decode the envelope of ``code`` as ``spec`` says, without verifying anything."""
    if spec.format is EnvelopeFormat.JWS:
        token = jws.parse(code, limits)
        kid = KeyId(token.kid) if token.kid is not None else None
        return Opened(token.algorithm, kid, token.signing_input, token.signature, token.payload)
    message = cose.parse(textform.decode(code, spec.prefix, limits), limits)
    # COSE key ids are bytes; the registry writes them as standard base64 (the EU DCC convention).
    cose_kid = KeyId(base64.b64encode(message.kid).decode("ascii")) if message.kid else None
    return Opened(
        message.algorithm, cose_kid, message.to_be_signed(), message.signature, message.payload
    )


def screen(code: str, limits: Limits) -> None:
    """Step 1: bound and screen the raw text.

    Raises:
        CodeRejected: ``ERR_EMPTY``, ``ERR_TOO_LARGE`` or ``ERR_ENCODING``.
    """
    if not code.strip(" \t\r\n\x00"):
        raise CodeRejected(Reason.ERR_EMPTY, "no code was presented")
    if len(code) > limits.max_code_chars:
        raise CodeRejected(
            Reason.ERR_TOO_LARGE, f"code longer than {limits.max_code_chars} characters"
        )
    if not code.isascii() or not code.isprintable():
        raise CodeRejected(Reason.ERR_ENCODING, "code contains characters outside printable ASCII")


class _Facts:
    """What the pipeline has established so far, for the provenance of any verdict."""

    __slots__ = ("code_ref", "destination", "issuer", "kid", "profile", "trust_version")

    def __init__(self, trust_version: int, destination: RegionCode | None) -> None:
        self.trust_version = trust_version
        self.destination = destination
        self.code_ref: str | None = None
        self.issuer: Issuer | None = None
        self.kid: KeyId | None = None
        self.profile: Profile | None = None

    @property
    def provenance(self) -> Provenance:
        issuer, profile = self.issuer, self.profile
        return Provenance(
            region=issuer.region if issuer else None,
            issuer=issuer.id if issuer else None,
            kid=self.kid,
            profile_id=profile.id if profile else None,
            profile_version=profile.version if profile else None,
            trust_version=self.trust_version,
            code_ref=self.code_ref,
            destination=self.destination,
        )


def verify_code(
    code: str,
    *,
    trust: TrustSnapshot,
    now: datetime,
    limits: Limits,
    subjects: SubjectKeys,
    destination: RegionCode | None = None,
) -> Verdict:
    """Verify one code against one trust snapshot at the instant ``now``. Never raises."""
    facts = _Facts(trust.version, destination)
    try:
        return _verify(code, trust, now, limits, subjects, facts)
    except CodeRejected as rejection:
        return Verdict.failed(rejection.reason, rejection.detail, facts.provenance, now)
    except Exception as error:  # fail closed: nothing unexpected is ever accepted
        frames = traceback.extract_tb(error.__traceback__)
        where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames)
        # Only the exception type and the frames: messages may quote the code's bytes.
        log.error(
            "internal error %s while verifying code_ref=%s at %s",
            type(error).__name__,
            facts.provenance.code_ref,
            where,
        )
        return Verdict.failed(
            Reason.ERR_INTERNAL,
            "internal error; the code was not accepted",
            facts.provenance,
            now,
        )


def _verify(
    code: str,
    trust: TrustSnapshot,
    now: datetime,
    limits: Limits,
    subjects: SubjectKeys,
    facts: _Facts,
) -> Verdict:
    # Step 1: screen.
    screen(code, limits)
    # Step 2: route by prefix.
    route = trust.route_for(code)
    if route is None:
        raise CodeRejected(Reason.ERR_FORMAT_UNKNOWN, "the code's format is not registered here")
    # Step 3: open the envelope.
    opened = open_envelope(code, route.envelope, limits)
    facts.code_ref = subjects.code_ref(opened.payload)
    # Step 4: decode the payload and find the candidate issuers.
    claims = decode_payload(opened.payload, route.envelope.payload, limits)
    candidates = _candidate_issuers(route, claims)
    if len(candidates) == 1:
        facts.issuer = candidates[0]
    # Step 5: the candidates' keys with the code's key id.
    if opened.kid is None:
        raise CodeRejected(Reason.ERR_HEADER, "the code names no key id")
    keys = [k for i in candidates if (k := trust.keys.get((i.id, opened.kid))) is not None]
    if not keys:
        raise CodeRejected(Reason.ERR_KEY_UNKNOWN, "no registered key has the code's key id")
    # Step 6: verify with the registered key's algorithm; the header must agree with it.
    signer = _verify_signature(opened, keys)
    issuer = trust.issuers[signer.issuer]
    profile = trust.profile_of(issuer)
    facts.issuer, facts.kid, facts.profile = issuer, signer.kid, profile
    # Step 7: revoked keys sign nothing.
    if signer.status is KeyStatus.REVOKED:
        raise CodeRejected(Reason.ERR_KEY_REVOKED, f"key {signer.kid} of {issuer.id} is revoked")
    # Step 8: translate with the signer's profile.
    translated = translate(profile, claims, issuer.id)
    # Step 9: time checks with the injected clock.
    if translated.issued_at > now + limits.leeway:
        raise CodeRejected(Reason.ERR_NOT_YET_VALID, "code is issued in the future")
    if translated.expires_at <= now:
        raise CodeRejected(
            Reason.ERR_EXPIRED, f"code expired at {translated.expires_at.isoformat()}"
        )
    if not signer.covers(translated.issued_at):
        raise CodeRejected(
            Reason.ERR_KEY_NOT_VALID, f"key {signer.kid} was not valid when the code was issued"
        )
    # Step 10: identity, then the only success exit.
    canonical = CanonicalCode(
        colour=translated.colour,
        region=issuer.region,
        issuer=issuer.id,
        issued_at=translated.issued_at,
        expires_at=translated.expires_at,
        local_state=translated.local_state,
        masked_identity=mask(translated.identity),
        subject=subjects.subject(translated.identity),
    )
    return Verdict.valid(canonical, facts.provenance, now)


def _candidate_issuers(route: Route, claims: Mapping[Any, Any]) -> list[Issuer]:
    """Step 4: the named issuer only, or every issuer of the route when its format names none."""
    if route.issuer_path is None:
        # Formats whose payloads carry no issuer name (EU DCC style): each issuer's own keys.
        return sorted(route.issuers.values(), key=lambda i: i.id)
    named = route.issuer_path.get(claims)
    if named is MISSING:
        raise CodeRejected(Reason.ERR_SCHEMA, "the code does not name its issuer")
    if not isinstance(named, str):
        raise CodeRejected(Reason.ERR_SCHEMA, "the code's issuer field is not text")
    issuer = route.issuers.get(IssuerId(named))  # exact: no case folding, no normalisation
    if issuer is None:
        raise CodeRejected(Reason.ERR_ISSUER_UNKNOWN, "the code's issuer is not registered here")
    return [issuer]


def _verify_signature(opened: Opened, keys: list[IssuerKey]) -> IssuerKey:
    """Step 6. With one candidate key its algorithm must match the header; with several (a key
    id shared across issuers) the one that verifies is the signer."""
    matching = [k for k in keys if k.public_key.algorithm is opened.algorithm]
    if not matching:
        raise CodeRejected(
            Reason.ERR_ALG_NOT_ALLOWED,
            f"header names {opened.algorithm.value}; the registered key is "
            f"{keys[0].public_key.algorithm.value}",
        )
    for key in matching:
        if key.public_key.verify(opened.signed, opened.signature):
            return key
    raise CodeRejected(Reason.ERR_SIGNATURE, "signature does not verify with the registered key")
