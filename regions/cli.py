"""The ``huren region`` and ``huren demo`` commands (plugged into ``huren`` by entry point)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from gateway.clock import system_clock
from gateway.lifecycle import until_terminated
from regions import REGIONS

DEFAULT_STATE = Path(".huren/regions")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    region = commands.add_parser("region", help="run a simulated regional issuer")
    sub = region.add_subparsers(dest="region_command", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="serve a region's issuer API over HTTP")
    serve.add_argument("name", choices=REGIONS, help="which region")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument(
        "--state-dir", type=Path, help=f"keys and records (default {DEFAULT_STATE}/NAME)"
    )
    serve.add_argument(
        "--link-key-file",
        type=Path,
        help="the hub's linking key (hex), for regions that carry masked-link identities",
    )
    serve.add_argument("--public-url", help="the base URL travellers' codes point to (Zhejiang)")
    hub = serve.add_argument_group("转码: converting the hub's attestations (POST /api/transfers)")
    hub.add_argument(
        "--hub", metavar="HOST:PORT", help="the hub's verification address (trust lists)"
    )
    hub.add_argument("--hub-key", type=Path, help="the hub's trustlist-key.jwk (pinned)")
    hub.add_argument("--hub-ca", type=Path, help="the CA of the hub's TLS certificate")
    hub.add_argument(
        "--transfer-peer",
        action="append",
        default=[],
        metavar="CODE=URL",
        help="offer 转码 to region CODE on the traveller's page, converting at its issuer's URL "
        "(repeatable; needs --hub)",
    )
    serve.set_defaults(handler=_serve)

    onboard = sub.add_parser(
        "register",
        help="register a running region with a gateway, as its operator (mutual TLS)",
    )
    onboard.add_argument("name", choices=REGIONS, help="which region")
    onboard.add_argument("--url", required=True, help="the region's service URL")
    onboard.add_argument("--state-dir", type=Path, help=f"default {DEFAULT_STATE}/NAME")
    onboard.add_argument("--gateway", default="127.0.0.1:50052", help="the registry address")
    onboard.add_argument(
        "--pki", type=Path, default=Path(".huren/pki"), help="a `huren pki init` folder"
    )
    onboard.add_argument("--as", dest="operator", required=True, help="operator name in --pki")
    onboard.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to keep trying to reach a region that is still starting",
    )
    onboard.set_defaults(handler=_register)

    declare = sub.add_parser(
        "declare", help="declare as a traveller at a running region and print the code it issues"
    )
    declare.add_argument("name", choices=REGIONS, help="which region")
    declare.add_argument("--url", required=True, help="the region's service URL")
    declare.add_argument("--traveller", required=True, help="the traveller's name, such as 王芳")
    declare.add_argument(
        "--id-number", required=True, help="an 18-character resident id number (a test one)"
    )
    declare.add_argument("--phone", default="13800000001", help="a mobile number")
    declare.add_argument(
        "--symptom", action="append", default=[], help="a symptom, such as 发热 (repeatable)"
    )
    declare.add_argument("--contact", action="store_true", help="declare a close contact")
    declare.add_argument("--json", action="store_true", help="print the region's whole answer")
    declare.set_defaults(handler=_declare)

    demo = commands.add_parser(
        "demo", help="start the regions and a gateway on loopback and run a scenario"
    )
    demo.add_argument("--json", action="store_true", help="print only the verdicts, as JSON")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="after the scenario, keep the gateway and the regions running (their pages open in "
        "a browser on 127.0.0.1) until Ctrl-C",
    )
    demo.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    from regions.common.runner import start_region

    link_key = bytes.fromhex(args.link_key_file.read_text().strip()) if args.link_key_file else None
    transfers = None
    if args.hub or args.hub_key:
        from gateway.cli.local import read_trust_list_key
        from gateway.clients.hubfeed import HubFeed
        from gateway.clients.tls import TlsCredentials
        from regions.common.transfers import HubTrust, Transfers

        if not (args.hub and args.hub_key and link_key):
            print(
                "huren region serve: converting attestations needs --hub, --hub-key and "
                "--link-key-file",
                file=sys.stderr,
            )
            return 2
        credentials = TlsCredentials(args.hub_ca.read_bytes()) if args.hub_ca else None
        feed = HubFeed(args.hub, credentials)
        transfers = Transfers(HubTrust(read_trust_list_key(args.hub_key), feed), link_key)
    outbound = None
    if args.transfer_peer:
        from regions.common.outbound import Outbound, parse_peers

        if transfers is None:
            print("huren region serve: --transfer-peer needs --hub", file=sys.stderr)
            return 2
        try:
            peers = parse_peers(args.transfer_peer)
        except ValueError as e:
            print(f"huren region serve: --transfer-peer {e}", file=sys.stderr)
            return 2
        outbound = Outbound(transfers.trust, peers, args.hub, credentials)

    async def run() -> None:
        running = await start_region(
            args.name,
            state_dir=args.state_dir or DEFAULT_STATE / args.name,
            clock=system_clock,
            link_key=link_key,
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            transfers=transfers,
            outbound=outbound,
        )
        spec = running.region.spec
        kid = running.secrets.kid
        print(f"region {spec.name} ({spec.code}) listening on {running.url} kid={kid}", flush=True)
        await until_terminated()
        await running.stop()

    asyncio.run(run())
    return 0


def _register(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from gateway.clients import RegistryClient, TlsCredentials, new_request_id
    from regions.common.onboarding import registration_command

    state_dir = args.state_dir or DEFAULT_STATE / args.name
    url = args.url.rstrip("/")
    deadline = time.monotonic() + args.wait
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/keys", timeout=10) as response:
                jwks = response.read(1 << 20)
            break
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() >= deadline:
                raise OSError(f"cannot reach region {args.name} at {url}: {e.reason}") from e
            time.sleep(0.2)
    request_id = new_request_id()
    command = registration_command(args.name, url, state_dir, jwks, request_id)
    credentials = TlsCredentials.from_pki(args.pki, args.operator)
    with RegistryClient(args.gateway, credentials) as client:
        change = client.submit(request_id, command)
    print(
        f"registered {args.name}: {change.audit.detail} "
        f"(trust version {change.trust_version}, audit entry {change.audit.seq})"
    )
    return 0


def _declare(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    body = {
        "id_number": args.id_number,
        "name": args.traveller,
        "phone": args.phone,
        "trips": [],
        "symptoms": args.symptom,
        "contact": args.contact,
    }
    request = urllib.request.Request(
        f"{args.url.rstrip('/')}/api/declarations",
        data=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as e:
        try:
            refusal = json.loads(e.read(1 << 16))
            why = f"{refusal['error']} ({refusal.get('field', '')})"
        except (ValueError, KeyError, TypeError):
            why = f"HTTP {e.code}"
        raise OSError(f"region {args.name} refused the declaration: {why}") from None
    except urllib.error.URLError as e:
        raise OSError(f"cannot reach region {args.name} at {args.url}: {e.reason}") from e
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
    elif answer.get("code"):
        print(answer["code"])
    else:
        print(f"no code yet: the declaration {answer.get('id')} awaits its review")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from regions.demo import run_demo

    return run_demo(json_output=args.json, serve=args.serve)
