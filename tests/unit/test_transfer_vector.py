"""docs/transfer.md's test vector, value by value: the key, the payload bytes, the exact
attestation text, and its verdict through the pipeline."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

from gateway import transfer
from gateway.codecs import strictcbor
from gateway.crypto import Algorithm, PrivateKey
from gateway.identity import IdentityKeys, link_hash
from gateway.limits import Limits
from gateway.model import Colour, KeyId, ProfileId, RegionCode, Status
from gateway.profiles import load_profile
from gateway.registry import Issuer, IssuerKey, TrustState
from gateway.registry.model import Region
from gateway.verify import verify_code
from tests.conftest import LINK_KEY, REPO, SUBJECT_SECRET

DOC = (REPO / "docs" / "transfer.md").read_text("utf-8")
SECTION = DOC.split("### Test vector", 1)[1].split("\n## ", 1)[0]
KEY = PrivateKey.from_secret(
    Algorithm.ES256, hashlib.sha256(b"huren transfer test vector").digest()
)
ISSUED = datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)


def _block(language: str, index: int = 0) -> str:
    return str(re.findall(rf"```{language}\n(.*?)\n```", SECTION, flags=re.S)[index])


def _grant() -> transfer.Grant:
    assert bytes(range(32, 64)) == LINK_KEY  # as the document says
    return transfer.Grant(
        destination=RegionCode("820000"),
        policy="macau@2",
        sources=("c1.oK9I3zWbNblX_utJ",),
        masked="330*************28",
        link=link_hash(LINK_KEY, "330106199003071228"),
        issued_at=ISSUED,
        expires_at=ISSUED + timedelta(hours=5),
        bound="the policy's maximum",
    )


def test_the_documented_key_is_the_test_key():
    jwk = json.loads(_block("json"))
    kid = transfer.key_id(KEY.public_key())
    assert jwk == {**KEY.public_key().jwk(), "kid": kid}


def test_the_documented_payload_is_what_the_hub_encodes():
    documented = bytes.fromhex(_block("text", 0))
    assert strictcbor.dumps(transfer.claims(_grant())) == documented
    assert set(strictcbor.loads(documented, max_depth=4)) == {
        "iss", "iat", "exp", "st", "dst", "sub", "pol", "src"
    }  # fmt: skip


def test_the_documented_attestation_is_exact_and_verifies():
    text = _block("text", 1)
    kid = transfer.key_id(KEY.public_key())
    assert transfer.seal(_grant(), KEY, kid) == text
    state = TrustState()
    state.add_region(Region(transfer.REGION, transfer.REGION_NAME))
    state.add_profile(load_profile(transfer.profile_text()))
    state.add_issuer(
        Issuer(transfer.ISSUER, transfer.REGION, "test", ProfileId("huren-attestation"), 1)
    )
    state.add_key(IssuerKey(transfer.ISSUER, KeyId(kid), KEY.public_key()))
    trust = state.snapshot()
    identities = IdentityKeys(SUBJECT_SECRET, LINK_KEY)
    at = ISSUED + timedelta(minutes=30)

    def verdict(code: str):
        return verify_code(code, trust=trust, now=at, limits=Limits(), identities=identities)

    good = verdict(text)
    assert good.status is Status.VALID, good.detail
    assert good.code is not None
    assert (good.code.colour, good.code.destination) == (Colour.GREEN, "820000")
    assert good.code.masked_identity == "330*************28"
    assert good.code.subject == identities.subject(identities.from_number("330106199003071228"))
    flipped = text[:40] + ("A" if text[40] != "A" else "B") + text[41:]
    assert verdict(flipped).status is not Status.VALID
