"""Commands on the gateway's own host: the registry file, the audit log, trust lists.

``huren registry ...`` changes the registry file directly, as the local administrator (audited as
``local:<user>``), through the same :class:`~gateway.registry.registrar.Registrar` as the gRPC
service: for creating the registry, bootstrapping the first hub administrator, importing signer
certificates, and emergencies. Regional operators use ``huren operator ...`` over mutual TLS.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from gateway import crypto, transfer
from gateway.cli.common import (
    DEFAULT_STATE,
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    Subparsers,
    aware_datetime,
    local_actor,
    read_hex,
    read_source,
    read_utf8,
)
from gateway.clients.tls import read_tls_file
from gateway.clock import system_clock
from gateway.errors import CertificateRefused, ConfigurationInvalid, StorageUnavailable
from gateway.hub import Hub, initialise, new_attestation_key, open_hub, trust_list_key
from gateway.model import IssuerId, Reason, parse_region_code
from gateway.registry import KeyStatus, OnlineEndpoint
from gateway.registry.admission import (
    KeyOffer,
    SignerCertificate,
    describe_certificate_key,
    offers_from_file,
)
from gateway.registry.commands import (
    AddReplica,
    Command,
    CreateOperator,
    CreateRegion,
    ImportCertificate,
    ImportCertificates,
    RegisterIssuer,
    RemoveReplica,
    RetireIssuer,
    RevokeKey,
)
from gateway.registry.keyfiles import MAX_KEY_FILE_BYTES
from gateway.registry.registrar import MAX_CERTIFICATES_PER_CHANGE, Change, screen_certificates
from gateway.registry.views import ReplicaView, replica_views
from gateway.report import issuance_json
from gateway.storage.files import StateFiles
from gateway.storage.migrate import migrate
from gateway.storage.record import StateRecord
from gateway.storage.sqlite import SqliteRegistry
from gateway.trustlist import MAX_TRUST_LIST_CHARS
from gateway.trustlist import verify as verify_trust_list


def new_request_id() -> str:
    return str(uuid.uuid4())


def register(commands: Subparsers) -> None:
    registry = commands.add_parser("registry", help="administer the registry file on this host")
    sub = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--state-dir",
            type=Path,
            default=DEFAULT_STATE,
            help=f"the gateway's state directory (default {DEFAULT_STATE})",
        )
        return p

    init = command("init", "create a new state directory: an empty, audited registry and keys")
    init.set_defaults(handler=_init)

    add = command("add-issuer", "register an issuer, its profile and keys")
    add_issuer_options(add)
    add.set_defaults(handler=_add_issuer)

    certificates = command(
        "import-certificates",
        "import signer certificates from a national trust list (EU DCC style issuers)",
    )
    certificates.add_argument("--issuer", required=True, help="an issuer with key_id x509-sha256-8")
    certificates.add_argument("files", type=Path, nargs="+", help="PEM (bundles too) or DER")
    certificates.set_defaults(handler=_import_certificates)

    region = command("create-region", "create a region")
    region.add_argument("--region", required=True, help="GB/T 2260 code, such as 330100")
    region.add_argument("--name", required=True, help="display name, such as 杭州市")
    region.set_defaults(handler=_create_region)

    operator = command(
        "create-operator", "pin an operator's certificate (bootstrap the hub administrator)"
    )
    operator.add_argument("--name", required=True, help="the operator's name")
    operator.add_argument("--region", help="the operator's region; omit for a hub administrator")
    operator.add_argument("--cert", type=Path, required=True, help="the operator's certificate")
    operator.set_defaults(handler=_create_operator)

    replicas = sub.add_parser(
        "replica", help="pin, unpin and list verifier replicas' certificates (docs/scaling.md)"
    )
    rsub = replicas.add_subparsers(dest="replica_command", required=True, metavar="ACTION")
    for name, help_text in (
        ("add", "pin a replica's certificate: it may then fetch the replica secrets"),
        ("remove", "unpin a replica at once: its next fetch of the replica secrets is refused"),
        ("list", "the replicas pinned, and those removed"),
    ):
        r = rsub.add_parser(name, help=help_text)
        r.add_argument(
            "--state-dir",
            type=Path,
            default=DEFAULT_STATE,
            help=f"the gateway's state directory (default {DEFAULT_STATE})",
        )
        if name == "add":
            r.add_argument("name", help="the replica's name, as its certificate names it")
            r.add_argument(
                "--certificate",
                type=Path,
                required=True,
                help="its certificate (spiffe://huren.local/replica/NAME; `huren pki issue "
                "--replica NAME` makes one)",
            )
            r.set_defaults(handler=_add_replica)
        elif name == "remove":
            r.add_argument("name", help="the replica's name")
            r.set_defaults(handler=_remove_replica)
        else:
            r.add_argument("--json", action="store_true", help="one JSON object per replica")
            r.set_defaults(handler=_list_replicas)

    retire = command("retire-issuer", "stop an issuer for good (its codes are refused)")
    retire.add_argument("--issuer", required=True, help="the issuer id")
    retire.add_argument("--reason", default="", help="why, for the audit log")
    retire.set_defaults(handler=_retire_issuer)

    attestation = command(
        "attestation-key", "转码: make (or rotate to) a new hub attestation key, or revoke one"
    )
    attestation.add_argument("action", choices=["new", "revoke"], help="new: make and register")
    attestation.add_argument("--kid", help="revoke: the key id")
    attestation.add_argument("--reason", default="", help="revoke: why, for the audit log")
    attestation.set_defaults(handler=_attestation_key)

    issued = command("attestations", "the hub's issuance log of transfer attestations")
    add_issuance_options(issued)
    issued.set_defaults(handler=_attestations)

    upgrade = command(
        "migrate",
        "upgrade a registry an older huren wrote to this version's schema (stop the gateway "
        "first; a backup is made and the upgrade audited)",
    )
    upgrade.set_defaults(handler=_migrate)

    rollback = command(
        "accept-rollback",
        "continue from a registry older than its state record (a restored backup), audited",
    )
    rollback.set_defaults(handler=_accept_rollback)

    audit = commands.add_parser("audit", help="read and check the audit log")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = asub.add_parser("verify", help="check the whole hash chain and the current state")
    verify.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE, help="the gateway's state folder"
    )
    verify.add_argument("--db", type=Path, help="a registry file (default: STATE_DIR/registry.db)")
    verify.set_defaults(handler=_audit_verify)
    log = asub.add_parser("log", help="list audit entries")
    log.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE, help="the gateway's state folder"
    )
    log.add_argument("--db", type=Path, help="a registry file (default: STATE_DIR/registry.db)")
    log.add_argument("--after", type=int, default=0, help="entries after this sequence number")
    log.add_argument("--limit", type=int, help="at most this many (default: all)")
    log.add_argument("--json", action="store_true", help="one JSON object per entry")
    log.set_defaults(handler=_audit_log)

    trust = commands.add_parser("trustlist", help="check a signed trust list offline")
    tsub = trust.add_subparsers(dest="trustlist_command", required=True, metavar="ACTION")
    tverify = tsub.add_parser("verify", help="verify a trust list with the gateway's public key")
    tverify.add_argument("file", type=Path, help="the trust list (compact JWS)")
    tverify.add_argument("--key", type=Path, required=True, help="the gateway's trustlist-key.jwk")
    tverify.set_defaults(handler=_trustlist_verify)


def add_issuer_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe an issuer registration (shared with ``huren operator``)."""
    parser.add_argument("--id", required=True, help="issuer id, such as hangzhou")
    parser.add_argument("--region", required=True, help="GB/T 2260 region code, such as 330100")
    parser.add_argument("--name", required=True, help="display name")
    parser.add_argument("--profile", type=Path, required=True, help="profile TOML file")
    parser.add_argument(
        "--keys",
        help="JWKS/JWK/PEM/X.509 file, or an http(s) URL of a JWKS (omit to add keys later, "
        "as for an EU DCC issuer whose certificates are imported)",
    )
    parser.add_argument("--kid", help="key id for a PEM or X.509 key")
    parser.add_argument("--algorithm", choices=algorithm_choices(), help="for RSA keys")
    parser.add_argument(
        "--signing-key",
        type=Path,
        action="append",
        default=[],
        help="the private key of a key being registered (PEM), used only to prove possession",
    )
    online = parser.add_argument_group("online issuers (profile format 'online')")
    online.add_argument("--online-code-prefix", help="URL the issuer's codes start with")
    online.add_argument("--online-verify-url", help="the issuer's verification API")
    online.add_argument(
        "--online-client", type=Path, help='JSON file {"client_id", "secret"} the issuer issued'
    )
    parser.add_argument(
        "--pseudonym-key-file", type=Path, help="the issuer's pseudonym key (hex), if it uses one"
    )
    parser.add_argument(
        "--code-name",
        help="what the issuer's codes call it, if not its id (a SMART Health Cards iss URL)",
    )
    parser.add_argument("--request-id", help="reuse to retry safely (default: a new one)")


