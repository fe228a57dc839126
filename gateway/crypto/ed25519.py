"""Ed25519 public-key admission: RFC 8032 section 5.1.3 decoding, then a multiply-by-8 check
(section 5.1.7 cofactor), in pure Python. cryptography accepts small-order points, and the
identity point verifies forged signatures (threats.md), so a key must pass this before it is
admitted. It runs only at key registration, never on the verify path.
"""

from __future__ import annotations

from gateway.errors import ConfigurationInvalid
from gateway.model import Reason

_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def check_ed25519_point(encoded: bytes) -> None:
    """Refuse an Ed25519 public key that is non-canonical, not on the curve, or of small order.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK``.
    """
    if len(encoded) != 32:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "Ed25519 key must be 32 bytes")
    value = int.from_bytes(encoded, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= _P:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "Ed25519 key is not canonically encoded")
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = (x * _SQRT_M1) % _P
        if (v * x * x - u) % _P != 0:
            raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "Ed25519 key is not a curve point")
    if x == 0 and sign:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "Ed25519 key is not canonically encoded")
    if x & 1 != sign:
        x = _P - x
    point = (x, y)
    for _ in range(3):
        point = _edwards_add(point, point)
    if point == (0, 1):
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "Ed25519 key is a small-order point")


def _edwards_add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = (_D * x1 * x2 * y1 * y2) % _P
    x3 = ((x1 * y2 + x2 * y1) * pow(1 + t, -1, _P)) % _P
    y3 = ((y1 * y2 + x1 * x2) * pow(1 - t, -1, _P)) % _P
    return x3, y3
