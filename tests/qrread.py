"""Reading QR codes in tests the way a scanner does (zxing-cpp): from PNG bytes, a PIL image, or a
screenshot of a page. Exactly one symbol must be found."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import zxingcpp
from PIL import Image


@dataclass(frozen=True)
class Read:
    text: str
    ec_level: str
    version: int


def read_qr(image: Image.Image | bytes) -> Read:
    """The one QR code in ``image`` (PNG bytes or an image): its text, EC level and version."""
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1, f"{len(found)} QR codes in the image"
    extra: Any = found[0].extra
    return Read(found[0].text, found[0].ec_level, int(extra["Version"]))
