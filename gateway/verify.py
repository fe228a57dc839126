"""The verify pipeline: one code in, one verdict out. Pure: no I/O, no clock, no globals.

Steps (comments in the code cite them):

1. Screen the text: not empty, within the size limit, printable ASCII only (no trimming, no
   normalisation).
2. Route by the code's start (prefix, the compact-JWS shape, or an online issuer's URL) to an
   envelope and the issuers registered for it; unknown starts are ``ERR_FORMAT_UNKNOWN``.
3. Open the envelope within limits: strict text decoding, decompression cap, strict JWS, COSE or
   delimited fields. An online code instead yields a question for its issuer (:class:`Question`);
   the edge asks it and :func:`finish_online` continues from the signed answer.
4. Decode the payload strictly and find the issuers it names. A name is only a hint that selects
   candidates: without one (EU DCC style) every issuer of the route is a candidate, each with its
   own keys only.
5. Select keys by the code's key id (also a hint) among the candidates' registered keys.
6. Verify the signature over the exact bytes received, with the algorithm of the registered key;
   a header naming another algorithm is ``ERR_ALG_NOT_ALLOWED``. The first candidate key that
   verifies is the signer; a named issuer is never checked with another issuer's key.
7. Refuse revoked keys.
8. Read the code's times with the signer's profile and check them against the injected ``now``:
   not issued in the future beyond the leeway, not expired, issued inside the key's validity
   window; then refuse a key restricted to other kinds of certificate (EU DCC key usage) and a
   code its issuer revoked by id (SMART Health Cards revocation lists).
9. Translate the verified payload with the signer's profile (issuer must match, types checked,
   unlisted local states refused, colour rules applied, age-based degradation applied); then the
   issuer region the payload names, if the profile reads one (EU DCC ``iss``), must be the
   signer's registered region.
10. Resolve the identity (decrypting a pseudonym with the issuer's key if need be), mask it,
    derive the subject reference; return VALID.

Any :class:`CodeRejected` becomes a verdict with its reason; any other exception becomes
``ERR_INTERNAL``, logged without the code. Success is returned only from step 10.

A caller may pass a :class:`~gateway.trace.Trace` (the dry run, ``huren profile test``): each
step then records what it read and established, and the step that refused the code is marked.
Without one, nothing is recorded or formatted.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway import crypto
from gateway import trace as facts_of
from gateway.codecs import compression, cose, delimited, jws, textform
from gateway.crypto import Algorithm
from gateway.errors import CodeRejected
from gateway.identity import Identity, IdentityKeys, is_cn_resident_id
from gateway.limits import Limits
from gateway.model import (
    CanonicalCode,
    KeyId,
    Provenance,
    Reason,
    RegionCode,
    Verdict,
    format_span,
)
from gateway.online import OnlineAnswer, answer_error, token_of, unavailable
from gateway.profiles import EnvelopeFormat, EnvelopeSpec, Profile, decode_payload, translate
from gateway.profiles.model import MISSING, PayloadFormat, TextForm
from gateway.profiles.translate import (
    FullNumber,
    IdentityCarrier,
    MaskedLink,
    NameDob,
    Translated,
    check_issuer_region,
    kinds_of,
    read_times,
    revocation_id,
)
from gateway.registry import Issuer, IssuerKey, KeyStatus, Route, TrustSnapshot
from gateway.trace import Step, Trace

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Opened:
    """An opened envelope: what was signed, the signature, and the unauthenticated hints.

    ``algorithm`` is what the code's header names, or None for envelopes without one (the
    registered key's algorithm is then the only one). ``claims`` is the decoded payload.
    """

    algorithm: Algorithm | None
    kid: KeyId | None
    signed: bytes
    signature: bytes
    payload: bytes
    claims: Mapping[Any, Any]


def open_envelope(code: str, spec: EnvelopeSpec, limits: Limits) -> Opened:
    """Step 3: decode the envelope of ``code`` as ``spec`` says, without verifying anything."""
    if spec.format is EnvelopeFormat.DELIMITED:
        text = delimited.parse(code, spec.prefix, spec.delimiter, spec.fields)
        field_kid = KeyId(text.fields[spec.kid_field])
        return Opened(None, field_kid, text.signed, text.signature, text.signed, text.fields)
    if spec.format is EnvelopeFormat.COSE:
        message = cose.parse(textform.decode(code, spec.prefix, limits), limits)
        # COSE key ids are bytes; the registry writes them as standard base64 (EU DCC convention).
        cose_kid = KeyId(base64.b64encode(message.kid).decode("ascii")) if message.kid else None
        claims = decode_payload(message.payload, spec.payload, limits, date_tags=spec.date_tags)
        return Opened(
            message.algorithm,
            cose_kid,
            message.to_be_signed(),
            message.signature,
            message.payload,
            claims,
        )
    # Compact JWS: the code itself (or its numeric QR form), or an online issuer's signed answer.
    compact = (
        textform.decode_numeric(code, spec.prefix, limits.max_numeric_jws_chars)
        if spec.text is TextForm.NUMERIC
        else code
    )
    token = jws.parse(compact, limits)
    kid = KeyId(token.kid) if token.kid is not None else None
    payload_format = PayloadFormat.JSON if spec.format is EnvelopeFormat.ONLINE else spec.payload
    payload = _uncompressed(token.header.get("zip"), token.payload, spec, limits)
    claims = decode_payload(payload, payload_format, limits)
    return Opened(token.algorithm, kid, token.signing_input, token.signature, payload, claims)


def _uncompressed(zip_header: object, payload: bytes, spec: EnvelopeSpec, limits: Limits) -> bytes:
    """The JWS payload, inflated (raw DEFLATE, capped) exactly when the profile says so."""
    if zip_header is None and not spec.compression:
        return payload
    if zip_header != spec.compression:
        raise CodeRejected(
            Reason.ERR_HEADER,
            f"JWS zip must be {spec.compression!r}" if spec.compression else "JWS zip not allowed",
        )
    return compression.inflate(
        payload, wbits=compression.RAW, max_bytes=limits.max_decompressed_bytes
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


@dataclass(frozen=True, slots=True)
class Question:
    """Step 3 for an online code: ask ``issuer`` about ``token`` (the edge does the asking)."""

    issuer: Issuer
    token: str
    _facts: _Facts

    @property
    def provenance(self) -> Provenance:
        return self._facts.provenance


@dataclass(frozen=True, slots=True)
class _Context:
    trust: TrustSnapshot
    now: datetime
    limits: Limits
    identities: IdentityKeys
    trace: Trace | None = None

    # Both are called only under ``if context.trace is not None``: the gateway's own
    # verifications neither call them nor format anything (a call costs more than the test).
    def enter(self, step: Step) -> None:
        assert self.trace is not None
        self.trace.enter(step)

    def note(self, described: str | list[str]) -> None:
        """Record what the current step read or established."""
        assert self.trace is not None
        for fact in [described] if isinstance(described, str) else described:
            self.trace.note(fact)


def begin(
    code: str,
    *,
    trust: TrustSnapshot,
    now: datetime,
    limits: Limits,
    identities: IdentityKeys,
    destination: RegionCode | None = None,
    trace: Trace | None = None,
) -> Verdict | Question:
    """Verify ``code``, or return the :class:`Question` an online code needs. Never raises."""
    facts = _Facts(trust.version, destination)
    context = _Context(trust, now, limits, identities, trace)
    return _guarded(facts, context, lambda: _verify(code, context, facts))


def finish_online(
    question: Question,
    answer: OnlineAnswer,
    *,
    trust: TrustSnapshot,
    now: datetime,
    limits: Limits,
    identities: IdentityKeys,
) -> Verdict:
    """Continue from step 4 with the issuer's answer to ``question``. Never raises."""
    facts = question._facts
    context = _Context(trust, now, limits, identities)
    result = _guarded(facts, context, lambda: _verify_answer(question, answer, context, facts))
    assert isinstance(result, Verdict)
    return result


