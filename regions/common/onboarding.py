"""What a regional operator hands the hub to register an issuer: identity, profile, keys, and the
credentials the hub needs for online (Zhejiang) and pseudonym (Beijing, Macau) regions.

Read from the region's published keys (``GET /api/keys``), its profile file, and the files its
service keeps in its state directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gateway.crypto import PrivateKey
from gateway.model import ProfileId
from gateway.profiles import Profile, load_profile
from gateway.registry import Issuer, IssuerKey, OnlineEndpoint
from gateway.registry.admission import offers_from_file
from gateway.registry.commands import RegisterIssuer
from gateway.registry.keyfiles import read_keys
from regions import spec_of
from regions.common.keys import pseudonym_key_path


@dataclass(frozen=True, slots=True)
class Registration:
    issuer: Issuer
    profile: Profile
    profile_text: str
    keys: list[IssuerKey]


def registration(name: str, url: str, state_dir: Path, jwks: bytes) -> Registration:
    """The registration of region ``name`` whose service runs at ``url``."""
    spec = spec_of(name)
    text = spec.profile_text()
    profile = load_profile(text)
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
        ProfileId(profile.id),
        profile.version,
        online=online,
        pseudonym_key=pseudonym,
    )
    keys = [IssuerKey(issuer.id, k.kid, k.public_key) for k in read_keys(jwks)]
    return Registration(issuer, profile, text, keys)


def registration_command(
    name: str, url: str, state_dir: Path, jwks: bytes, request_id: str
) -> RegisterIssuer:
    """The registration of region ``name``, each key with its proof of possession for
    ``request_id`` made with the region's own signing key (which never leaves the region's
    state directory)."""
    found = registration(name, url, state_dir, jwks)
    spec = spec_of(name)
    signing = PrivateKey.from_pem((state_dir / "signing-key.pem").read_bytes(), spec.algorithm)
    offers = offers_from_file(jwks, [signing], issuer=spec.issuer, request_id=request_id)
    issuer = found.issuer
    return RegisterIssuer(
        issuer_id=issuer.id,
        region=issuer.region,
        name=issuer.name,
        profile_toml=found.profile_text,
        keys=tuple(offers),
        online=issuer.online,
        pseudonym_key=issuer.pseudonym_key,
    )