def online_endpoint(args: argparse.Namespace) -> OnlineEndpoint | None:
    given = (args.online_code_prefix, args.online_verify_url, args.online_client)
    if not any(given):
        return None
    if not all(given):
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER,
            "an online issuer needs --online-code-prefix, --online-verify-url and --online-client",
        )
    try:
        client = json.loads(args.online_client.read_text())
        client_id, secret = str(client["client_id"]), bytes.fromhex(client["secret"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER, "--online-client must hold JSON with client_id and secret (hex)"
        ) from e
    return OnlineEndpoint(args.online_code_prefix, args.online_verify_url, client_id, secret)


def algorithm_choices() -> list[str]:
    """The algorithms a key may be registered with, in a stable order."""
    return sorted(a.value for a in crypto.ADMISSIBLE)


def issuer_offers(args: argparse.Namespace, request_id: str) -> list[KeyOffer]:
    """The ``--keys`` of a registration, each with its proof of possession (none without it)."""
    if args.keys is None:
        return []
    return offers_from_file(
        read_source(args.keys),
        signing_keys(args.signing_key),
        issuer=args.id,
        request_id=request_id,
        kid=args.kid,
        algorithm=crypto.Algorithm(args.algorithm) if args.algorithm else None,
    )


def signing_keys(paths: list[Path]) -> list[crypto.PrivateKey]:
    """Private keys for proofs of possession, whatever their algorithm."""
    keys = []
    for path in paths:
        data = path.read_bytes()
        for algorithm in sorted(crypto.ADMISSIBLE, key=lambda a: a.value):
            try:
                keys.append(crypto.PrivateKey.from_pem(data, algorithm))
                break
            except (ConfigurationInvalid, ValueError, TypeError):
                continue
        else:
            raise ConfigurationInvalid(Reason.ERR_POP, f"{path.name} is not a usable private key")
    return keys


def register_issuer_command(args: argparse.Namespace, request_id: str) -> RegisterIssuer:
    """The registration the ``add_issuer_options`` describe (keys proven for ``request_id``)."""
    return RegisterIssuer(
        issuer_id=args.id,
        region=args.region,
        name=args.name,
        profile_toml=read_utf8(args.profile, Reason.ERR_PROFILE),
        keys=tuple(issuer_offers(args, request_id)),
        online=online_endpoint(args),
        pseudonym_key=read_hex(args.pseudonym_key_file) if args.pseudonym_key_file else None,
        code_name=args.code_name,
    )


def _hub(args: argparse.Namespace) -> Hub:
    return open_hub(args.state_dir)


def _submit(args: argparse.Namespace, command: Command, request_id: str | None = None) -> Change:
    with _hub(args) as hub:
        return hub.registrar.submit(local_actor(), request_id or new_request_id(), command)


def _attestation_key(args: argparse.Namespace) -> int:
    with _hub(args) as hub:
        if args.action == "new":
            kid, changes = new_attestation_key(hub, local_actor())
            for change in changes:
                print(f"audit #{change.audit.seq}: {change.audit.detail}")
            print(
                f"attestation key {kid} of {transfer.ISSUER} ({transfer.REGION}): trust version "
                f"{changes[-1].trust_version}; a running gateway signs with it from now on"
            )
            return EXIT_OK
        if not args.kid:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "revoke needs --kid")
        change = hub.registrar.submit(
            local_actor(),
            new_request_id(),
            RevokeKey(transfer.ISSUER, args.kid, args.reason),
        )
    print(
        f"revoked attestation key {args.kid}: trust version {change.trust_version}, audit "
        f"#{change.audit.seq}; every attestation it signed is refused from now on"
    )
    return EXIT_OK