def verify_code(
    code: str,
    *,
    trust: TrustSnapshot,
    now: datetime,
    limits: Limits,
    identities: IdentityKeys,
    destination: RegionCode | None = None,
    trace: Trace | None = None,
) -> Verdict:
    """Verify one offline code. An online code cannot be completed without asking its issuer, so
    here it is UNVERIFIABLE; servers use :func:`begin` and :func:`finish_online`. With a
    ``trace``, every step records what it did."""
    result = begin(
        code,
        trust=trust,
        now=now,
        limits=limits,
        identities=identities,
        destination=destination,
        trace=trace,
    )
    return offline(result, now)


def offline(result: Verdict | Question, now: datetime) -> Verdict:
    """The verdict of :func:`begin` where no issuer can be asked: an online code's question is
    UNVERIFIABLE."""
    if isinstance(result, Question):
        return Verdict.failed(
            Reason.ERR_ISSUER_UNAVAILABLE,
            "this code must be checked online with its issuer",
            result.provenance,
            now,
        )
    return result


def _guarded(
    facts: _Facts, context: _Context, run: Callable[[], Verdict | Question]
) -> Verdict | Question:
    now = context.now
    try:
        return run()
    except CodeRejected as rejection:
        if context.trace is not None:
            context.trace.fail(rejection.reason, rejection.detail)
        return Verdict.failed(rejection.reason, rejection.detail, facts.provenance, now)
    except Exception as error:  # fail closed: nothing unexpected is ever accepted
        frames = traceback.extract_tb(error.__traceback__)
        where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames)
        # Only the exception type and the frames: messages may quote the code's bytes.
        log.error(
            "internal error %s while verifying code_ref=%s at %s",
            type(error).__name__,
            facts.code_ref,
            where,
        )
        detail = "internal error; the code was not accepted"
        if context.trace is not None:
            context.trace.fail(Reason.ERR_INTERNAL, detail)
        return Verdict.failed(Reason.ERR_INTERNAL, detail, facts.provenance, now)


