"""Reading QR codes in tests the way a scanner does (zxing-cpp): from PNG bytes, a PIL image, or a
screenshot of a page. Exactly one symbol must be found."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import zxingcpp
from PIL import Image

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


@dataclass(frozen=True)
class Read:
    text: str
    ec_level: str
    version: int


def read_qr(image: Image.Image | bytes) -> Read:
    """The one QR code in ``image`` (PNG bytes or an image): its text, EC level and version."""
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    # Only QR codes, as a checkpoint's scanner: with every format on, zxing-cpp now and then finds
    # a short Codabar or ITF barcode in a row of a QR symbol's modules (about 1 image in 500).
    found = zxingcpp.read_barcodes(image, formats=QR_ONLY)
    # zxing-cpp may report one symbol twice (found again after a rotation or an inversion).
    assert len({f.text for f in found}) == 1, f"{len(found)} QR codes in the image"
    extra: Any = found[0].extra
    return Read(found[0].text, found[0].ec_level, int(extra["Version"]))
