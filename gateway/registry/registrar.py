"""The Registrar: the one place that decides every change of trust, as
:class:`~gateway.service.VerificationService` is the one place that decides every verdict.

The gRPC Registry service, the host's ``huren registry`` commands and the demo all hand it a typed
command (:mod:`gateway.registry.commands`) and who asks; none of them decides anything. A change
goes through these steps, inside one storage transaction:

1. the storage opens the transaction only on a registry whose audit chain and state digest
   verify (no write on a broken chain: :class:`~gateway.errors.RegistryDamaged` otherwise);
2. the caller is identified against the current operators (a client certificate's pinned key);
3. a retried request id is answered with its first result; the same id with other content is
   refused;
4. the change is **decided** by :func:`decide`, a pure function of the state, the actor, the
   command and the instant: find what it acts on, ask :mod:`~gateway.registry.authority`, parse
   and admit the content, check whose names it uses, and apply it to a candidate
   :class:`~gateway.registry.trust.TrustState`, which validates it and journals its effects;
5. the storage writes the effects, the request record and the audit entry (with the digest of
   the new state), and commits. A denied or refused change writes only its audit entry — unless
   the actor has been denied or refused too often lately: then it is answered
   ``RESOURCE_EXHAUSTED`` and counted, and one entry records how many were not audited one by one.

Nothing here does I/O or reads a clock of its own: the storage is a small Protocol, the clock is
injected.
"""

from __future__ import annotations

import enum
import hashlib
import tomllib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.clock import Clock
from gateway.crypto import pki
from gateway.errors import (
    Abandoned,
    CertificateRefused,
    ConfigurationInvalid,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    Overloaded,
    Refused,
    RequestConflict,
    RequestInvalid,
)
from gateway.model import IssuerId, KeyId, ProfileId, Reason, RegionCode, parse_region_code
from gateway.policy import NATIONAL, load_policy
from gateway.profiles import Profile, load_profile
from gateway.profiles.model import KeyIdRule
from gateway.registry.admission import (
    SignerCertificate,
    admit,
    certificate_key,
    describe_certificate_key,
    read_signer_certificate,
)
from gateway.registry.audit import AuditEntry
from gateway.registry.authority import Action, Actor, Role, refusal
from gateway.registry.commands import (
    AcceptRollback,
    AddKey,
    AddReplica,
    Command,
    CreateOperator,
    CreateRegion,
    ImportCertificate,
    ImportCertificates,
    Initialise,
    RegisterIssuer,
    RemoveOperator,
    RemoveReplica,
    ReserveName,
    RetireIssuer,
    RetireKey,
    RevokeKey,
    SetPolicy,
    SetRevocations,
    UpdateProfile,
    command_digest,
)
from gateway.registry.keyfiles import read_revocation_list
from gateway.registry.model import (
    Issuer,
    NameClaim,
    NameKind,
    Operator,
    Region,
)
from gateway.registry.trust import TrustState

MAX_REQUEST_ID = 128


class Outcome(enum.Enum):
    OK = "ok"
    DENIED = "denied"
    """The actor may not do this (whatever the request carried)."""
    REFUSED = "refused"
    """The request is invalid, or what it acts on does not exist."""


@dataclass(frozen=True, slots=True)
class Change:
    """What a change produced: the trust version after it, and its audit entry."""

    trust_version: int
    audit: AuditEntry


@dataclass(frozen=True, slots=True)
class Credential:
    """A client certificate that mutual TLS verified (PEM): who it is, the registry decides."""

    certificate_pem: bytes


@dataclass(frozen=True, slots=True)
class Decision:
    """What :func:`decide` concluded. ``state`` is the accepted candidate (OK only); ``error``
    is what the caller gets for a denied or refused change."""

    action: Action
    target: str
    outcome: Outcome
    detail: str
    state: TrustState | None = None
    error: Refused | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit entry before storage numbers, chains and hashes it."""

    at: datetime
    actor: str
    action: Action
    target: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What makes a request id answer retries: who sent it, and the digest of its content."""

    actor: str
    request_id: str
    action: Action
    digest: str