def _verify(code: str, context: _Context, facts: _Facts) -> Verdict | Question:
    # Step 1: screen.
    if context.trace is not None:
        context.enter(Step.SCREEN)
    screen(code, context.limits)
    if context.trace is not None:
        context.note(facts_of.screened(code))
    # Step 2: route by prefix.
    if context.trace is not None:
        context.enter(Step.ROUTE)
    route = context.trust.route_for(code)
    if route is None:
        raise CodeRejected(Reason.ERR_FORMAT_UNKNOWN, "the code's format is not registered here")
    if context.trace is not None:
        context.note(facts_of.routed(route))
    if route.envelope.format is EnvelopeFormat.ONLINE:
        # Step 3 (online): the token goes to its issuer; the answer continues at step 4.
        issuer = route.issuers[0][0]
        assert issuer.online is not None
        facts.issuer = issuer
        facts.profile = context.trust.profile_of(issuer)
        _check_not_retired(issuer, context.trust)  # a retired issuer is not even asked
        if issuer.online.unusable:  # a replica whose signed list and secrets disagree
            raise CodeRejected(Reason.ERR_SECRET_UNAVAILABLE, issuer.online.unusable)
        if not issuer.online.client_secret:  # a replica's trust list carries no credentials
            raise CodeRejected(
                Reason.ERR_SECRET_UNAVAILABLE,
                f"this gateway holds no credentials to ask issuer {issuer.id} (a replica: ask "
                "the hub)",
            )
        token = token_of(code, issuer.online.code_prefix)
        # Its reference digests its own text (docs/api.md): every answer carries a new nonce.
        facts.code_ref = context.identities.online_code_ref(code)
        return Question(issuer, token, facts)
    # Step 3: open the envelope.
    if context.trace is not None:
        context.enter(Step.ENVELOPE)
    opened = open_envelope(code, route.envelope, context.limits)
    facts.code_ref = context.identities.code_ref(opened.payload)
    if context.trace is not None:
        context.note(_opened_facts(route.envelope, opened))
    # Step 4: the candidate issuers.
    if context.trace is not None:
        context.enter(Step.ISSUER)
    candidates = _candidate_issuers(route, opened)
    if context.trace is not None:
        context.note(facts_of.candidates(route, opened.claims, candidates))
    return _conclude(opened, candidates, context, facts)


