"""The hub's state, opened the one way every edge opens it: the gateway (``huren serve``), the
host's ``huren registry`` and ``huren audit`` commands, the demo and the tests.

- :func:`initialise` makes a new state directory (``0700``): the registry with its first audit
  entry, the identity secrets, the trust-list key and the state record. Nothing else creates
  one, so a mistyped or emptied directory is refused instead of silently started afresh.
- :func:`open_hub` opens an existing one after checking that nobody else may read it, and
  verifies the registry; what to do with a registry that does not verify is the caller's
  decision (the gateway refuses to serve; ``audit verify`` reports).
- :func:`new_attestation_key` makes the hub's transfer attestation key and registers it
  through the Registrar (docs/transfer.md), retiring the one it replaces.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from gateway import transfer
from gateway.clock import Clock, system_clock
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import RegistryDamaged, StorageUnavailable
from gateway.identity import IdentityKeys
from gateway.model import IssuerId, KeyId
from gateway.registry import KeyStatus
from gateway.registry.admission import KeyOffer, prove
from gateway.registry.authority import Actor
from gateway.registry.commands import (
    AcceptRollback,
    AddKey,
    CreateRegion,
    Initialise,
    RegisterIssuer,
    RetireKey,
)
from gateway.registry.registrar import Change, Registrar, RegistrarLimits
from gateway.storage.attestations import DEFAULT_MAX_ENTRIES, AttestationDesk, AttestationKeys
from gateway.storage.files import StateFiles
from gateway.storage.migrate import schema_version
from gateway.storage.record import StateRecord
from gateway.storage.secrets import load_or_create_private_key, replace_atomically
from gateway.storage.sqlite import SCHEMA_VERSION, SqliteRegistry
from gateway.trustlist import DEFAULT_FRESH_FOR, TrustListSigner


@dataclass
class Hub:
    """An opened state directory: the registry, the Registrar over it, the secrets."""

    files: StateFiles
    store: SqliteRegistry
    registrar: Registrar
    signer: TrustListSigner
    identities: IdentityKeys
    identity_secrets: tuple[bytes, bytes] = field(default=(b"", b""), repr=False)
    """The subject and link keys ``identities`` was made from (handed to pinned replicas)."""
    _desk: AttestationDesk | None = None

    def attestations(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> AttestationDesk:
        """The attestation keys and the issuance log (opened on first use, closed with the hub).

        Raises:
            StorageUnavailable: if the issuance log cannot be opened.
        """
        if self._desk is None:
            self._desk = AttestationDesk(
                self.files.attestation_keys, self.files.issuance_log, max_entries
            )
        return self._desk

    def close(self) -> None:
        if self._desk is not None:
            self._desk.close()
        self.store.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def initialise(directory: Path, actor: Actor, clock: Clock = system_clock) -> StateFiles:
    """Make a new state directory with an empty, audited registry.

    Raises:
        StorageUnavailable: if a registry (or the record of one) is already there, or the
            directory cannot be written.
    """
    files = StateFiles(directory)
    if files.database.exists() or files.state_record.exists():
        raise StorageUnavailable(
            f"{directory} already holds a registry (or the record of one); nothing was changed"
        )
    files.make_directory()
    files.create_identities()
    key = _trust_list_key(files)
    store = SqliteRegistry.create(files.database, record=StateRecord(files.state_record, key))
    try:
        Registrar(store, clock).submit(actor, f"init-{uuid.uuid4()}", Initialise())
    finally:
        store.close()
    return files


def open_hub(
    directory: Path,
    *,
    clock: Clock = system_clock,
    limits: RegistrarLimits | None = None,
    accept_rollback: Actor | None = None,
    trust_fresh_for: timedelta = DEFAULT_FRESH_FOR,
) -> Hub:
    """Open an existing state directory. Check :attr:`SqliteRegistry.problem` before serving.

    ``trust_fresh_for``: how long each signed trust list may be judged on (docs/scaling.md).

    ``accept_rollback``: the administrator accepts a registry older than its state record (or
    one whose record is missing); the acceptance is audited in their name before anything else.

    Raises:
        StorageUnavailable: for a missing directory, registry or secret, or one that group or
            others may read (the message says how to fix it).
    """
    files = StateFiles(directory)
    _check_schema(files)
    files.check_private()
    if not files.database.is_file():
        raise StorageUnavailable(
            f"no registry in {directory}: create one with `huren registry init --state-dir "
            f"{directory}` (or `huren serve --init`)"
        )
    if not files.trust_list_key.is_file():
        raise StorageUnavailable(f"the trust-list key {files.trust_list_key} is missing")
    secrets = files.identity_secrets()
    identities = IdentityKeys(*secrets)
    key = _trust_list_key(files)
    store = SqliteRegistry(
        files.database,
        record=StateRecord(files.state_record, key),
        accept_rollback=accept_rollback is not None,
    )
    registrar = Registrar(store, clock, limits)
    hub = Hub(files, store, registrar, TrustListSigner(key, trust_fresh_for), identities, secrets)
    if store.rolled_back is not None and accept_rollback is not None:
        mark = store.rolled_back
        try:
            registrar.submit(
                accept_rollback,
                f"accept-rollback-{uuid.uuid4()}",
                AcceptRollback(mark.seq, mark.trust_version, mark.at),
            )
        except RegistryDamaged:
            store.close()
            raise
    return hub


def _check_schema(files: StateFiles) -> None:
    """Refuse a registry an older huren wrote before anything else, naming the way forward
    (an older state directory also lacks files and modes the current one requires)."""
    try:
        found = schema_version(files.database)
    except (StorageUnavailable, RegistryDamaged):
        return  # no file, or not one SQLite reads: the checks that follow say so
    if found is not None and found < SCHEMA_VERSION:
        raise RegistryDamaged(
            f"{files.database} has registry schema {found}, this huren reads schema "
            f"{SCHEMA_VERSION}: upgrade it with `huren registry migrate --state-dir "
            f"{files.directory}` (with the gateway stopped; it keeps a backup of the file and "
            "audits the upgrade)"
        )


def trust_list_key(files: StateFiles) -> PrivateKey:
    """The hub's trust-list signing key (created if there is none yet), its public JWK kept
    beside it."""
    return _trust_list_key(files)


def _trust_list_key(files: StateFiles) -> PrivateKey:
    key = load_or_create_private_key(files.trust_list_key, Algorithm.ES256)
    public = TrustListSigner(key).public_jwk()
    text = (json.dumps(public, indent=2) + "\n").encode()
    if not files.trust_list_public.exists() or files.trust_list_public.read_bytes() != text:
        replace_atomically(files.trust_list_public, text)
    return key


def new_attestation_key(hub: Hub, actor: Actor) -> tuple[str, list[Change]]:
    """A new transfer attestation key, registered as a key of the hub's issuer ``huren-hub``
    in the national pseudo-region 100000 (created, with the issuer, the first time), each step
    an audited change; every other active key of the issuer is retired (attestations it signed
    stay valid until they expire). The private key is written before it is registered, so a
    failed registration leaves an unregistered key that signs nothing.

    Returns:
        The new key id and the changes made, in order.
    """
    changes = []
    if transfer.REGION not in hub.store.state.snapshot().regions:
        changes.append(
            hub.registrar.submit(
                actor,
                f"attestation-region-{uuid.uuid4()}",
                CreateRegion(transfer.REGION, transfer.REGION_NAME),
            )
        )
    created = AttestationKeys(hub.files.attestation_keys).create()
    request_id = f"attestation-key-{uuid.uuid4()}"
    public = created.key.public_key()
    offer = KeyOffer(
        kid=created.kid,
        key=json.dumps({**public.jwk(), "kid": created.kid}).encode(),
        proof=prove(created.key, transfer.ISSUER, created.kid, request_id),
    )
    snapshot = hub.store.state.snapshot()
    if transfer.ISSUER not in snapshot.issuers:
        command: RegisterIssuer | AddKey = RegisterIssuer(
            issuer_id=transfer.ISSUER,
            region=transfer.REGION,
            name=transfer.ISSUER_NAME,
            profile_toml=transfer.profile_text(),
            keys=(offer,),
        )
    else:
        command = AddKey(transfer.ISSUER, offer)
    changes.append(hub.registrar.submit(actor, request_id, command))
    for (issuer, kid), key in sorted(snapshot.keys.items()):
        if (
            issuer == IssuerId(transfer.ISSUER)
            and kid != KeyId(created.kid)
            and key.status is KeyStatus.ACTIVE
        ):
            changes.append(
                hub.registrar.submit(
                    actor, f"attestation-retire-{uuid.uuid4()}", RetireKey(issuer, kid)
                )
            )
    return created.kid, changes
