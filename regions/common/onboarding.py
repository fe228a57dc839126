"""What a regional operator hands the hub to register an issuer: identity, profile, keys, and the
credentials the hub needs for online (Zhejiang) and pseudonym (Beijing, Macau) regions.

Read from the region's published keys (``GET /api/keys``), its profile file, and the files its
service keeps in its state directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway.crypto import PrivateKey
from gateway.keyfiles import read_keys
from gateway.model import ProfileId
from gateway.registry import Issuer, IssuerKey, OnlineEndpoint
from gateway.registry.admission import offers_from_file
from gateway.registry_client import register_issuer_request
from gateway.storage.sqlite import ProfileSource
from regions import spec_of
from regions.common.keys import pseudonym_key_path


@dataclass(frozen=True, slots=True)
class Registration:
    issuer: Issuer
    profile: ProfileSource
    keys: list[IssuerKey]


def registration(name: str, url: str, state_dir: Path, jwks: bytes) -> Registration:
    """The registration of region ``name`` whose service runs at ``url``."""
    spec = spec_of(name)
    profile = ProfileSource.parse(spec.profile_text())
    online = None
    client_file = state_dir / "hub-client.json"
    if client_file.exists():
        client = json.loads(client_file.read_text())
        online = OnlineEndpoint(
            f"{url}/hc/v1/",
            f"{url}/api/verify",
            client["client_id"],
            bytes.fromhex(client["secret"]),
        )
    pseudonym = None
    if pseudonym_key_path(state_dir).exists():
        pseudonym = bytes.fromhex(pseudonym_key_path(state_dir).read_text().strip())
    issuer = Issuer(
        spec.issuer,
        spec.code,
        spec.display_name,
        ProfileId(profile.profile.id),
        profile.profile.version,
        online=online,
        pseudonym_key=pseudonym,
    )
    keys = [IssuerKey(issuer.id, k.kid, k.public_key) for k in read_keys(jwks)]
    return Registration(issuer, profile, keys)


def registration_request(
    name: str, url: str, state_dir: Path, jwks: bytes, request_id: str
) -> pb.RegisterIssuerRequest:
    """The RegisterIssuer call for region ``name``, each key with its proof of possession made
    with the region's own signing key (which never leaves the region's state directory)."""
    found = registration(name, url, state_dir, jwks)
    spec = spec_of(name)
    signing = PrivateKey.from_pem((state_dir / "signing-key.pem").read_bytes(), spec.algorithm)
    offers = offers_from_file(jwks, [signing], issuer=spec.issuer, request_id=request_id)
    issuer = found.issuer
    return register_issuer_request(
        request_id,
        issuer.id,
        issuer.region,
        issuer.name,
        found.profile.text,
        offers,
        issuer.online,
        issuer.pseudonym_key,
    )