def add_issuance_options(p: argparse.ArgumentParser, *, json_option: bool = True) -> None:
    """The filters and paging of the issuance log (here and ``huren operator attestations``,
    whose commands all have ``--json`` already)."""
    p.add_argument("--destination", help="only those made for this region")
    p.add_argument("--since", type=aware_datetime, help="only those issued at or after (ISO 8601)")
    p.add_argument("--until", type=aware_datetime, help="only those issued before (ISO 8601)")
    p.add_argument("--policy", help="only those decided by this policy id, or id@version")
    p.add_argument(
        "--code-ref", help="only the attestation with this code_ref, or those made from it"
    )
    p.add_argument(
        "--before", type=int, default=0, help="only entries below this #seq (the next page)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=transfer.DEFAULT_LOG_PAGE,
        help=f"at most this many, newest first (at most {transfer.MAX_LOG_PAGE})",
    )
    if json_option:
        p.add_argument("--json", action="store_true", help="one JSON object per attestation")


def issuance_query(args: argparse.Namespace) -> transfer.IssuanceQuery:
    """The query the issuance log options ask.

    Raises:
        ConfigurationInvalid: naming the option that cannot be.
    """
    policy_id, _, version = (args.policy or "").partition("@")
    try:
        destination = parse_region_code(args.destination) if args.destination else None
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, f"--destination: {e}") from e
    if version and not version.isdigit():
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER, f"--policy: {args.policy[:64]!r} is not ID or ID@VERSION"
        )
    try:
        return transfer.IssuanceQuery(
            before=args.before,
            limit=args.limit,
            destination=destination,
            issued_from=args.since,
            issued_until=args.until,
            policy_id=policy_id,
            policy_version=int(version or 0),
            code_ref=args.code_ref or "",
        )
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e


