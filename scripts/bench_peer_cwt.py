#!/usr/bin/env python3
"""The peer side of ``make bench``: the ``cwt`` library verifying the same EU DCC codes.

Runs in its own virtualenv (``.venv-peer``, made by ``make bench`` from constraints-peer.txt):
cwt requires cbor2 < 6 while huren's strict decoder needs cbor2 6, so the two cannot share one
interpreter. Reads a JSON file ``{"codes": [HC1 texts], "certificate_pem": ...}`` and prints
one JSON object: cwt's rate over the same text-to-claims path the gateway runs (base45, zlib,
COSE_Sign1 verification, CWT claims) divided by the raw ES256 verify floor measured in the same
process, in alternating CPU-time slices.

Usage: python scripts/bench_peer_cwt.py INPUT.json PAIRS SLICE_SECONDS
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import zlib
from collections.abc import Callable

import cbor2
import cwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_VALUE = {c: i for i, c in enumerate(_B45)}


def base45_decode(text: str) -> bytes:
    """RFC 9285 base45 (the peer has no decoder of its own; this one is the same arithmetic)."""
    out = bytearray()
    for i in range(0, len(text), 3):
        chunk = [_B45_VALUE[c] for c in text[i : i + 3]]
        value = sum(v * 45**k for k, v in enumerate(chunk))
        out.extend(value.to_bytes(2 if len(chunk) == 3 else 1, "big"))
    return bytes(out)


def rate(f: Callable[[], object], slice_s: float) -> float:
    n, start = 0, time.thread_time()
    while True:
        for _ in range(10):
            f()
        n += 10
        spent = time.thread_time() - start
        if spent >= slice_s:
            return n / spent


def main() -> int:
    source, pairs, slice_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with open(source, encoding="utf-8") as f:
        data = json.load(f)
    codes: list[str] = data["codes"]
    pem = data["certificate_pem"].encode()
    key = cwt.load_pem_hcert_dsc(pem.decode())
    decoder = cwt.CWT.new()
    code = codes[0]

    def peer() -> object:
        message = zlib.decompress(base45_decode(code[4:]))
        # no_verify skips only cwt's wall-clock exp/nbf checks; the signature is verified.
        return decoder.decode(message, keys=[key], no_verify=True)

    claims = peer()
    if not isinstance(claims, dict) or -260 not in claims:
        raise SystemExit("cwt did not decode the code")

    # The floor: the same Sig_structure and signature, verified by pyca/cryptography.
    tag = cbor2.loads(zlib.decompress(base45_decode(code[4:])))
    protected, _, payload, signature = tag.value
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public = x509.load_pem_x509_certificate(pem).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    algorithm = ec.ECDSA(hashes.SHA256())

    def floor() -> object:
        public.verify(der, to_be_signed, algorithm)
        return None

    rate(peer, slice_s), rate(floor, slice_s)  # warm-up
    rates = [(rate(peer, slice_s), rate(floor, slice_s)) for _ in range(pairs)]
    ratios = sorted(a / b for a, b in rates)
    print(
        json.dumps(
            {
                "median": statistics.median(ratios),
                "min": ratios[0],
                "max": ratios[-1],
                "a_per_s": statistics.median(a for a, _ in rates),
                "b_per_s": statistics.median(b for _, b in rates),
                "cwt": cwt.__version__ if hasattr(cwt, "__version__") else "",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
