"""``huren recognise`` and ``huren policy ...``: mutual recognition from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.cli.common import (
    DEFAULT_GATEWAY,
    DEFAULT_REGISTRY,
    EXIT_FAILED,
    EXIT_OK,
    Subparsers,
    add_tls_options,
    aware_datetime,
    plain,
    read_codes,
    read_utf8,
    tls_credentials,
)
from gateway.cli.local import new_request_id
from gateway.cli.operator import print_change
from gateway.clients import GatewayClient, RegistryClient
from gateway.model import Colour, Reason
from gateway.policy import load_policy
from gateway.recognise import DecisionStatus
from gateway.registry.commands import SetPolicy
from gateway.report import attest_json, decision_json, decision_lines, policy_lines


def register(commands: Subparsers) -> None:
    r = commands.add_parser(
        "recognise",
        help="one colour for one traveller's codes under the destination's policy",
    )
    r.add_argument("codes", nargs="*", metavar="CODE", help="codes (or one per line on stdin)")
    r.add_argument("--at", required=True, metavar="REGION", help="the destination region code")
    r.add_argument(
        "--time",
        type=aware_datetime,
        help="instant of presentation (RFC 3339 with offset; at most 15 minutes ago)",
    )
    r.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway address host:port")
    r.add_argument("--json", action="store_true", help="the decision as one JSON object")
    add_tls_options(r, mutual=False)
    r.set_defaults(handler=_recognise)

    a = commands.add_parser(
        "attest",
        help="转码: the hub's attestation of a GREEN decision, for the traveller to carry",
    )
    a.add_argument("codes", nargs="*", metavar="CODE", help="codes (or one per line on stdin)")
    a.add_argument("--at", required=True, metavar="REGION", help="the destination region code")
    a.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway address host:port")
    a.add_argument("--json", action="store_true", help="the answer as one JSON object")
    add_tls_options(a, mutual=False)
    a.set_defaults(handler=_attest)

    policy = commands.add_parser("policy", help="precedence policies of destinations")
    sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    check = sub.add_parser("check", help="validate a policy file and say what it does")
    check.add_argument("file", type=Path, help="the policy TOML file")
    check.set_defaults(handler=_check)

    show = sub.add_parser("show", help="the policy that decides at a destination (from a gateway)")
    show.add_argument("--at", required=True, metavar="REGION", help="a region code or 'national'")
    show.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway address host:port")
    show.add_argument("--json", action="store_true", help="print the policy as JSON")
    add_tls_options(show, mutual=False)
    show.set_defaults(handler=_show)

    put = sub.add_parser("set", help="register the next version of your region's policy (mTLS)")
    put.add_argument("file", type=Path, help="the policy TOML file (its next version)")
    put.add_argument("--gateway", default=DEFAULT_REGISTRY, help="the registry address")
    put.add_argument("--request-id", help="reuse to retry safely (default: a new one)")
    put.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_tls_options(put, mutual=True)
    put.set_defaults(handler=_set)


def _recognise(args: argparse.Namespace) -> int:
    codes = read_codes(list(args.codes))
    with GatewayClient(args.gateway, tls_credentials(args)) as client:
        decision = client.recognise(codes, args.at, args.time)
    if args.json:
        print(json.dumps(decision_json(decision), ensure_ascii=False))
    else:
        print("\n".join(decision_lines(decision)))
    passed = decision.status is DecisionStatus.DECIDED and decision.colour is Colour.GREEN
    return EXIT_OK if passed else EXIT_FAILED


def _attest(args: argparse.Namespace) -> int:
    """Prints the attestation alone on standard output when one is issued (so that
    ``$(huren attest ...)`` is the code), the decision and any refusal on standard error."""
    codes = read_codes(list(args.codes))
    with GatewayClient(args.gateway, tls_credentials(args)) as client:
        outcome = client.attest(codes, args.at)
    if args.json:
        print(json.dumps(attest_json(outcome), ensure_ascii=False))
    else:
        print("\n".join(decision_lines(outcome.decision)), file=sys.stderr)
        if outcome.attestation is not None and outcome.expires_at is not None:
            print(
                f"attestation {outcome.code_ref} for {outcome.decision.destination}, expires "
                f"{outcome.expires_at.isoformat()} (set by {outcome.bound})",
                file=sys.stderr,
            )
            print(outcome.attestation)
        elif outcome.refused is not None:
            print(f"{outcome.refused.refusal.value}: {outcome.refused.detail}", file=sys.stderr)
    return EXIT_OK if outcome.attestation is not None else EXIT_FAILED


def _check(args: argparse.Namespace) -> int:
    policy = load_policy(read_utf8(args.file, Reason.ERR_POLICY))
    print("\n".join(policy_lines(policy)))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    with RegistryClient(args.gateway, tls_credentials(args)) as client:
        record = client.get_policy(args.at)
    if args.json:
        print(json.dumps(plain(record), ensure_ascii=False))
        return EXIT_OK
    print(
        f"at {record.destination}: policy {record.policy_id}@{record.policy_version}, "
        f"filed for {record.applies_from}"
    )
    if record.versions:
        current = record.versions[-1]
        print("\n".join(policy_lines(load_policy(current.policy_toml))))
        older = ", ".join(f"{v.policy_id}@{v.version}" for v in record.versions[:-1])
        if older:
            print(f"  earlier    {older}")
    else:
        print("  built in: every registered issuer recognised, the most severe colour decides")
    return EXIT_OK


def _set(args: argparse.Namespace) -> int:
    text = read_utf8(args.file, Reason.ERR_POLICY)
    load_policy(text)  # refuse a broken file here, with the same message the gateway gives
    request_id = args.request_id or new_request_id()
    with RegistryClient(args.gateway, tls_credentials(args)) as client:
        change = client.submit(request_id, SetPolicy(text))
    return print_change(args, request_id, change)
