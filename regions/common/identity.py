"""How regions carry identity in their codes (the gateway reads all three; see gateway.identity)."""

from __future__ import annotations

from gateway.crypto import seal_pseudonym
from gateway.identity import link_hash


def masked(number: str, head: int, tail: int) -> str:
    """The region's own masking: ``head`` leading and ``tail`` trailing characters kept."""
    return number[:head] + "*" * (len(number) - head - tail) + number[-tail:]


def link(link_key: bytes | None, number: str) -> bytes:
    """The link hash under the hub's linking key (masked-link regions)."""
    if link_key is None:
        raise RuntimeError("this region needs the hub's linking key (--link-key-file)")
    return link_hash(link_key, number)


def pseudonym(pseudonym_key: bytes | None, number: str, issuer: str) -> bytes:
    """The number sealed under the region's pseudonym key (pseudonym regions)."""
    if pseudonym_key is None:
        raise RuntimeError("this region has no pseudonym key")
    return seal_pseudonym(pseudonym_key, number.encode("ascii"), issuer.encode("ascii"))
