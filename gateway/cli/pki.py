"""``huren pki``: a development PKI for mutual TLS (production brings its own, see
docs/operators.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gateway.cli.common import DEFAULT_PKI, EXIT_OK, Subparsers
from gateway.clients.tls import operator_files, replica_files
from gateway.crypto import pki
from gateway.errors import ConfigurationInvalid
from gateway.model import Reason, parse_region_code

DEMO_OPERATORS = {
    "hangzhou-ops": "330100",
    "zhejiang-ops": "330000",
    "beijing-ops": "110000",
    "shanghai-ops": "310000",
    "guangdong-ops": "440000",
    "macau-ops": "820000",
    "hubei-ops": "420000",
}


def register(commands: Subparsers) -> None:
    p = commands.add_parser("pki", help="a development PKI for mutual TLS")
    sub = p.add_subparsers(dest="pki_command", required=True, metavar="ACTION")
    init = sub.add_parser(
        "init", help="a CA, the gateway's certificate, the hub administrator and demo operators"
    )
    init.add_argument(
        "directory", type=Path, nargs="?", default=DEFAULT_PKI, help="the folder to create"
    )
    init.add_argument(
        "--host", action="append", default=[], help="gateway host name or address (repeatable)"
    )
    init.add_argument("--admin", default="hub-admin", help="the hub administrator's name")
    init.set_defaults(handler=_init)
    issue = sub.add_parser("issue", help="a certificate for one more operator")
    issue.add_argument(
        "directory", type=Path, nargs="?", default=DEFAULT_PKI, help="a `huren pki init` folder"
    )
    issue.add_argument("--name", required=True, help="the operator's name")
    issue.add_argument("--region", help="omit for a hub administrator")
    issue.add_argument(
        "--replica",
        action="store_true",
        help="a verifier replica's certificate (replicas/NAME.pem; pin it with `huren registry "
        "replica add`)",
    )
    issue.set_defaults(handler=_issue)


def _write(certificate: Path, key: Path, issued: pki.Issued) -> None:
    """Write a certificate and its key (0600); never over existing files."""
    certificate.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(issued.key_pem)
    certificate.write_bytes(issued.certificate_pem)


def _ca(directory: Path) -> pki.Issued:
    try:
        return pki.Issued((directory / "ca.pem").read_bytes(), (directory / "ca.key").read_bytes())
    except OSError as e:
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER, f"no CA in {directory}: run `huren pki init` first"
        ) from e


def create_development_pki(
    directory: Path, *, admin: str = "hub-admin", hosts: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """A CA, the gateway's certificate, the hub administrator's and one operator per demo region.
    Returns the names the gateway's certificate holds (``localhost``, ``127.0.0.1``, ``hosts``).

    Raises:
        ConfigurationInvalid: if ``directory`` already holds a CA.
    """
    if (directory / "ca.pem").exists():
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER, f"{directory} already holds a CA; use `huren pki issue`"
        )
    ca = pki.new_ca()
    _write(directory / "ca.pem", directory / "ca.key", ca)
    names = tuple(dict.fromkeys(("localhost", "127.0.0.1", *hosts)))
    server = pki.issue_server(ca, list(names))
    _write(directory / "gateway.pem", directory / "gateway.key", server)
    _write(*operator_files(directory, admin), pki.issue_operator(ca, admin, None))
    for name, region in DEMO_OPERATORS.items():
        _write(*operator_files(directory, name), pki.issue_operator(ca, name, region))
    return names


def _init(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    names = create_development_pki(directory, admin=args.admin, hosts=tuple(args.host))
    print(f"development PKI in {directory}: ca.pem, gateway.pem ({', '.join(names)})")
    print(f"  hub administrator: operators/{args.admin}.pem")
    print(f"  regional operators: {', '.join(f'{n} ({r})' for n, r in DEMO_OPERATORS.items())}")
    return EXIT_OK


def _issue(args: argparse.Namespace) -> int:
    if args.replica:
        return _issue_replica(args)
    try:
        region = parse_region_code(args.region) if args.region else None
        issued = pki.issue_operator(_ca(args.directory), args.name, region)
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
    certificate, key = operator_files(args.directory, args.name)
    if certificate.exists() or key.exists():
        # Overwriting would lock out an operator whose key the registry has pinned.
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER,
            f"operators/{args.name} already exists; pick another name (then create-operator "
            "it and remove-operator the old one)",
        )
    _write(certificate, key, issued)
    role = f"operator of {region}" if region else "hub administrator"
    print(f"{role} {args.name}: {args.directory}/operators/{args.name}.pem")
    return EXIT_OK


def _issue_replica(args: argparse.Namespace) -> int:
    if args.region:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, "a replica has no region")
    try:
        issued = pki.issue_replica(_ca(args.directory), args.name)
    except ValueError as e:
        raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
    certificate, key = replica_files(args.directory, args.name)
    if certificate.exists() or key.exists():
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER, f"replicas/{args.name} already exists; pick another name"
        )
    _write(certificate, key, issued)
    print(f"replica {args.name}: {certificate} and {key.name} (pin it: huren registry replica add)")
    return EXIT_OK