class RegistryTransaction(Protocol):
    """One write transaction of the storage (see :class:`RegistryStorage`)."""

    @property
    def state(self) -> TrustState:
        """The registry's current state, verified against the audit chain."""
        ...

    def earlier(self, actor: str, request_id: str) -> tuple[str, AuditEntry] | None:
        """The content digest and audit entry of the change an earlier request with this id
        made, if it made one."""
        ...

    def append(
        self,
        record: AuditRecord,
        *,
        accepted: TrustState | None = None,
        request: RequestRecord | None = None,
    ) -> AuditEntry:
        """Write ``accepted``'s journal (if given), ``request`` (if given) and the audit entry,
        whose state digest is that of the state after it."""
        ...


class RegistryStorage(Protocol):
    """Where the registry is kept. It stores; it decides nothing."""

    @property
    def state(self) -> TrustState:
        """The last state loaded or written and verified."""
        ...

    def transaction(self) -> AbstractContextManager[RegistryTransaction]:
        """A write transaction on a verified registry, committed when the block ends normally.

        Raises:
            RegistryDamaged: if the registry does not verify (nothing may be written to it).
            StorageUnavailable: if it cannot be written now.
        """
        ...


@dataclass(frozen=True, slots=True)
class RegistrarLimits:
    """How many denied or refused changes an actor may make in a row before they are answered
    ``RESOURCE_EXHAUSTED`` instead of being audited one by one (a token bucket: ``burst``
    tokens, one more every ``refill_seconds``)."""

    burst: int = 30
    refill_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.burst < 1 or self.refill_seconds <= 0:
            raise ValueError("the denial budget needs a positive burst and refill period")


@dataclass
class _Suppressed:
    count: int
    first: datetime
    last: datetime


@dataclass
class _DenialBudget:
    limits: RegistrarLimits
    tokens: dict[str, tuple[float, datetime]] = field(default_factory=dict)
    suppressed: dict[str, _Suppressed] = field(default_factory=dict)

    def take(self, actor: str, now: datetime) -> bool:
        level, since = self.tokens.get(actor, (float(self.limits.burst), now))
        elapsed = max(0.0, (now - since).total_seconds())
        level = min(float(self.limits.burst), level + elapsed / self.limits.refill_seconds)
        if level < 1.0:
            self.tokens[actor] = (level, now)
            held = self.suppressed.get(actor)
            if held is None:
                self.suppressed[actor] = _Suppressed(1, now, now)
            else:
                held.count, held.last = held.count + 1, now
            return False
        self.tokens[actor] = (level - 1.0, now)
        return True