def print_issuances(page: transfer.IssuancePage, as_json: bool) -> None:
    """A page of the issuance log: one line (or JSON object) per attestation, newest first,
    then, for people, how many the log keeps and how to ask for the next page."""
    for seq, issuance in page.entries:
        if as_json:
            print(json.dumps(issuance_json(seq, issuance), ensure_ascii=False))
        else:
            print(
                f"#{seq} {issuance.issued_at.isoformat()} {issuance.code_ref} for "
                f"{issuance.destination} under {issuance.policy}, expires "
                f"{issuance.expires_at.isoformat()}, key {issuance.kid}, sources "
                f"{' '.join(issuance.sources)}"
            )
    if not as_json:
        more = f"; older ones: --before {page.next_before}" if page.next_before else ""
        print(
            f"{len(page.entries)} shown of {page.kept} kept (the log keeps the latest "
            f"{page.max_kept}){more}"
        )


def _attestations(args: argparse.Namespace) -> int:
    query = issuance_query(args)
    with _hub(args) as hub:
        page = hub.attestations().log.page(query)
    print_issuances(page, args.json)
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    files = initialise(args.state_dir, local_actor())
    print(
        f"created a registry in {files.directory} (audit entry 1); hand "
        f"{files.trust_list_public.name} to whoever verifies trust lists"
    )
    return EXIT_OK


def _add_issuer(args: argparse.Namespace) -> int:
    request_id = args.request_id or new_request_id()
    command = register_issuer_command(args, request_id)
    change = _submit(args, command, request_id)
    print(
        f"registered issuer {args.id} ({args.region}): {change.audit.detail}; "
        f"trust version {change.trust_version}"
    )
    return EXIT_OK


_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def _certificates(data: bytes) -> list[bytes]:
    """The certificates in a file: each PEM block of a bundle, or the one DER certificate."""
    if _PEM_CERTIFICATE not in data:
        return [data]
    return [_PEM_CERTIFICATE + block for block in data.split(_PEM_CERTIFICATE)[1:]]


def _der(certificate: bytes) -> bytes:
    """A PEM certificate's DER bytes (what identifies it), or the bytes as they are."""
    if not certificate.startswith(_PEM_CERTIFICATE):
        return certificate
    body = certificate[len(_PEM_CERTIFICATE) :].split(b"-----END", 1)[0]
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except ValueError:
        return certificate


