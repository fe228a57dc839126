#!/usr/bin/env python3
"""Does verification cost grow with the trust list? EU-DCC-style signer certificates, 10, 1,000
and 100,000 of them spread over many issuers (countries), each imported as
``huren registry import-certificates`` imports it.

For each size: the time to build the trust snapshot (the indexes verification reads), the
Python heap the registry's state holds with its keys (``tracemalloc``; the keys' OpenSSL objects
live outside it and are not counted), and the in-process ``verify_code``
rate on an ``HC1:`` code whose signer is one of the keys; reported as the ratio of each rate to
the rate with 10 keys, measured in the same run (alternating rounds, median).

Then the registry at the same sizes, on disk: a real SQLite registry filled through the
Registrar (``CreateRegion``, ``RegisterIssuer`` and ``ImportCertificates``, one change per
issuer's certificates, each audited), and for each size

- **start-up**: from starting ``huren serve`` (a new process) until its health check answers
  SERVING, every check of the registry included (integrity, audit chain, state digest); the
  median of three starts; goal under 3 s at 100,000 keys;
- **one change**: ``ImportCertificate`` of one more certificate and ``RevokeKey`` of one key
  through the Registrar (decide on a copy of the state, write, audit, state record), the
  rebuild of the serving snapshot that follows, and the time a gateway serving the same file
  takes to read and verify the registry again after a change made by another process (the host's
  ``huren registry`` commands); the median of five of each.

Usage: python scripts/bench_scale.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import os
import re
import statistics
import string
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cbor2  # noqa: E402
import grpc  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from gateway import replica, trustlist  # noqa: E402
from gateway.clock import system_clock  # noqa: E402
from gateway.codecs import cose, strictjson, textform  # noqa: E402
from gateway.crypto import Algorithm, PrivateKey, pki  # noqa: E402
from gateway.hub import initialise, open_hub  # noqa: E402
from gateway.identity import IdentityKeys  # noqa: E402
from gateway.limits import Limits  # noqa: E402
from gateway.model import IssuerId, RegionCode, Status  # noqa: E402
from gateway.profiles import load_profile  # noqa: E402
from gateway.registry import Issuer, TrustSnapshot, TrustState  # noqa: E402
from gateway.registry.admission import certificate_key  # noqa: E402
from gateway.registry.authority import Actor, Role  # noqa: E402
from gateway.registry.commands import (  # noqa: E402
    CreateRegion,
    ImportCertificate,
    ImportCertificates,
    RegisterIssuer,
    RevokeKey,
)
from gateway.registry.model import Region  # noqa: E402
from gateway.verify import verify_code  # noqa: E402

PROFILE_TEXT = (ROOT / "gateway" / "profiles" / "formats" / "eu-dcc.toml").read_text()
PROFILE = load_profile(PROFILE_TEXT)
LOCAL = Actor(Role.LOCAL, "bench")
STARTS, CHANGES = 3, 5
SERVE = (sys.executable, "-m", "gateway", "serve", "--insecure", "--listen", "127.0.0.1:0")
COUNTRIES = [a + b for a, b in itertools.product(string.ascii_uppercase, repeat=2) if a + b != "CN"]


def _issuers_for(keys: int) -> int:
    """How many issuers ``keys`` certificates are spread over: one per key up to 10, then
    about one issuer per hundred keys (at most 1,000)."""
    return min(keys, max(10, keys // 100), 1000)


def build(keys: int) -> tuple[TrustState, tuple[str, bytes, PrivateKey]]:
    """A state with ``keys`` signer certificates over many issuers, each of its own key pair
    (as a national list holds them: their public keys are what a trust list cannot compress);
    and one signer (country, certificate, private key) from the middle."""
    now = system_clock()
    state = TrustState()
    state.add_profile(PROFILE, PROFILE_TEXT)
    issuers = _issuers_for(keys)
    for country in COUNTRIES[:issuers]:
        state.add_region(Region(RegionCode(country), country))
    for n in range(issuers):
        country = COUNTRIES[n % len(COUNTRIES)]
        issuer = Issuer(
            IssuerId(f"eu-dcc-{n}"), RegionCode(country), country, PROFILE.id, PROFILE.version
        )
        state.add_issuer(issuer)
    made, key = certificates(keys, now, keep=keys // 2)
    for n, certificate in enumerate(made):
        state.add_key(certificate_key(IssuerId(f"eu-dcc-{n % issuers}"), certificate))
    middle = keys // 2
    return state, (COUNTRIES[(middle % issuers) % len(COUNTRIES)], made[middle], key)


def certificates(
    count: int, now: Any, first: int = 0, keep: int = 0
) -> tuple[list[bytes], PrivateKey]:
    """``count`` signer certificates (DER), each of its own ES256 key pair and (subject,
    serial); and the private key of the one at index ``keep``."""
    made, kept = [], None
    for n in range(first, first + count):
        raw = ec.generate_private_key(ec.SECP256R1())
        made.append(
            pki.self_signed(
                raw,
                f"bench DSC {n}",
                not_before=now - timedelta(days=30),
                not_after=now + timedelta(days=365),
            ).public_bytes(serialization.Encoding.DER)
        )
        if n - first == keep:
            pem = raw.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            kept = PrivateKey.from_pem(pem, Algorithm.ES256)
    assert kept is not None
    return made, kept


def code_for(key: PrivateKey, certificate: bytes, country: str) -> str:
    now = int(system_clock().timestamp())
    kid = hashlib.sha256(certificate).digest()[:8]  # the EU DCC key id of the certificate
    hcert = {
        "ver": "1.3.0",
        "nam": {"fn": "Muster", "fnt": "MUSTER", "gn": "Erika", "gnt": "ERIKA"},
        "dob": "1964-08-12",
        "v": [{"tg": "840539006", "dn": 2, "sd": 2, "dt": "2021-05-29", "co": country}],
    }
    payload = cbor2.dumps({1: country, 4: now + 86400 * 180, 6: now - 3600, -260: {1: hcert}})
    return textform.encode("HC1:", cose.sign(payload, key, kid))


def _rate(run: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            run()
        count += 50
    return count / elapsed


def measure(sizes: list[int], rounds: int, seconds: float) -> dict[str, Any]:
    identities = IdentityKeys(os.urandom(32), os.urandom(32))
    limits, now = Limits(), system_clock()
    results: dict[str, Any] = {}
    verifiers: dict[int, Callable[[], object]] = {}
    for size in sizes:
        gc.collect()
        tracemalloc.start()
        state, (country, certificate, key) = build(size)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        started = time.perf_counter()
        snapshot: TrustSnapshot = state.snapshot()
        built = time.perf_counter() - started
        code = code_for(key, certificate, country)
        verdict = verify_code(code, trust=snapshot, now=now, limits=limits, identities=identities)
        if verdict.status is not Status.VALID:
            raise SystemExit(f"{size} keys: {verdict.reason.value} {verdict.detail}")

        def run(code: str = code, snapshot: TrustSnapshot = snapshot) -> object:
            return verify_code(code, trust=snapshot, now=now, limits=limits, identities=identities)

        verifiers[size] = run
        del state
        results[str(size)] = {
            "issuers": _issuers_for(size),
            "snapshot_build_s": built,
            "registry_state_bytes": held,
            **trust_list_costs(snapshot, code, identities),
        }
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size in sizes:
            rates[size].append(_rate(verifiers[size], seconds))
    base = statistics.median(rates[sizes[0]])
    for size in sizes:
        rate = statistics.median(rates[size])
        results[str(size)].update(verify_per_s=rate, ratio_to_smallest=rate / base)
    return results


LOAD_IN_A_NEW_PROCESS = """
import json, sys
from pathlib import Path
from gateway.crypto import load_jwk
from gateway.server import replica

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