class Registrar:
    """Every change of the registry goes through :meth:`submit`."""

    def __init__(
        self,
        storage: RegistryStorage,
        clock: Clock,
        limits: RegistrarLimits | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self._budget = _DenialBudget(limits or RegistrarLimits())

    def submit(
        self,
        who: Actor | Credential,
        request_id: str,
        command: Command,
        *,
        abandoned: Callable[[], bool] | None = None,
    ) -> Change:
        """Decide and record one change (see the module docstring for the steps).

        ``abandoned`` says whether the caller has given up (a passed deadline): an accepted
        change is then rolled back instead of committed, since its caller would never learn of
        it. Denied and refused ones are still audited.

        Raises:
            RequestInvalid: for a malformed request id.
            NotAuthenticated: if a credential names no active operator (not audited).
            RequestConflict: for a request id reused with other content.
            NotPermitted: if the actor may not do this (audited).
            NotFound: if what the change acts on does not exist (audited).
            ConfigurationInvalid: if the change is invalid (audited).
            Overloaded: if the actor was denied or refused too often lately (counted).
            Abandoned: if the caller gave up before the commit.
            RegistryDamaged: if the registry does not verify; nothing is written.
            StorageUnavailable: if the registry cannot be written now.
        """
        _check_request_id(request_id)
        digest = command_digest(command)
        now = self.clock()
        failure: Refused | Overloaded | None = None
        with self.storage.transaction() as tx:
            actor = who if isinstance(who, Actor) else identify(tx.state, who)
            earlier = tx.earlier(actor.label, request_id)
            if earlier is not None:
                if earlier[0] != digest:
                    raise RequestConflict(
                        f"request id {request_id!r} was used for a different request"
                    )
                return Change(earlier[1].trust_version, earlier[1])
            decision = decide(tx.state, actor, command, now, request_id)
            record = AuditRecord(
                now,
                actor.label,
                decision.action,
                decision.target,
                decision.outcome,
                decision.detail,
            )
            if decision.outcome is Outcome.OK:
                if abandoned is not None and abandoned():
                    raise Abandoned(
                        "the deadline passed before the change committed; nothing changed"
                    )
                self._record_suppressed(tx, actor.label, now)
                request = RequestRecord(actor.label, request_id, decision.action, digest)
                entry = tx.append(record, accepted=decision.state, request=request)
            elif not self._budget.take(actor.label, now):
                failure = Overloaded(
                    f"{actor.label} was denied or refused more than {self._budget.limits.burst} "
                    "times lately; this call was counted, not audited one by one: retry later"
                )
            else:
                self._record_suppressed(tx, actor.label, now)
                entry = tx.append(record)
                failure = decision.error
        if failure is not None:
            raise failure
        return Change(entry.trust_version, entry)

    def flush(self, quiet_seconds: float = 60.0) -> None:
        """Audit the calls of every actor that has been rate-limited and quiet for
        ``quiet_seconds`` (so that a count is never held back for long)."""
        now = self.clock()
        due = [
            actor
            for actor, held in self._budget.suppressed.items()
            if (now - held.last).total_seconds() >= quiet_seconds
        ]
        if not due:
            return
        with self.storage.transaction() as tx:
            for actor in due:
                self._record_suppressed(tx, actor, now)

    def _record_suppressed(self, tx: RegistryTransaction, actor: str, now: datetime) -> None:
        held = self._budget.suppressed.pop(actor, None)
        if held is None:
            return
        detail = (
            f"{held.count} denied or refused call(s) from {held.first.isoformat()} to "
            f"{held.last.isoformat()} were answered RESOURCE_EXHAUSTED and not audited one by one"
        )
        tx.append(AuditRecord(now, actor, Action.RATE_LIMITED, actor, Outcome.DENIED, detail))

    def identify(self, credential: Credential) -> Actor:
        """The operator a verified client certificate names, by the current state.

        Raises:
            NotAuthenticated: see :func:`identify`.
        """
        return identify(self.storage.state, credential)


def identify(state: TrustState, credential: Credential) -> Actor:
    """The registered operator a verified client certificate names.

    Raises:
        NotAuthenticated: unless the certificate may authenticate a client (``clientAuth``), its
            key is pinned for an active operator, and it names that operator and region.
    """
    try:
        peer = pki.peer_identity(credential.certificate_pem)
    except ValueError as e:
        raise NotAuthenticated(f"client certificate: {e}") from e
    if not peer.client_auth:
        raise NotAuthenticated("the client certificate lacks the clientAuth extended key usage")
    operator = state.operator_by_pin(peer.spki_sha256)
    if operator is None or not operator.active:
        raise NotAuthenticated("the certificate's key is not a registered operator's")
    if (operator.name, operator.region, operator.replica) != (
        peer.name,
        peer.region,
        peer.replica,
    ):
        raise NotAuthenticated("the certificate does not match the operator registered")
    if operator.replica:
        return Actor(Role.REPLICA, operator.name)
    role = Role.ADMIN if operator.region is None else Role.OPERATOR
    return Actor(role, operator.name, operator.region)


def _check_request_id(request_id: str) -> None:
    if not (0 < len(request_id) <= MAX_REQUEST_ID and request_id.isascii()) or not (
        request_id.isprintable()
    ):
        raise RequestInvalid(f"request id must be 1 to {MAX_REQUEST_ID} printable ASCII characters")


# ---------------------------------------------------------------------- deciding


@dataclass(frozen=True, slots=True)
class _Context:
    now: datetime
    request_id: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to decide one command: what it acts on, whose region that is (for authority; may
    raise NotFound), and how to apply it to a candidate (returns the audit detail; raises
    NotPermitted for someone else's name, ConfigurationInvalid or NotFound for a refusal)."""

    action: Action
    target: str
    region: Callable[[TrustState], RegionCode | None]
    apply: Callable[[TrustState, _Context], str]


def decide(
    state: TrustState, actor: Actor, command: Command, now: datetime, request_id: str = "-"
) -> Decision:
    """The Registrar's verdict on one change. Pure: the state is not touched (a candidate
    copy is); ``request_id`` binds proofs of possession."""
    plan = _plan(command, actor)
    try:
        region = plan.region(state)
    except NotFound as e:
        return _refused(plan, e)
    why = refusal(actor, plan.action, region)
    if why is not None:
        return Decision(plan.action, plan.target, Outcome.DENIED, why, error=NotPermitted(why))
    candidate = state.candidate()
    try:
        detail = plan.apply(candidate, _Context(now, request_id, actor))
    except NotPermitted as e:
        return Decision(plan.action, plan.target, Outcome.DENIED, str(e), error=e)
    except (ConfigurationInvalid, NotFound) as e:
        return _refused(plan, e)
    return Decision(plan.action, plan.target, Outcome.OK, detail, candidate)


def _refused(plan: _Plan, error: ConfigurationInvalid | NotFound) -> Decision:
    code = error.reason.value if isinstance(error, ConfigurationInvalid) else "NOT_FOUND"
    return Decision(plan.action, plan.target, Outcome.REFUSED, f"{code}: {error}", error=error)


def _plan(command: Command, actor: Actor) -> _Plan:
    match command:
        case RegisterIssuer():
            return _register_issuer(command)
        case AddKey(issuer_id=issuer, key=offer):

            def add_key(state: TrustState, ctx: _Context) -> str:
                key = admit(IssuerId(issuer), offer, ctx.request_id, ctx.now)
                state.add_key(key)
                return f"{key.public_key.algorithm.value} key {key.kid}"

            return _Plan(Action.ADD_KEY, f"{issuer}/{offer.kid}", _region_of(issuer), add_key)
        case ImportCertificate(issuer_id=issuer, certificate=certificate):
            return _import_certificates(issuer, (certificate,))
        case ImportCertificates(issuer_id=issuer, certificates=certificates):
            return _import_certificates(issuer, certificates)
        case RetireKey(issuer_id=issuer, kid=kid, at=at):

            def retire_key(state: TrustState, ctx: _Context) -> str:
                when = at or ctx.now
                state.retire_key(IssuerId(issuer), KeyId(kid), when)
                return f"codes issued after {when.isoformat()} are refused"

            return _Plan(Action.RETIRE_KEY, f"{issuer}/{kid}", _region_of(issuer), retire_key)
        case RevokeKey(issuer_id=issuer, kid=kid, reason=reason):

            def revoke_key(state: TrustState, ctx: _Context) -> str:
                state.revoke_key(IssuerId(issuer), KeyId(kid), ctx.now)
                return f"revoked: {reason}" if reason else "revoked"

            return _Plan(Action.REVOKE_KEY, f"{issuer}/{kid}", _region_of(issuer), revoke_key)
        case UpdateProfile(issuer_id=issuer, profile_toml=text):

            def update_profile(state: TrustState, ctx: _Context) -> str:
                profile = load_profile(text)
                current = state.issuer(IssuerId(issuer))
                assert current is not None  # _region_of found it
                _use_profile(state, profile, text, current.region)
                if not state.update_profile(IssuerId(issuer), profile, text):
                    # The same version again: audited as asked, nothing changes.
                    return f"profile {profile.label} unchanged: it is already the current version"
                return f"profile {profile.label} ({profile.source_sha256[:16]})"

            return _Plan(Action.UPDATE_PROFILE, issuer, _region_of(issuer), update_profile)
        case SetRevocations(issuer_id=issuer, kid=kid, revocation_list=data):

            def set_revocations(state: TrustState, ctx: _Context) -> str:
                listed, revocations = read_revocation_list(data)
                if listed != kid:
                    raise ConfigurationInvalid(
                        Reason.ERR_IDENTIFIER, f"the list is for key {listed[:64]!r}, not this one"
                    )
                state.set_revocations(IssuerId(issuer), KeyId(kid), revocations)
                return f"counter {revocations.counter}, {len(revocations.ids)} revoked ids"

            target = f"{issuer}/{kid}"
            return _Plan(Action.SET_REVOCATIONS, target, _region_of(issuer), set_revocations)
        case SetPolicy(policy_toml=text):
            return _set_policy(text, actor)
        case CreateRegion(region=code, name=name):

            def create_region(state: TrustState, ctx: _Context) -> str:
                state.add_region(Region(_region_code(code), name))
                return name

            return _Plan(Action.CREATE_REGION, code[:16], _nowhere, create_region)
        case CreateOperator():
            return _create_operator(command)
        case RemoveOperator(name=name):

            def remove_operator(state: TrustState, ctx: _Context) -> str:
                state.remove_operator(name)
                return "removed; its certificate no longer authenticates"

            return _Plan(Action.REMOVE_OPERATOR, name[:64], _nowhere, remove_operator)
        case AddReplica():
            return _add_replica(command)
        case RemoveReplica(name=name):

            def remove_replica(state: TrustState, ctx: _Context) -> str:
                state.remove_operator(name, replica=True)
                return "removed; its certificate no longer fetches the replica secrets"

            return _Plan(Action.REMOVE_REPLICA, name[:64], _nowhere, remove_replica)
        case RetireIssuer(issuer_id=issuer, reason=reason):

            def retire_issuer(state: TrustState, ctx: _Context) -> str:
                state.retire_issuer(IssuerId(issuer), ctx.now, reason)
                why = f": {reason}" if reason else ""
                return f"retired{why}; its codes are refused and its names stay taken"

            return _Plan(Action.RETIRE_ISSUER, issuer[:64], _region_of(issuer), retire_issuer)
        case ReserveName():
            return _reserve_name(command)
        case Initialise():

            def initialise(state: TrustState, ctx: _Context) -> str:
                if state.version != 0:
                    raise ConfigurationInvalid(Reason.ERR_VERSION, "the registry already exists")
                return "registry created"

            return _Plan(Action.INITIALISE, "registry", _nowhere, initialise)
        case AcceptRollback():

            def accept(state: TrustState, ctx: _Context) -> str:
                if command.recorded_seq == 0:
                    return (
                        "continuing from this registry although its state record was missing: "
                        "what was recorded before it is not known"
                    )
                state.raise_version(command.recorded_version + 1)
                return (
                    "continuing from an older registry: the state recorded at "
                    f"{command.recorded_at.isoformat()} was audit entry {command.recorded_seq}, "
                    f"trust version {command.recorded_version}; trust versions continue above it"
                )

            return _Plan(Action.ACCEPT_ROLLBACK, "registry", _nowhere, accept)
    raise AssertionError(f"unknown command {type(command).__name__}")  # pragma: no cover


def _register_issuer(command: RegisterIssuer) -> _Plan:
    claimed = RegionCode(command.region)

    def region(state: TrustState) -> RegionCode | None:
        # Nobody registers over another region's issuer, nor under a name its codes use.
        taken = state.issuer_named(command.issuer_id)
        return taken.region if taken is not None else claimed

    def apply(state: TrustState, ctx: _Context) -> str:
        profile = load_profile(command.profile_toml)
        issuer_id = IssuerId(command.issuer_id)
        keys = [admit(issuer_id, offer, ctx.request_id, ctx.now) for offer in command.keys]
        issuer = Issuer(
            issuer_id,
            claimed,
            command.name,
            ProfileId(profile.id),
            profile.version,
            online=command.online,
            pseudonym_key=command.pseudonym_key,
            code_name=command.code_name,
        )
        for name in {command.issuer_id, command.code_name or command.issuer_id}:
            _check_issuer_name(state, name, claimed)
        _use_profile(state, profile, command.profile_toml, claimed)
        state.add_issuer(issuer)
        for key in keys:
            state.add_key(key)
        kids = ", ".join(k.kid for k in keys) or "none"
        return f"region {claimed}, profile {profile.label}, keys {kids}"

    return _Plan(Action.REGISTER_ISSUER, command.issuer_id[:64], region, apply)


def _check_issuer_name(state: TrustState, name: str, region: RegionCode) -> None:
    """What codes call an issuer belongs to one region: another region's issuer name (an id or
    a code name), or a name reserved for another region, is denied."""
    other = state.issuer_named(name)
    if other is not None and other.region != region:
        raise NotPermitted(f"codes already call issuer {other.id} of {other.region} {name[:64]!r}")
    owner = state.owner(NameKind.ISSUER, name)
    if owner is not None and owner != region:
        raise NotPermitted(f"the issuer name {name[:64]!r} is reserved for {owner}")


def _use_profile(state: TrustState, profile: Profile, text: str, region: RegionCode) -> None:
    """Anyone may use a registered profile version as it is (EU DCC issuers of many countries
    share one); only the profile id's owner publishes new versions of it, and the first region
    to publish an unowned id owns it."""
    if state.has_profile(ProfileId(profile.id), profile.version):
        state.add_profile(profile, text)  # the same content: a no-op; other: ERR_VERSION
        return
    owner = state.owner(NameKind.PROFILE, profile.id)
    if owner is not None and owner != region:
        raise NotPermitted(
            f"profile id {profile.id!r} belongs to {owner}; only it publishes versions"
        )
    state.claim(NameClaim(NameKind.PROFILE, profile.id, region))
    state.add_profile(profile, text)


MAX_CERTIFICATES_PER_CHANGE = 1000
"""Most signer certificates one ImportCertificates change holds (one country's list)."""


def schema_upgrade(
    actor: Actor, now: datetime, from_version: int, to_version: int, backup: str, backup_sha256: str
) -> AuditRecord:
    """The audit record of ``huren registry migrate`` upgrading the registry file from schema
    ``from_version`` to ``to_version``, its old file kept as ``backup`` (whose SHA-256 it names):
    decided here like every change of the registry, written by storage in the transaction that
    upgrades the file. Only on the hub's host.

    Raises:
        NotPermitted: for any actor but the hub's host.
    """
    why = refusal(actor, Action.MIGRATE_SCHEMA, None)
    if why is not None:
        raise NotPermitted(why)
    detail = (
        f"registry schema {from_version} -> {to_version}; backup {backup} "
        f"(sha256 {backup_sha256[:16]})"
    )
    return AuditRecord(
        now, actor.label, Action.MIGRATE_SCHEMA, f"schema-{to_version}", Outcome.OK, detail
    )


def _takes_certificates(state: TrustState, issuer: str) -> None:
    """Raises ConfigurationInvalid (ERR_POP) unless ``issuer``'s profile takes keys by
    certificate (key ids from the certificate's hash), NotFound if it is not registered."""
    current = state.issuer(IssuerId(issuer))
    if current is None:
        raise NotFound(f"issuer {issuer[:64]} is not registered")
    profile = state.profile_of(current)
    if profile.envelope.key_id is not KeyIdRule.X509_SHA256_8:
        raise ConfigurationInvalid(
            Reason.ERR_POP,
            f"issuer {issuer}'s profile takes keys with proof of possession: use add-key",
        )


def screen_certificates(
    state: TrustState, issuer: str, certificates: Sequence[bytes]
) -> tuple[dict[int, SignerCertificate], dict[int, ConfigurationInvalid]]:
    """The certificates an :class:`ImportCertificates` change of ``issuer`` would admit, read
    (to submit as they are: they are not parsed again), and those it would refuse, each with
    its reason, by position: every certificate is tried in one pass on a candidate copy
    (``state`` is not touched), as the change admits them, so a list with many bad certificates
    is sorted out before anything is submitted (each refused change is audited and counted
    against the actor's denial budget). Advisory: the change itself is still decided by
    :meth:`Registrar.submit` on the state it finds.

    Raises:
        ConfigurationInvalid: ERR_POP if the issuer takes no keys by certificate at all.
        NotFound: if the issuer is not registered.
    """
    candidate = state.candidate()
    _takes_certificates(candidate, issuer)
    admitted: dict[int, SignerCertificate] = {}
    refused: dict[int, ConfigurationInvalid] = {}
    for position, certificate in enumerate(certificates):
        try:
            read = read_signer_certificate(certificate)
            candidate.add_key(read.key_of(IssuerId(issuer)))
        except ConfigurationInvalid as e:
            refused[position] = e
            continue
        admitted[position] = read
    return admitted, refused


def _import_certificates(issuer: str, certificates: tuple[bytes | SignerCertificate, ...]) -> _Plan:
    def apply(state: TrustState, ctx: _Context) -> str:
        if not 1 <= len(certificates) <= MAX_CERTIFICATES_PER_CHANGE:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                f"import 1 to {MAX_CERTIFICATES_PER_CHANGE} certificates in one change, "
                f"not {len(certificates)}",
            )
        _takes_certificates(state, issuer)
        keys = []
        for position, certificate in enumerate(certificates):
            try:
                key = certificate_key(IssuerId(issuer), certificate)
                state.add_key(key)
            except ConfigurationInvalid as e:
                if len(certificates) == 1:
                    raise
                raise CertificateRefused(
                    e.reason, f"certificate {position + 1} of {len(certificates)}: {e}", position
                ) from e
            keys.append(key)
        if len(keys) > 1:  # each key's details are in the registry; the entry names them all
            return f"{len(keys)} certificates: key ids " + ", ".join(k.kid for k in keys)
        return describe_certificate_key(keys[0])

    ders = [c.der if isinstance(c, SignerCertificate) else c for c in certificates]
    if len(ders) == 1:
        target = f"{issuer[:64]}/sha256:{hashlib.sha256(ders[0]).hexdigest()[:16]}"
    else:
        listed = hashlib.sha256(b"".join(hashlib.sha256(d).digest() for d in ders))
        target = f"{issuer[:64]}/{len(certificates)} certificates sha256:{listed.hexdigest()[:16]}"
    return _Plan(Action.IMPORT_CERTIFICATE, target, _region_of(issuer), apply)


def _set_policy(text: str, actor: Actor) -> _Plan:
    claimed = _claimed_destination(text, actor)

    def region(state: TrustState) -> RegionCode | None:
        return None if claimed == NATIONAL else RegionCode(claimed)

    def apply(state: TrustState, ctx: _Context) -> str:
        policy = load_policy(text)
        if policy.key != claimed:  # pragma: no cover - the claim is read from the same text
            raise ConfigurationInvalid(Reason.ERR_POLICY, "the policy's destination is unclear")
        owner = state.owner(NameKind.POLICY, policy.id)
        if owner is not None and owner != policy.key:
            raise NotPermitted(f"policy id {policy.id!r} belongs to {owner}")
        for required in policy.require.issuers:
            issuer = state.issuer(required)
            if issuer is not None and not policy.recognises(issuer.region, issuer.id):
                raise ConfigurationInvalid(
                    Reason.ERR_POLICY,
                    f"require.issuers: {issuer.id} ({issuer.region}) is not recognised by this "
                    "policy's trust rules, so the requirement could never be met",
                )
        state.claim(NameClaim(NameKind.POLICY, policy.id, policy.key))
        state.set_policy(policy, text)
        flags = "; ".join(policy.flags())
        label = f"policy {policy.label} ({policy.source_sha256[:16]})"
        return f"{label}; {flags}" if flags else label

    return _Plan(Action.SET_POLICY, claimed[:16], region, apply)


def _claimed_destination(text: str, actor: Actor) -> str:
    """Where a policy says it decides (a region code or ``national``), to authorise it before it
    is validated; when not even that can be read, the caller's own region (the hub
    administrator's: national)."""
    try:
        meta = tomllib.loads(text).get("policy", {})
    except (tomllib.TOMLDecodeError, UnicodeError):
        meta = {}
    value = meta.get("destination") if isinstance(meta, dict) else None
    if value == NATIONAL:
        return NATIONAL
    if isinstance(value, str):
        try:
            return parse_region_code(value)
        except ValueError:
            pass
    return actor.region or NATIONAL


def _create_operator(command: CreateOperator) -> _Plan:
    def apply(state: TrustState, ctx: _Context) -> str:
        peer = _authenticating_peer(command.certificate_pem)
        if peer.replica:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "the certificate is a replica's: pin it with add-replica"
            )
        if (peer.name, peer.region) != (command.name, command.region):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "the certificate names another operator or region"
            )
        region = _region_code(command.region) if command.region is not None else None
        state.add_operator(Operator(command.name, region, peer.spki_sha256))
        role = f"operator of {region}" if region else "hub administrator"
        return f"{role}, key {peer.spki_sha256[:16]}"

    return _Plan(Action.CREATE_OPERATOR, command.name[:64], _nowhere, apply)


