"""Reading QR codes from images (camera frames and uploads) with zxing-cpp, within bounds.

Chromium on Linux has no BarcodeDetector, so the checkpoint page sends frames here. An image is
refused before its pixels are decoded when it is over :data:`MAX_IMAGE_BYTES` or its header
declares more than :data:`MAX_SIDE` pixels on a side (Pillow reads only the header on
``open``); what is not an image, and an image with no QR code, are refused with a clear reason.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import zxingcpp
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4096
_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MAX_CODES_PER_IMAGE = 8
"""More QR codes than this in one image are refused (a traveller shows one code per region)."""


@dataclass(frozen=True, slots=True)
class ImageRefused(Exception):
    """Why an image gives no code: ``reason`` is stable (``ERR_IMAGE``, ``ERR_IMAGE_TOO_LARGE``,
    ``ERR_NO_CODE``, ``ERR_TOO_MANY_CODES``), ``message`` says it in words."""

    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


def read_codes(data: bytes) -> list[str]:
    """The text of every QR code in the image ``data``, in reading order, without repeats.

    Raises:
        ImageRefused: as its reasons say.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRefused(
            "ERR_IMAGE_TOO_LARGE", f"an image may have at most {MAX_IMAGE_BYTES} bytes"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=_FORMATS)  # reads the header only
            width, height = image.size
            if width > MAX_SIDE or height > MAX_SIDE:
                raise ImageRefused(
                    "ERR_IMAGE_TOO_LARGE",
                    f"an image may be at most {MAX_SIDE}×{MAX_SIDE} pixels; "
                    f"this is {width}×{height}",
                )
            image.load()
        except ImageRefused:
            raise
        except (
            UnidentifiedImageError,
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as e:
            raise ImageRefused(
                "ERR_IMAGE", "not an image this checkpoint can read (PNG, JPEG, WebP, GIF)"
            ) from e
    found = zxingcpp.read_barcodes(
        image.convert("L"), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    codes = list(dict.fromkeys(result.text for result in found if result.valid and result.text))
    if not codes:
        raise ImageRefused("ERR_NO_CODE", "no QR code could be read in the image")
    if len(codes) > MAX_CODES_PER_IMAGE:
        raise ImageRefused(
            "ERR_TOO_MANY_CODES", f"more than {MAX_CODES_PER_IMAGE} QR codes in one image"
        )
    return codes
