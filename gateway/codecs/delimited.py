"""A delimited text envelope (Shanghai style): ``PREFIX`` + fields + a detached signature.

``SH1:shanghai|sh-1a2b|0|20221123100000|330106199003071228|<base64url signature>``

The signature covers the exact ASCII text before its delimiter (prefix included). Every field
must be present and non-empty; the number of fields is fixed by the profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.codecs import base64url
from gateway.errors import CodeRejected
from gateway.model import Reason

MAX_FIELD_CHARS = 256


@dataclass(frozen=True, slots=True)
class DelimitedCode:
    fields: dict[str, str]
    """A plain dict, like every decoded payload (field paths walk dicts)."""
    signed: bytes
    signature: bytes


def parse(text: str, prefix: str, delimiter: str, names: tuple[str, ...]) -> DelimitedCode:
    """Split a delimited code into named fields and its signature, without verifying it.

    Raises:
        CodeRejected: ``ERR_FORMAT_UNKNOWN`` without the prefix; ``ERR_ENVELOPE`` for the wrong
            number of fields or an empty or over-long field; ``ERR_BASE64`` for the signature.
    """
    if not text.startswith(prefix):
        raise CodeRejected(Reason.ERR_FORMAT_UNKNOWN, f"code does not start with {prefix!r}")
    parts = text[len(prefix) :].split(delimiter)
    if len(parts) != len(names) + 1:
        raise CodeRejected(
            Reason.ERR_ENVELOPE, f"expected {len(names) + 1} fields, found {len(parts)}"
        )
    *values, signature_text = parts
    if not all(0 < len(v) <= MAX_FIELD_CHARS for v in values) or not signature_text:
        raise CodeRejected(Reason.ERR_ENVELOPE, "a field is empty or too long")
    signature = base64url.decode(signature_text)
    signed = text[: len(text) - len(signature_text) - 1].encode("ascii")
    return DelimitedCode(dict(zip(names, values, strict=True)), signed, signature)


def sign_text(
    prefix: str, delimiter: str, values: list[str], sign: Callable[[bytes], bytes]
) -> str:
    """Build a delimited code (issuers): ``sign`` maps the signed bytes to a signature."""
    if any(delimiter in v or not v for v in values):
        raise ValueError("field values must be non-empty and free of the delimiter")
    body = prefix + delimiter.join(values)
    return body + delimiter + base64url.encode(sign(body.encode("ascii")))