def _import_certificates(args: argparse.Namespace) -> int:
    """Signer certificates come from a trust list the operator obtained (the EU DCC gateway,
    a national list): nobody here holds their private keys, so there is no proof of
    possession. Only issuers whose profile ties key ids to certificates take keys this way;
    the key id is the certificate's, its extended key usage restricts what it may sign, and a
    certificate that has expired still verifies what it signed while it was valid.

    Certificates the issuer already holds are skipped; the others are imported up to
    MAX_CERTIFICATES_PER_CHANGE in one audited change (one new trust version per change, not
    per certificate). A certificate the registry refuses (a key algorithm the profile does not
    allow, say) is reported and left out; the others are imported, and the exit status is 1."""
    with _hub(args) as hub:
        held = hub.store.state
        pending: list[_Certificate] = []
        already = 0
        for path in args.files:
            for number, certificate in enumerate(_certificates(path.read_bytes()), 1):
                item = _Certificate(f"{path.name} certificate {number}", _der(certificate))
                holder = held.certificate_holder(item.sha256)
                if (
                    holder is not None
                    and holder.issuer == args.issuer
                    and holder.status is not KeyStatus.REVOKED
                ):
                    already += 1  # importing the same certificate again changes nothing
                    continue
                pending.append(item)
        # Sorted out in memory first, by the Registrar's own checks: submitting them one by one
        # would audit a refused change for each and soon exhaust the denial budget.
        # Each is read once, there: the changes and the lines printed take it as read.
        admitted, screened = screen_certificates(held, args.issuer, [c.der for c in pending])
        for position, error in sorted(screened.items()):
            _report_refused(pending[position], error)
        passed = [_Read(c, admitted[n]) for n, c in enumerate(pending) if n in admitted]
        imported, refused = 0, len(screened)
        for start in range(0, len(passed), MAX_CERTIFICATES_PER_CHANGE):
            done, failed = _import_batch(
                hub, args.issuer, passed[start : start + MAX_CERTIFICATES_PER_CHANGE]
            )
            imported, refused = imported + done, refused + failed
    print(f"{imported} imported, {already} already held, {refused} refused")
    return EXIT_FAILED if refused else EXIT_OK


@dataclass(frozen=True)
class _Certificate:
    """One certificate of the files being imported, and where it came from."""

    label: str
    der: bytes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()


@dataclass(frozen=True)
class _Read:
    """A certificate the screening admitted, as the Registrar's screening read it."""

    given: _Certificate
    certificate: SignerCertificate


def _report_refused(certificate: _Certificate, error: ConfigurationInvalid) -> None:
    # A CertificateRefused names the position within its change: the label says it better.
    reason = str(error).split(": ", 1)[1] if isinstance(error, CertificateRefused) else str(error)
    print(f"huren: {certificate.label} refused: {error.reason.value}: {reason}", file=sys.stderr)


def _import_batch(hub: Hub, issuer: str, batch: list[_Read]) -> tuple[int, int]:
    """Import ``batch`` in as few changes as it takes: a refused certificate is reported and
    left out, and the rest tried again. Returns how many were imported and refused.

    The request id is the issuer's and the certificates' (DER) digests, whatever their
    encoding: the same import again is the same request."""
    refused = 0
    while batch:
        digests = b"".join(c.given.sha256 for c in batch)
        command: ImportCertificate | ImportCertificates
        if len(batch) == 1:
            command = ImportCertificate(issuer, batch[0].certificate)
            request_id = f"dsc-{issuer}-{digests.hex()[:32]}"
        else:
            command = ImportCertificates(issuer, tuple(c.certificate for c in batch))
            request_id = f"dscs-{issuer}-{hashlib.sha256(digests).hexdigest()[:32]}"
        try:
            change = hub.registrar.submit(local_actor(), request_id, command)
        except ConfigurationInvalid as e:
            if e.reason is Reason.ERR_POP:  # the issuer takes no certificates at all
                raise
            position = e.position if isinstance(e, CertificateRefused) else None
            if position is None and len(batch) > 1:
                raise  # not one certificate's fault (the issuer was retired, say)
            bad = batch[position or 0]
            _report_refused(bad.given, e)
            refused += 1
            batch = [c for c in batch if c is not bad]
            continue
        for certificate in batch:
            key = certificate.certificate.key_of(IssuerId(issuer))
            print(f"{describe_certificate_key(key)}: trust version {change.trust_version}")
        return len(batch), refused
    return 0, refused


def _create_region(args: argparse.Namespace) -> int:
    change = _submit(args, CreateRegion(args.region, args.name))
    print(f"created region {args.region}; trust version {change.trust_version}")
    return EXIT_OK


def _create_operator(args: argparse.Namespace) -> int:
    change = _submit(args, CreateOperator(args.name, args.region, args.cert.read_bytes()))
    role = f"operator of {args.region}" if args.region else "hub administrator"
    print(f"pinned {args.name} as {role}; audit entry {change.audit.seq}")
    return EXIT_OK


