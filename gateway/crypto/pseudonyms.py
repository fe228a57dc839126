"""Pseudonyms (AES-SIV, RFC 5297): a region that must not carry identity numbers in its codes
carries them encrypted under a key it shares with the hub: deterministic authenticated
encryption, so one person has one stable pseudonym per region, readable only with the key, and
tampering is detected."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from gateway.codecs.remembered import Remembered
from gateway.errors import ConfigurationInvalid
from gateway.model import Reason

PSEUDONYM_KEY_BYTES = 64  # AES-256-SIV
# Cipher objects by key: building one (the key schedule) costs more than opening a pseudonym.
# Bounded (a hub holds one key per pseudonymous issuer).
_CIPHERS: Remembered[bytes, AESSIV] = Remembered(1024)


def check_pseudonym_key(key: bytes) -> None:
    """Raises ConfigurationInvalid(ERR_KEY_WEAK) unless ``key`` is a 512-bit AES-SIV key."""
    if len(key) != PSEUDONYM_KEY_BYTES:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, f"a pseudonym key is {PSEUDONYM_KEY_BYTES} bytes"
        )


def open_pseudonym(key: bytes, sealed: bytes, context: bytes) -> bytes | None:
    """The plaintext of a pseudonym sealed for ``context``, or None if it does not authenticate."""
    try:
        return _CIPHERS.get(key, AESSIV).decrypt(sealed, [context])
    except (InvalidTag, ValueError):
        return None


def seal_pseudonym(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """Seal ``plaintext`` for ``context`` (issuers)."""
    return AESSIV(key).encrypt(plaintext, [context])