def _opened_facts(spec: EnvelopeSpec, opened: Opened) -> str:
    return facts_of.opened(
        spec, opened.algorithm, opened.kid, len(opened.signed), len(opened.payload), opened.claims
    )


def _verify_answer(
    question: Question, answer: OnlineAnswer, context: _Context, facts: _Facts
) -> Verdict:
    if answer.text is None:
        raise unavailable(f"issuer {question.issuer.id} did not answer: {answer.failure}")
    profile = context.trust.profile_of(question.issuer)
    try:
        opened = open_envelope(answer.text, profile.envelope, context.limits)
    except CodeRejected as e:
        raise unavailable(f"issuer {question.issuer.id} answered garbage ({e.reason.value})") from e
    try:
        signer = _authenticate(opened, [question.issuer], context, facts)
    except CodeRejected as e:
        # An answer that does not authenticate says nothing about the code: ask again later.
        raise unavailable(
            f"issuer {question.issuer.id}'s answer did not authenticate ({e.reason.value})"
        ) from e
    # The answer must be about this token and for this request: no replayed answers.
    claims = opened.claims
    if claims.get("token") != question.token or claims.get("nonce") != answer.nonce:
        raise unavailable(f"issuer {question.issuer.id} answered another question")
    # An answer carrying an error vouches for nothing, whatever else it says (fail closed).
    refusal = answer_error(claims, question.issuer.id)
    if refusal is not None:
        raise refusal
    return _accept(opened, signer, context, facts)


def _conclude(
    opened: Opened, candidates: Sequence[Issuer], context: _Context, facts: _Facts
) -> Verdict:
    return _accept(opened, _authenticate(opened, candidates, context, facts), context, facts)


def _authenticate(
    opened: Opened, candidates: Sequence[Issuer], context: _Context, facts: _Facts
) -> IssuerKey:
    """Steps 5 to 7: the registered, unrevoked key that signed the code."""
    trust = context.trust
    if len(candidates) == 1:
        facts.issuer = candidates[0]
    # Step 5: the candidates' keys with the code's key id.
    if context.trace is not None:
        context.enter(Step.KEY)
    kid = opened.kid
    if kid is None:
        raise CodeRejected(Reason.ERR_HEADER, "the code names no key id")
    keys = [k for i in candidates if (k := trust.keys.get((i.id, kid))) is not None]
    if not keys:
        raise CodeRejected(Reason.ERR_KEY_UNKNOWN, "no registered key has the code's key id")
    if context.trace is not None:
        context.note(facts_of.keys_selected(kid, keys))
        context.enter(Step.SIGNATURE)
    # Step 6: verify with the registered key's algorithm; a header must agree with it, and the
    # issuer's profile must allow it (the registry refuses such keys; this holds regardless).
    allowed = [
        k
        for k in keys
        if trust.profile_of(trust.issuers[k.issuer]).envelope.admits(k.public_key.algorithm)
    ]
    if not allowed:
        raise CodeRejected(
            Reason.ERR_ALG_NOT_ALLOWED,
            f"the issuer's profile does not allow {keys[0].public_key.algorithm.value} keys",
        )
    signer = _verify_signature(opened, allowed)
    issuer = trust.issuers[signer.issuer]
    facts.issuer, facts.kid, facts.profile = issuer, signer.kid, trust.profile_of(issuer)
    if context.trace is not None:
        context.note(facts_of.signature(signer, opened.algorithm, len(opened.signed)))
    # Step 7: revoked keys sign nothing, nor does any key of a retired issuer.
    if context.trace is not None:
        context.enter(Step.KEY_STATUS)
    if signer.status is KeyStatus.REVOKED:
        raise CodeRejected(Reason.ERR_KEY_REVOKED, f"key {signer.kid} of {issuer.id} is revoked")
    _check_not_retired(issuer, trust)
    if context.trace is not None:
        context.note(facts_of.key_status(signer, issuer))
    return signer