def _add_replica(args: argparse.Namespace) -> int:
    certificate = read_tls_file(args.certificate).content
    change = _submit(args, AddReplica(args.name, certificate))
    print(
        f"pinned replica {args.name}: {change.audit.detail}; trust version "
        f"{change.trust_version}, audit entry {change.audit.seq}"
    )
    return EXIT_OK


def _remove_replica(args: argparse.Namespace) -> int:
    change = _submit(args, RemoveReplica(args.name))
    print(
        f"removed replica {args.name}: its next fetch of the replica secrets is refused; trust "
        f"version {change.trust_version}, audit entry {change.audit.seq}"
    )
    return EXIT_OK


def _list_replicas(args: argparse.Namespace) -> int:
    with _hub(args) as hub:
        replicas = replica_views(hub.store.state.snapshot())
    print_replicas(replicas, args.json)
    return EXIT_OK


def print_replicas(replicas: list[ReplicaView], as_json: bool) -> None:
    """The replicas, one line (or JSON object) each (here and ``huren operator list-replicas``)."""
    for r in replicas:
        if as_json:
            print(json.dumps({"name": r.name, "key_sha256": r.spki_sha256, "active": r.active}))
        else:
            print(f"{r.name}\t{'active' if r.active else 'removed'}\tkey {r.spki_sha256[:16]}...")
    if not replicas and not as_json:
        print("no replica is pinned")


def _retire_issuer(args: argparse.Namespace) -> int:
    change = _submit(args, RetireIssuer(args.issuer, args.reason))
    print(f"retired issuer {args.issuer}; audit entry {change.audit.seq}")
    return EXIT_OK


def _accept_rollback(args: argparse.Namespace) -> int:
    with open_hub(args.state_dir, accept_rollback=local_actor()) as hub:
        if hub.store.problem is not None:
            print(f"huren: the registry does not verify: {hub.store.problem}", file=sys.stderr)
            return EXIT_ERROR
        if hub.store.rolled_back is None:
            print("the registry is not older than its state record: nothing to accept")
            return EXIT_OK
        last = hub.store.last_entry
        print(
            f"accepted: continuing from this registry, audit entry {last.seq if last else 0}, "
            f"trust version {hub.store.state.version}"
        )
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    """``huren registry migrate``: see gateway.storage.migrate."""
    files = StateFiles(args.state_dir)
    if not files.database.is_file():
        raise StorageUnavailable(f"no registry in {args.state_dir}")
    private = _make_private(files)
    if not files.subject_key.exists() and not files.link_key.exists():
        files.create_identities()  # an older huren made them on first serve: none was used
        private.append("new identity secrets subject.key and link.key")
    record = StateRecord(files.state_record, trust_list_key(files))
    done = migrate(files.database, record, local_actor(), system_clock())
    if done.backup is None:
        print(f"the registry in {args.state_dir} has schema {done.to_version}: nothing to do")
        return EXIT_OK
    with open_hub(args.state_dir) as hub:
        if hub.store.problem is not None:
            problem = hub.store.problem
            print(f"huren: the upgraded registry does not verify: {problem}", file=sys.stderr)
            return EXIT_ERROR
        version = hub.store.state.version
    made = f"; {', '.join(private)}" if private else ""
    print(
        f"upgraded {files.database} from schema {done.from_version} to {done.to_version} "
        f"(audit entry {done.entry}, trust version {version}); the schema-{done.from_version} "
        f"file is kept as {done.backup.name}{made}"
    )
    return EXIT_OK


def _make_private(files: StateFiles) -> list[str]:
    """An older huren left the state directory readable by others; the current one refuses
    that. Made private here (0700, files 0600), and said so."""
    changed = []
    if files.directory.stat().st_mode & 0o077:
        files.directory.chmod(0o700)
        changed.append(f"{files.directory} made private (0700)")
    for path in sorted(files.directory.iterdir()):
        if path.is_file() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
            changed.append(f"{path.name} made private (0600)")
    return changed