key = load_jwk(json.loads(Path(sys.argv[2]).read_text()))
before = status("VmRSS:")
held = replica.read_saved(Path(sys.argv[1]), key)
assert held is not None
first = status("VmHWM:")
following = replica.read_saved(Path(sys.argv[1]), key)
assert following is not None
print(before, first, status("VmHWM:"))
"""
"""A replica's start from its saved list, alone in a process: its resident memory with every
module loaded, its peak after reading the list, and its peak reading the next list while it
holds the first (as when the hub sends one); Linux ``/proc/self/status``: ``VmHWM``, not
``ru_maxrss``, which keeps the forking benchmark's own peak across ``exec``."""


def trust_list_costs(
    snapshot: TrustSnapshot, code: str, identities: IdentityKeys
) -> dict[str, Any]:
    """The signed trust list every replica receives whole: its size compressed (what the hub
    publishes; limit ``MAX_TRUST_LIST_CHARS``) and as it was signed before compression, the
    hub's time to sign it (content, JSON, DEFLATE, signature), a replica's time to load it
    (verify, inflate, parse, validate every part into a snapshot: :func:`gateway.replica.read`),
    medians of three; and the Python heap one load holds at its peak."""
    key = PrivateKey.generate(Algorithm.ES256)
    now = system_clock()
    signed, loaded = [], []
    text = ""
    for _ in range(3):
        gc.collect()
        started = time.perf_counter()
        text = trustlist.sign(
            trustlist.document(snapshot, now, now + trustlist.DEFAULT_FRESH_FOR), key
        )
        signed.append(time.perf_counter() - started)
        gc.collect()
        started = time.perf_counter()
        read = replica.read(text, key.public_key())
        loaded.append(time.perf_counter() - started)
    # The hub's heartbeat: the same content signed again later, compressed once per version.
    signer = trustlist.TrustListSigner(key)
    signer.sign_current(snapshot, now)
    hub_beats = []
    for n in range(1, 4):
        gc.collect()
        started = time.perf_counter()
        signer.sign_current(snapshot, now + signer.fresh_for * n / 3)
        hub_beats.append(time.perf_counter() - started)
    # A heartbeat: the same content signed again later, taken without reading it again.
    beats = []
    for n in range(1, 4):
        later = now + trustlist.DEFAULT_FRESH_FOR * n / 3
        beat = trustlist.sign(
            trustlist.document(snapshot, later, later + trustlist.DEFAULT_FRESH_FOR), key
        )
        gc.collect()
        started = time.perf_counter()
        renewed = replica.read(beat, key.public_key(), read)
        beats.append(time.perf_counter() - started)
        if renewed.snapshot is not read.snapshot or renewed.issued_at != later:
            raise SystemExit("a heartbeat of the held content was read whole")
    del read, renewed
    gc.collect()
    tracemalloc.start()  # once more, for the heap (tracemalloc slows it several times)
    read = replica.read(text, key.public_key())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    verdict = verify_code(
        code, trust=read.snapshot, now=now, limits=Limits(), identities=identities
    )
    if verdict.status is not Status.VALID:  # the replica's snapshot judges as the hub's
        raise SystemExit(f"the loaded trust list: {verdict.reason.value} {verdict.detail}")
    content = trustlist.document(snapshot, now, now + trustlist.DEFAULT_FRESH_FOR)
    with tempfile.TemporaryDirectory(prefix="huren-bench-list-") as tmp:
        saved, jwk = Path(tmp) / "trustlist.jws", Path(tmp) / "trustlist-key.jwk"
        saved.write_text(text)
        jwk.write_text(json.dumps(key.public_key().jwk()))
        resident = subprocess.run(
            [sys.executable, "-c", LOAD_IN_A_NEW_PROCESS, str(saved), str(jwk)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.split()
    return {
        "trust_list_chars": len(text),
        "trust_list_uncompressed_chars": len(trustlist.sign(content, key, deflate=False)),
        "trust_list_json_bytes": len(strictjson.dumps(content)),
        "trust_list_sign_s": statistics.median(signed),
        "trust_list_load_s": statistics.median(loaded),
        "trust_list_heartbeat_s": statistics.median(beats),
        "trust_list_hub_heartbeat_s": statistics.median(hub_beats),
        "trust_list_load_peak_bytes": peak,
        "replica_resident_before_bytes": int(resident[0]),
        "replica_resident_peak_bytes": int(resident[1]),
        "replica_resident_peak_next_list_bytes": int(resident[2]),
    }


# ----------------------------------------------------------------------------- the registry


def fill_registry(directory: Path, keys: int) -> tuple[int, float]:
    """A hub state directory whose registry holds ``keys`` certificates over
    :func:`_issuers_for` issuers, every change through the Registrar; (changes, seconds)."""
    now = system_clock()
    issuers = _issuers_for(keys)
    started = time.perf_counter()
    initialise(directory, LOCAL)
    changes = 0
    with open_hub(directory) as hub:
        submit = hub.registrar.submit
        for country in COUNTRIES[: min(issuers, len(COUNTRIES))]:
            submit(LOCAL, f"region-{country}", CreateRegion(country, country))
            changes += 1
        for n in range(issuers):
            country = COUNTRIES[n % len(COUNTRIES)]
            submit(
                LOCAL,
                f"issuer-{n}",
                RegisterIssuer(f"eu-dcc-{n}", country, f"{country} {n}", PROFILE_TEXT),
            )
            changes += 1
        per_issuer = [keys // issuers + (1 if n < keys % issuers else 0) for n in range(issuers)]
        first = 0
        for n, count in enumerate(per_issuer):
            if count:
                batch = tuple(certificates(count, now, first)[0])
                submit(LOCAL, f"dsc-{n}", ImportCertificates(f"eu-dcc-{n}", batch))
                changes += 1
            first += count
    return changes, time.perf_counter() - started


def start_up(directory: Path) -> float:
    """Seconds from starting ``huren serve`` on ``directory`` until its health is SERVING."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*SERVE, "--state-dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if match is None:
            raise SystemExit(f"the gateway did not start: {line}{proc.communicate()[1]}")
        with grpc.insecure_channel(match.group(1)) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="")
            while True:
                answer = health.Check(request, timeout=10, wait_for_ready=True)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - started
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def change_costs(directory: Path, keys: int) -> dict[str, float]:
    """Median seconds of one ImportCertificate, one RevokeKey, and the snapshot rebuild."""
    extra = certificates(CHANGES, system_clock(), first=keys)[0]
    added, revoked, rebuilt, reread = [], [], [], []
    with open_hub(directory) as hub, open_hub(directory) as server:
        for certificate in extra:
            name = hashlib.sha256(certificate).hexdigest()[:16]
            started = time.perf_counter()
            change = hub.registrar.submit(
                LOCAL, f"extra-{name}", ImportCertificate("eu-dcc-0", certificate)
            )
            added.append(time.perf_counter() - started)
            kid = certificate_key(IssuerId("eu-dcc-0"), certificate).kid
            started = time.perf_counter()
            hub.registrar.submit(LOCAL, f"revoke-{name}", RevokeKey("eu-dcc-0", kid, "bench"))
            revoked.append(time.perf_counter() - started)
            started = time.perf_counter()
            snapshot = hub.store.state.snapshot()
            rebuilt.append(time.perf_counter() - started)
            assert snapshot.version > change.trust_version
            # A gateway serving the same file sees the host's change and verifies it again.
            started = time.perf_counter()
            assert server.store.refresh()
            reread.append(time.perf_counter() - started)
    return {
        "import_certificate_s": statistics.median(added),
        "revoke_key_s": statistics.median(revoked),
        "snapshot_rebuild_s": statistics.median(rebuilt),
        "reread_by_server_s": statistics.median(reread),
    }


def measure_registry(sizes: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="huren-bench-scale-") as tmp:
            directory = Path(tmp) / "gateway"
            changes, filled = fill_registry(directory, size)
            database = directory / "registry.db"
            starts = [start_up(directory) for _ in range(STARTS)]
            results[str(size)] = {
                "changes_to_fill": changes,
                "fill_s": filled,
                "database_bytes": database.stat().st_size if database.exists() else 0,
                "start_up_s": statistics.median(starts),
                "start_up_max_s": max(starts),
                **change_costs(directory, size),
            }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10, 100 and 1,000 keys, short runs")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    sizes = [10, 100, 1000] if args.quick else [10, 1000, 10_000, 100_000]
    results = measure(sizes, rounds=3 if args.quick else 7, seconds=0.05 if args.quick else 0.5)
    smallest = sizes[0]
    print("keys     issuers  snapshot build  registry state   verify/s  ratio to 10 keys")
    for size in sizes:
        r = results[str(size)]
        print(
            f"{size:<8} {r['issuers']:<8} {r['snapshot_build_s'] * 1000:10.1f} ms"
            f" {r['registry_state_bytes'] / 1e6:11.1f} MB"
            f" {r['verify_per_s']:10.0f}"
            f"  {r['ratio_to_smallest']:.3f}" + ("  (reference)" if size == smallest else "")
        )
    print(
        "keys     trust list (per key)  before compression (per key)  JSON inflated"
        "  sign      replica load  heartbeat (hub, replica)  load heap peak"
        "  replica resident (peak)"
    )
    for size in sizes:
        r = results[str(size)]
        listed, before = r["trust_list_chars"], r["trust_list_uncompressed_chars"]
        print(
            f"{size:<8} {listed / 1e6:8.2f} MB ({listed / size:4.0f} B)"
            f" {before / 1e6:12.2f} MB ({before / size:4.0f} B)"
            f" {r['trust_list_json_bytes'] / 1e6:14.2f} MB"
            f" {r['trust_list_sign_s']:7.2f} s {r['trust_list_load_s']:9.2f} s"
            f" {r['trust_list_hub_heartbeat_s']:8.2f} s, {r['trust_list_heartbeat_s']:.2f} s"
            f" {r['trust_list_load_peak_bytes'] / 1e6:12.1f} MB"
            f" {r['replica_resident_before_bytes'] / 1e6:8.0f} MB"
            f" ({r['replica_resident_peak_bytes'] / 1e6:.0f} MB,"
            f" {r['replica_resident_peak_next_list_bytes'] / 1e6:.0f} MB with the next)"
        )
    limit = trustlist.MAX_TRUST_LIST_CHARS
    per_key = results[str(sizes[-1])]["trust_list_chars"] / sizes[-1]
    print(f"at {per_key:.0f} B per key, {limit} characters hold {limit / per_key:,.0f} keys")
    registry = measure_registry(sizes)
    print(
        "keys     changes  fill      start-up (median, max)   import one  revoke one"
        "  snapshot rebuild  server re-read"
    )
    for size in sizes:
        r = registry[str(size)]
        print(
            f"{size:<8} {r['changes_to_fill']:<8} {r['fill_s']:6.1f} s  {r['start_up_s']:6.2f} s"
            f" ({r['start_up_max_s']:.2f} s)   {r['import_certificate_s'] * 1000:8.1f} ms"
            f" {r['revoke_key_s'] * 1000:8.1f} ms {r['snapshot_rebuild_s'] * 1000:10.1f} ms"
            f" {r['reread_by_server_s'] * 1000:11.1f} ms"
        )
    results["registry"] = registry
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
