"""``huren operator ...``: every Registry call, as a regional operator or the hub administrator,
over mutual TLS with the operator's certificate and key."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from gateway.cli.common import (
    DEFAULT_REGISTRY,
    EXIT_OK,
    Subparsers,
    add_tls_options,
    aware_datetime,
    plain,
    read_source,
    read_utf8,
    tls_credentials,
)
from gateway.cli.local import (
    add_issuance_options,
    add_issuer_options,
    algorithm_choices,
    issuance_query,
    new_request_id,
    print_issuances,
    print_replicas,
    register_issuer_command,
    signing_keys,
)
from gateway.clients import RegistryClient
from gateway.clients.tls import read_tls_file
from gateway.crypto import Algorithm
from gateway.model import Reason
from gateway.registry.admission import offers_from_file
from gateway.registry.commands import (
    AddKey,
    AddReplica,
    Command,
    CreateOperator,
    CreateRegion,
    RemoveOperator,
    RemoveReplica,
    ReserveName,
    RetireIssuer,
    RetireKey,
    RevokeKey,
    SetRevocations,
    UpdateProfile,
)
from gateway.registry.model import NameKind
from gateway.registry.registrar import Change
from gateway.registry.views import IssuerView


def register(commands: Subparsers) -> None:
    operator = commands.add_parser("operator", help="registry calls as an operator (mutual TLS)")
    sub = operator.add_subparsers(dest="operator_command", required=True, metavar="ACTION")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--gateway", default=DEFAULT_REGISTRY, help="the registry address")
        p.add_argument("--json", action="store_true", help="print the answer as JSON")
        add_tls_options(p, mutual=True)
        return p

    p = command("register-issuer", "register an issuer of your region with its profile and keys")
    add_issuer_options(p)
    p.set_defaults(handler=_register_issuer)

    p = command("add-key", "add a key to an issuer (with proof of possession)")
    p.add_argument("--issuer", required=True, help="the issuer id, such as hangzhou")
    p.add_argument("--keys", required=True, help="JWK/JWKS/PEM/X.509 file or URL")
    p.add_argument("--kid", help="key id for a PEM or X.509 key")
    p.add_argument("--algorithm", choices=algorithm_choices(), help="for RSA keys")
    p.add_argument(
        "--signing-key",
        type=Path,
        action="append",
        default=[],
        required=True,
        help="the new key's private key (PEM), to prove possession; repeat for each key",
    )
    request_id_option(p)
    p.set_defaults(handler=_add_key)

    p = command("retire-key", "refuse codes issued after a time (default: now)")
    p.add_argument("--issuer", required=True, help="the issuer id, such as hangzhou")
    p.add_argument("--kid", required=True, help="the key id, as codes name it")
    p.add_argument("--at", type=aware_datetime, help="RFC 3339 time with offset")
    request_id_option(p)
    p.set_defaults(handler=_retire_key)

    p = command("revoke-key", "refuse every code the key signed, from now on")
    p.add_argument("--issuer", required=True, help="the issuer id, such as hangzhou")
    p.add_argument("--kid", required=True, help="the key id, as codes name it")
    p.add_argument("--reason", default="", help="why, for the audit log")
    request_id_option(p)
    p.set_defaults(handler=_revoke_key)

    p = command("set-revocations", "replace a key's revocation list (SMART Health Cards CRL)")
    p.add_argument("--issuer", required=True, help="the issuer id, such as hangzhou")
    p.add_argument("--kid", required=True, help="the key id, as codes name it")
    p.add_argument("--file", required=True, help="the CRL JSON file, or an http(s) URL")
    request_id_option(p)
    p.set_defaults(handler=_set_revocations)

    p = command("update-profile", "move an issuer to the next version of its profile")
    p.add_argument("--issuer", required=True, help="the issuer id, such as hangzhou")
    p.add_argument(
        "--profile", type=Path, required=True, help="the profile TOML file (its next version)"
    )
    request_id_option(p)
    p.set_defaults(handler=_update_profile)

    p = command("create-region", "create a region (hub administrator)")
    p.add_argument("--region", required=True, help="GB/T 2260 code, such as 330100")
    p.add_argument("--name", required=True, help="display name, such as 杭州市")
    request_id_option(p)
    p.set_defaults(handler=_create_region)

    p = command("create-operator", "pin an operator's certificate (hub administrator)")
    p.add_argument("--name", required=True, help="the operator's name, as its certificate says")
    p.add_argument("--region", help="omit for another hub administrator")
    p.add_argument(
        "--operator-cert", type=Path, required=True, help="the operator's certificate (PEM)"
    )
    request_id_option(p)
    p.set_defaults(handler=_create_operator)

    p = command("remove-operator", "unpin an operator at once (hub administrator)")
    p.add_argument("--name", required=True, help="the operator's name")
    request_id_option(p)
    p.set_defaults(handler=_remove_operator)

    p = command(
        "add-replica",
        "pin a verifier replica's certificate: it may then fetch the replica secrets (hub "
        "administrator)",
    )
    p.add_argument("--name", required=True, help="the replica's name, as its certificate says")
    p.add_argument(
        "--certificate",
        type=Path,
        required=True,
        help="its certificate (spiffe://huren.local/replica/NAME; `huren pki issue --replica "
        "NAME` makes one)",
    )
    request_id_option(p)
    p.set_defaults(handler=_add_replica)

    p = command(
        "remove-replica",
        "unpin a replica at once: its next fetch of the replica secrets is refused (hub "
        "administrator)",
    )
    p.add_argument("--name", required=True, help="the replica's name")
    request_id_option(p)
    p.set_defaults(handler=_remove_replica)

    p = command("list-replicas", "the replicas pinned, and those removed (hub administrator)")
    p.set_defaults(handler=_list_replicas)

    p = command(
        "attestations",
        "the hub's issuance log of transfer attestations, newest first (hub administrator)",
    )
    add_issuance_options(p, json_option=False)
    p.set_defaults(handler=_attestations)

    p = command(
        "reserve-name",
        "give a profile id, policy id or issuer name to a region before it uses it (hub "
        "administrator)",
    )
    p.add_argument(
        "--kind", required=True, choices=[k.value for k in NameKind], help="what kind of name"
    )
    p.add_argument("--name", required=True, help="the name to reserve")
    p.add_argument("--region", required=True, help="the region it is reserved for")
    request_id_option(p)
    p.set_defaults(handler=_reserve_name)

    p = command(
        "retire-issuer",
        "stop an issuer for good: its codes are refused, its names stay taken (hub administrator)",
    )
    p.add_argument("--issuer", required=True, help="the issuer id, such as hangzhou")
    p.add_argument("--reason", default="", help="why, for the audit log")
    request_id_option(p)
    p.set_defaults(handler=_retire_issuer)

    p = command("list-issuers", "list issuers (optionally of one region)")
    p.add_argument("--region", default="", help="only issuers of this region")
    p.set_defaults(handler=_list_issuers)

    p = command("get-issuer", "an issuer's keys and every version of its profile")
    p.add_argument("--issuer", required=True, help="the issuer id, such as hangzhou")
    p.set_defaults(handler=_get_issuer)

    p = command("trust-list", "fetch the signed trust list")
    p.add_argument("--out", type=Path, help="write the compact JWS here")
    p.set_defaults(handler=_trust_list)

    p = command("audit", "list audit entries")
    p.add_argument("--after", type=int, default=0, help="entries after this sequence number")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (at most 1000)")
    p.set_defaults(handler=_audit)


def request_id_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--request-id",
        help="your id for this request (default: a new UUID, printed); reuse it to retry safely",
    )


def _client(args: argparse.Namespace) -> RegistryClient:
    return RegistryClient(args.gateway, tls_credentials(args))


def print_change(args: argparse.Namespace, request_id: str, change: Change) -> int:
    """A change's answer: JSON with ``--json``, else one line with its audit entry."""
    if args.json:
        print(json.dumps(plain(change), ensure_ascii=False))
        return EXIT_OK
    entry = change.audit
    print(
        f"{entry.action} {entry.target}: {entry.detail} "
        f"(trust version {change.trust_version}, audit entry {entry.seq}, request {request_id})"
    )
    return EXIT_OK