def _check_not_retired(issuer: Issuer, trust: TrustSnapshot) -> None:
    retired = trust.retired.get(issuer.id)
    if retired is not None:
        raise CodeRejected(
            Reason.ERR_ISSUER_RETIRED,
            f"issuer {issuer.id} was retired by the hub administrator at {retired.at.isoformat()}",
        )


def _accept(opened: Opened, signer: IssuerKey, context: _Context, facts: _Facts) -> Verdict:
    """Steps 8 to 10, after the signature verified."""
    issuer = context.trust.issuers[signer.issuer]
    profile = context.trust.profile_of(issuer)
    # Step 8: times, checked with the injected clock; then the issuer's revocation list.
    if context.trace is not None:
        context.enter(Step.TIMES)
    now, limits = context.now, context.limits
    if context.trace is not None:
        context.note(facts_of.times_read(profile, opened.claims))
    times = read_times(profile, opened.claims)
    if context.trace is not None:
        context.note(facts_of.times_parsed(times.issued_at, times.expires_at, times.not_before))
    if times.issued_at > now + limits.leeway:
        raise CodeRejected(Reason.ERR_NOT_YET_VALID, "code is issued in the future")
    if times.not_before is not None and times.not_before > now + limits.leeway:
        raise CodeRejected(
            Reason.ERR_NOT_YET_VALID, f"code is not valid before {times.not_before.isoformat()}"
        )
    expired = (
        times.expires_at < now if profile.validity.inclusive_expiry else times.expires_at <= now
    )
    if expired:
        raise CodeRejected(Reason.ERR_EXPIRED, f"code expired at {times.expires_at.isoformat()}")
    if not signer.covers(times.issued_at):
        raise CodeRejected(
            Reason.ERR_KEY_NOT_VALID, f"key {signer.kid} was not valid when the code was issued"
        )
    # ... the kinds of certificate the key may sign (EU DCC key usage) ...
    if signer.usage is not None:
        kinds = kinds_of(profile, opened.claims)
        if not kinds <= signer.usage:
            refused = ", ".join(sorted(kinds - signer.usage))
            raise CodeRejected(
                Reason.ERR_KEY_USAGE, f"key {signer.kid} of {issuer.id} may not sign {refused}"
            )
    rid = revocation_id(profile, opened.claims)
    listed = context.trust.revocations.get((issuer.id, signer.kid))
    if rid is not None and listed is not None and listed.revokes(rid, times.issued_at):
        raise CodeRejected(Reason.ERR_REVOKED, f"issuer {issuer.id} revoked this code")
    if context.trace is not None:
        context.note(facts_of.times_checked(now, format_span(limits.leeway)))
    # Step 9: translate with the signer's profile; then a code that names its issuer's region
    # (EU DCC iss) must name its signer's: a key registered for one country vouches for no other.
    # Checked after translation, so a payload of the wrong shape is refused for its shape first.
    if context.trace is not None:
        context.enter(Step.TRANSLATION)
        context.note(facts_of.state_read(profile, opened.claims, issuer))
    translated = translate(profile, opened.claims, issuer.name_in_codes, now, times)
    check_issuer_region(profile, opened.claims, issuer.region)
    if context.trace is not None:
        context.note(_translated_facts(profile, translated))
    # Step 10: identity, then the only success exit.
    if context.trace is not None:
        context.enter(Step.IDENTITY)
    identity = _resolve(translated.identity, issuer, context.identities)
    if context.trace is not None:
        context.note(facts_of.identified(profile, identity.masked))
    canonical = CanonicalCode(
        colour=translated.colour,
        region=issuer.region,
        issuer=issuer.id,
        issued_at=translated.issued_at,
        expires_at=translated.expires_at,
        local_state=translated.local_state,
        masked_identity=identity.masked,
        subject=context.identities.subject(identity),
        destination=translated.destination,
        link=identity.link,
    )
    return Verdict.valid(canonical, facts.provenance, now, detail=_detail(translated))


def _translated_facts(profile: Profile, translated: Translated) -> str:
    degraded = translated.degraded_from.value if translated.degraded_from else None
    return facts_of.translated(
        translated.local_state,
        translated.colour.value,
        degraded,
        translated.note,
        by_rule=profile.rules is not None,
    )