def _read_registry(args: argparse.Namespace) -> SqliteRegistry:
    """The registry of ``--db`` (a file alone, a backup say) or ``--state-dir`` (with its state
    record), for reading: never created, never written."""
    if args.db is not None:
        return SqliteRegistry(args.db)
    files = StateFiles(args.state_dir)
    record = None
    if files.trust_list_key.is_file():
        key = crypto.PrivateKey.from_pem(files.trust_list_key.read_bytes(), crypto.Algorithm.ES256)
        record = StateRecord(files.state_record, key)
    return SqliteRegistry(files.database, record=record)


def _audit_verify(args: argparse.Namespace) -> int:
    with _read_registry(args) as store:
        report = store.verify_audit()
    if report.intact:
        print(f"audit chain intact: {report.entries} entries, head {report.head[:16]}")
        return EXIT_OK
    if report.kind in ("file", "schema"):
        print(f"huren: {store.path.name} cannot be verified: {report.problem}", file=sys.stderr)
        return EXIT_ERROR
    if report.kind == "rollback":
        print(f"registry OLDER than its state record: {report.problem}")
        return EXIT_FAILED
    print(f"audit chain BROKEN at entry {report.broken_at}: {report.problem}")
    return EXIT_FAILED


def _audit_log(args: argparse.Namespace) -> int:
    with _read_registry(args) as store:
        for entry in store.audit_entries(after=args.after, limit=args.limit):
            if args.json:
                print(
                    json.dumps(
                        {
                            "seq": entry.seq,
                            "at": entry.at.isoformat(),
                            "actor": entry.actor,
                            "action": entry.action,
                            "target": entry.target,
                            "outcome": entry.outcome,
                            "detail": entry.detail,
                            "state_digest": entry.state_digest,
                            "entry_hash": entry.entry_hash,
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                print(
                    f"{entry.seq:>5} {entry.at:%Y-%m-%d %H:%M:%S} {entry.outcome:<7} "
                    f"{entry.actor} {entry.action} {entry.target}: {entry.detail}"
                )
    return EXIT_OK


def read_trust_list_key(path: Path) -> crypto.PublicKey:
    """The gateway's trust-list public key from ``path``: the JWK the gateway writes
    (``trustlist-key.jwk``) or the same key as a PEM ``PUBLIC KEY``.

    Raises:
        ConfigurationInvalid: naming the file, if it holds anything else.
    """
    data = _bounded(path, MAX_KEY_FILE_BYTES).lstrip()
    where = "the gateway's trustlist-key.jwk, in its state folder"
    if data.startswith(b"{"):
        try:
            return crypto.load_jwk(json.loads(data))
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
            raise ConfigurationInvalid(
                Reason.ERR_KEY_WEAK, f"{path}: not a JWK (give {where})"
            ) from None
    if data.startswith(b"-----BEGIN CERTIFICATE"):
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK,
            f"{path} holds a certificate, not the trust-list key (give {where})",
        )
    if data.startswith(b"-----BEGIN") and b"PRIVATE KEY" in data:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_PRIVATE, f"{path} is a private key: give the public one ({where})"
        )
    if data.startswith(b"-----BEGIN"):
        return crypto.load_pem(data, crypto.Algorithm.ES256)
    raise ConfigurationInvalid(
        Reason.ERR_KEY_WEAK, f"{path}: neither a JWK nor a PEM public key (give {where})"
    )


def _bounded(path: Path, limit: int) -> bytes:
    """``path``'s bytes, at most ``limit``.

    Raises:
        ConfigurationInvalid: if it is larger.
    """
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigurationInvalid(Reason.ERR_TOO_LARGE, f"{path} is over {limit} bytes")
    return data


def _trustlist_verify(args: argparse.Namespace) -> int:
    key = read_trust_list_key(args.key)
    try:
        text = _bounded(args.file, MAX_TRUST_LIST_CHARS).decode("ascii")
    except UnicodeDecodeError:
        raise ConfigurationInvalid(
            Reason.ERR_ENCODING,
            f"{args.file} is not a trust list: it is not text (a trust list is a compact JWS, as "
            "`huren operator trust-list` saves it)",
        ) from None
    try:
        content = verify_trust_list(text, key)
    except ConfigurationInvalid as e:
        print(f"trust list does NOT verify: {e}")
        return EXIT_FAILED
    keys = sum(len(i["keys"]) for i in content["issuers"])
    print(
        f"trust list verifies: version {content['version']}, issued {content['issued_at']}, "
        f"fresh until {content.get('fresh_until')}, {len(content['issuers'])} issuers, {keys} keys"
    )
    return EXIT_OK