def _send(args: argparse.Namespace, command: Command, request_id: str | None = None) -> int:
    request_id = request_id or args.request_id or new_request_id()
    with _client(args) as client:
        return print_change(args, request_id, client.submit(request_id, command))


def _register_issuer(args: argparse.Namespace) -> int:
    request_id = args.request_id or new_request_id()
    return _send(args, register_issuer_command(args, request_id), request_id)


def _add_key(args: argparse.Namespace) -> int:
    request_id = args.request_id or new_request_id()
    offers = offers_from_file(
        read_source(args.keys),
        signing_keys(args.signing_key),
        issuer=args.issuer,
        request_id=request_id,
        kid=args.kid,
        algorithm=Algorithm(args.algorithm) if args.algorithm else None,
    )
    with _client(args) as client:
        for offer in offers:
            print_change(args, request_id, client.submit(request_id, AddKey(args.issuer, offer)))
    return EXIT_OK


def _retire_key(args: argparse.Namespace) -> int:
    return _send(args, RetireKey(args.issuer, args.kid, args.at))


def _revoke_key(args: argparse.Namespace) -> int:
    return _send(args, RevokeKey(args.issuer, args.kid, args.reason))


def _set_revocations(args: argparse.Namespace) -> int:
    return _send(args, SetRevocations(args.issuer, args.kid, read_source(args.file)))


def _update_profile(args: argparse.Namespace) -> int:
    text = read_utf8(args.profile, Reason.ERR_PROFILE)
    return _send(args, UpdateProfile(args.issuer, text))


def _create_region(args: argparse.Namespace) -> int:
    return _send(args, CreateRegion(args.region, args.name))