def _detail(translated: Translated) -> str:
    """``verified``, then why the colour differs from the region's word (degradation), then the
    profile's note on the local state: both come from the profile, never from the holder."""
    if translated.degraded_from is None and translated.note is None:
        return "verified"
    parts = ["verified"]
    if translated.degraded_from is not None:
        parts.append(
            f"{translated.degraded_from.value} reads as {translated.colour.value} "
            "because of the code's age"
        )
    if translated.note is not None:
        parts.append(f"{translated.local_state}: {translated.note}")
    return "; ".join(parts)


def _resolve(carrier: IdentityCarrier, issuer: Issuer, keys: IdentityKeys) -> Identity:
    if isinstance(carrier, FullNumber):
        return keys.from_number(carrier.number)
    if isinstance(carrier, MaskedLink):
        return Identity(carrier.masked, carrier.link)
    if isinstance(carrier, NameDob):
        return keys.from_name_dob(carrier.family, carrier.given, carrier.birth)
    if issuer.pseudonym_key is None:  # the hub's registry has it; a replica's trust list not
        raise CodeRejected(
            Reason.ERR_SECRET_UNAVAILABLE,
            f"this gateway does not hold issuer {issuer.id}'s pseudonym key (a replica: ask the "
            "hub)",
        )
    opened = crypto.open_pseudonym(issuer.pseudonym_key, carrier.sealed, issuer.id.encode())
    number = opened.decode("ascii", "replace") if opened is not None else ""
    if not is_cn_resident_id(number):
        raise CodeRejected(Reason.ERR_SCHEMA, "the pseudonym does not open to a valid identity")
    return keys.from_number(number)


def _candidate_issuers(route: Route, opened: Opened) -> Sequence[Issuer]:
    """Step 4: the issuers the payload names, or, on a route whose payloads name none (EU DCC
    style), the issuers holding a key with the code's key id (each still checked with its own
    keys only)."""
    claims = opened.claims
    if not route.names_issuers:
        if len(route.issuers) == 1:  # the one issuer, named in the verdict whatever follows
            return [route.issuers[0][0]]
        return route.holders.get(opened.kid, ()) if opened.kid is not None else ()
    named, candidates = False, []
    for issuer, path in route.issuers:
        assert path is not None
        value = path.get(claims)
        if isinstance(value, str):
            named = True
            if value == issuer.name_in_codes:  # exact: no case folding or normalisation
                candidates.append(issuer)
        elif value is not MISSING:
            raise CodeRejected(Reason.ERR_SCHEMA, "the code's issuer field is not text")
    if candidates:
        return candidates
    if named:
        raise CodeRejected(Reason.ERR_ISSUER_UNKNOWN, "the code's issuer is not registered here")
    raise CodeRejected(Reason.ERR_SCHEMA, "the code does not name its issuer")


def _verify_signature(opened: Opened, keys: list[IssuerKey]) -> IssuerKey:
    """Step 6. With one candidate key its algorithm must match the header; with several (a key
    id shared across issuers) the one that verifies is the signer."""
    named = opened.algorithm
    matching = [k for k in keys if named is None or k.public_key.algorithm is named]
    if not matching:
        assert named is not None
        raise CodeRejected(
            Reason.ERR_ALG_NOT_ALLOWED,
            f"header names {named.value}; the registered key is "
            f"{keys[0].public_key.algorithm.value}",
        )
    # A key id shared by several keys: a signature malformed for one key (an RSA signature of
    # another modulus size) may be right for the next one, so every candidate is tried. Keys
    # that are not revoked come first: a signer certificate moved from the issuer it was
    # wrongly imported into (revoked there) to its own signs for its own (docs/operators.md).
    refusals: list[CodeRejected] = []
    for key in sorted(matching, key=lambda k: k.status is KeyStatus.REVOKED):
        try:
            if key.public_key.verify(opened.signed, opened.signature):
                return key
        except CodeRejected as e:
            refusals.append(e)
    if len(refusals) == len(matching):
        raise refusals[0]
    raise CodeRejected(Reason.ERR_SIGNATURE, "signature does not verify with the registered key")