def _authenticating_peer(certificate_pem: bytes) -> pki.PeerIdentity:
    """Who a client certificate to be pinned names, if it can authenticate at all."""
    try:
        peer = pki.peer_identity(certificate_pem)
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"certificate: {e}") from e
    if not peer.client_auth:
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER,
            "the certificate lacks the clientAuth extended key usage: it cannot authenticate",
        )
    return peer


def _add_replica(command: AddReplica) -> _Plan:
    def apply(state: TrustState, ctx: _Context) -> str:
        peer = _authenticating_peer(command.certificate_pem)
        if not peer.replica or peer.name != command.name:
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER,
                f"the certificate does not name replica {command.name[:64]} "
                f"(spiffe://huren.local/replica/{command.name[:64]})",
            )
        state.add_operator(Operator(command.name, None, peer.spki_sha256, replica=True))
        return f"replica, key {peer.spki_sha256[:16]}; it may fetch the replica secrets"

    return _Plan(Action.ADD_REPLICA, command.name[:64], _nowhere, apply)


def _reserve_name(command: ReserveName) -> _Plan:
    def apply(state: TrustState, ctx: _Context) -> str:
        region = _region_code(command.region)
        if not state.has_region(region):
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"region {region} does not exist")
        if command.kind is NameKind.ISSUER:
            other = state.issuer_named(command.name)
            if other is not None and other.region != region:
                raise ConfigurationInvalid(
                    Reason.ERR_IDENTIFIER,
                    f"codes already call issuer {other.id} of {other.region} {command.name!r}",
                )
        state.claim(NameClaim(command.kind, command.name, region, reserved=True))
        return f"{command.kind.value} name {command.name!r} reserved for {region}"

    target = f"{command.kind.value}:{command.name[:64]}"
    return _Plan(Action.RESERVE_NAME, target, _nowhere, apply)


def _region_of(issuer_id: str) -> Callable[[TrustState], RegionCode | None]:
    def region(state: TrustState) -> RegionCode | None:
        issuer = state.issuer(IssuerId(issuer_id))
        if issuer is None:
            raise NotFound(f"issuer {issuer_id[:64]!r} is not registered")
        return issuer.region

    return region


def _nowhere(state: TrustState) -> RegionCode | None:
    return None


def _region_code(text: str) -> RegionCode:
    try:
        return parse_region_code(text)
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