def _create_operator(args: argparse.Namespace) -> int:
    certificate = args.operator_cert.read_bytes()
    return _send(args, CreateOperator(args.name, args.region, certificate))


def _remove_operator(args: argparse.Namespace) -> int:
    return _send(args, RemoveOperator(args.name))


def _add_replica(args: argparse.Namespace) -> int:
    certificate = read_tls_file(args.certificate).content
    return _send(args, AddReplica(args.name, certificate))


def _remove_replica(args: argparse.Namespace) -> int:
    return _send(args, RemoveReplica(args.name))


def _list_replicas(args: argparse.Namespace) -> int:
    with _client(args) as client:
        replicas = client.list_replicas()
    print_replicas(replicas, args.json)
    return EXIT_OK


def _attestations(args: argparse.Namespace) -> int:
    query = issuance_query(args)
    with _client(args) as client:
        page = client.attestations(query)
    print_issuances(page, args.json)
    return EXIT_OK


def _reserve_name(args: argparse.Namespace) -> int:
    return _send(args, ReserveName(NameKind(args.kind), args.name, args.region))


def _retire_issuer(args: argparse.Namespace) -> int:
    return _send(args, RetireIssuer(args.issuer, args.reason))


def _list_issuers(args: argparse.Namespace) -> int:
    with _client(args) as client:
        version, issuers = client.list_issuers(args.region)
    if args.json:
        print(json.dumps({"issuers": plain(issuers), "trust_version": version}, ensure_ascii=False))
        return EXIT_OK
    print(f"trust version {version}")
    for issuer in issuers:
        keys = ", ".join(f"{k.kid} ({k.algorithm}, {k.status})" for k in issuer.keys)
        retired = f"  RETIRED {issuer.retired_at:%Y-%m-%d}" if issuer.retired_at else ""
        print(
            f"  {issuer.issuer_id:<12} {issuer.region} {issuer.name} "
            f"{issuer.profile_id}@{issuer.profile_version}  keys: {keys or 'none'}{retired}"
        )
    return EXIT_OK


def _get_issuer(args: argparse.Namespace) -> int:
    with _client(args) as client:
        record = client.get_issuer(args.issuer)
    if args.json:
        print(json.dumps(plain(record), ensure_ascii=False))
    else:
        print("\n".join(issuer_lines(record)))
    return EXIT_OK


def issuer_lines(issuer: IssuerView) -> list[str]:
    """An issuer for people: who it is, its profile versions, and each key's standing."""
    versions = ", ".join(str(p.version) for p in issuer.profiles)
    lines = [
        f"issuer {issuer.issuer_id}  {issuer.name}  region {issuer.region}  "
        f"profile {issuer.profile_id}@{issuer.profile_version} (versions {versions})"
    ]
    if issuer.code_name:
        lines.append(f"  codes call it  {issuer.code_name}")
    if issuer.online_code_prefix:
        lines.append(f"  online codes   {issuer.online_code_prefix}<token>")
    if issuer.pseudonymous:
        lines.append("  identities     sealed pseudonyms (the hub holds the issuer's key)")
    if issuer.retired_at is not None:
        why = f": {issuer.retired_reason}" if issuer.retired_reason else ""
        lines.append(f"  RETIRED        {issuer.retired_at:%Y-%m-%d %H:%M:%S} UTC{why}")
    for key in issuer.keys:
        since = f" since {key.status_since:%Y-%m-%d %H:%M}" if key.status_since else ""
        window = (
            f"  valid {_day(key.not_before)} to {_day(key.not_after)}"
            if key.not_before or key.not_after
            else ""
        )
        usage = f"  signs {', '.join(key.usage) or 'nothing'}" if key.restricted else ""
        revoked = (
            f"  {key.revoked_ids} revoked id(s), list {key.revocation_counter}"
            if key.revocation_counter
            else ""
        )
        lines.append(
            f"  key {key.kid}  {key.algorithm}  {key.status}{since}{window}{usage}{revoked}"
            f"  spki {key.spki_sha256[:16]}"
        )
    if not issuer.keys:
        lines.append("  no keys")
    return lines


def _day(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else "-"


def _trust_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        answer = client.trust_list()
    if args.out:
        args.out.write_text(answer.jws + "\n")
    if args.json:
        print(json.dumps(plain(answer)))
    elif args.out:
        print(f"trust list version {answer.version} written to {args.out}")
    else:
        print(answer.jws)
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        entries = client.audit(args.after, args.limit)
    for entry in entries:
        if args.json:
            data = plain(entry)
            del data["trust_version"]  # not carried by ListAudit
            print(json.dumps(data, ensure_ascii=False))
        else:
            print(
                f"{entry.seq:>5} {entry.at:%Y-%m-%d %H:%M:%S} {entry.outcome:<7} "
                f"{entry.actor} {entry.action} {entry.target}: {entry.detail}"
            )
    return EXIT_OK
