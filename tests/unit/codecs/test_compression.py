"""zlib / raw DEFLATE with a hard output cap (threats.md rows C13-C15): bombs, corrupt, truncated
and wrongly framed streams, each with its stable reason and no container fallback."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import compression
from gateway.errors import CodeRejected
from gateway.limits import Limits
from gateway.model import Reason

CAP = Limits().max_decompressed_bytes
BOMB_BYTES = 200 * 1024 * 1024
CONTAINERS = pytest.mark.parametrize(
    "wbits", [compression.ZLIB, compression.RAW], ids=["zlib", "raw"]
)
TEXT = b"hello world, hello world, hello world"
ZLIB_TEXT = compression.deflate(TEXT, wbits=compression.ZLIB)
RAW_TEXT = compression.deflate(TEXT, wbits=compression.RAW)


def _reason(data: bytes, wbits: int, max_bytes: int = CAP) -> Reason:
    with pytest.raises(CodeRejected) as e:
        compression.inflate(data, wbits=wbits, max_bytes=max_bytes)
    return e.value.reason


def _bomb(wbits: int) -> bytes:
    """200 MiB of zeros, compressed in 1 MiB steps so that the zeros never exist at once."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(BOMB_BYTES // len(zeros))]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module", params=[compression.ZLIB, compression.RAW], ids=["zlib", "raw"])
def bomb(request: pytest.FixtureRequest) -> tuple[int, bytes]:
    wbits: int = request.param
    return wbits, _bomb(wbits)


@CONTAINERS
@pytest.mark.parametrize(
    "data",
    [b"", b"x", TEXT, bytes(1000), bytes(range(256)) * 8, "绿码".encode() * 100],
    ids=["empty", "one-byte", "text", "zeros", "all-byte-values", "utf8"],
)
def test_round_trip(wbits: int, data: bytes) -> None:
    assert compression.inflate(
        compression.deflate(data, wbits=wbits), wbits=wbits, max_bytes=CAP
    ) == (data)


def test_zlib_and_raw_differ_only_by_header_and_trailer():
    assert ZLIB_TEXT[2:-4] == RAW_TEXT
    assert ZLIB_TEXT[-4:] == zlib.adler32(TEXT).to_bytes(4, "big")


def test_a_200_mib_bomb_is_small_on_the_wire(bomb: tuple[int, bytes]) -> None:
    _, data = bomb
    assert len(data) < 300 * 1024  # about 200 KB, as in row C13


def test_a_200_mib_bomb_is_rejected_within_the_cap(bomb: tuple[int, bytes]) -> None:
    wbits, data = bomb
    tracemalloc.start()
    try:
        assert _reason(data, wbits) is Reason.ERR_DECOMPRESSED_TOO_LARGE
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < CAP + 1024 * 1024  # never anything like 200 MiB


def test_a_truncated_bomb_is_still_too_large(bomb: tuple[int, bytes]) -> None:
    wbits, data = bomb
    assert _reason(data[: len(data) // 2], wbits) is Reason.ERR_DECOMPRESSED_TOO_LARGE


@CONTAINERS
@pytest.mark.parametrize(
    ("size", "max_bytes"),
    [(CAP, CAP), (0, 1), (1, 1), (1000, 1000)],
    ids=["default-cap", "empty-under-cap-1", "cap-1", "cap-1000"],
)
def test_output_of_exactly_the_cap_is_accepted(wbits: int, size: int, max_bytes: int) -> None:
    data = bytes(size)
    assert (
        compression.inflate(
            compression.deflate(data, wbits=wbits), wbits=wbits, max_bytes=max_bytes
        )
        == data
    )


@CONTAINERS
@pytest.mark.parametrize(
    ("data", "max_bytes"),
    [
        (bytes(CAP + 1), CAP),
        (bytes(2), 1),
        (bytes(1001), 1000),
        (bytes(range(256)) * 4 + b"!", 1024),  # barely compressible
    ],
    ids=["default-cap-plus-1", "cap-1-plus-1", "cap-1000-plus-1", "incompressible-plus-1"],
)
def test_output_of_the_cap_plus_one_is_too_large(wbits: int, data: bytes, max_bytes: int) -> None:
    compressed = compression.deflate(data, wbits=wbits)
    assert _reason(compressed, wbits, max_bytes) is Reason.ERR_DECOMPRESSED_TOO_LARGE


@CONTAINERS
def test_every_truncation_is_rejected(wbits: int) -> None:
    """Cutting any number of bytes off the end (row C14)."""
    full = compression.deflate(TEXT, wbits=wbits)
    for end in range(len(full)):
        assert _reason(full[:end], wbits) is Reason.ERR_DECOMPRESS, f"cut at {end}"


@pytest.mark.parametrize("position", [-4, -3, -2, -1], ids=["byte-1", "byte-2", "byte-3", "byte-4"])
def test_a_flipped_adler32_is_rejected(position: int) -> None:
    data = bytearray(ZLIB_TEXT)
    data[position] ^= 0x01
    assert _reason(bytes(data), compression.ZLIB) is Reason.ERR_DECOMPRESS


@pytest.mark.parametrize(
    ("data", "wbits"),
    [
        (ZLIB_TEXT + b"\x00", compression.ZLIB),
        (ZLIB_TEXT + b"xyz", compression.ZLIB),
        (ZLIB_TEXT + ZLIB_TEXT, compression.ZLIB),  # two concatenated streams
        (RAW_TEXT + b"\x00", compression.RAW),
        (RAW_TEXT + RAW_TEXT, compression.RAW),
    ],
    ids=["zlib-nul", "zlib-text", "zlib-twice", "raw-nul", "raw-twice"],
)
def test_bytes_after_the_stream_end_are_rejected(data: bytes, wbits: int) -> None:
    assert _reason(data, wbits) is Reason.ERR_DECOMPRESS


def _with_dictionary() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, compression.ZLIB, zdict=b"hello world")
    return compressor.compress(TEXT) + compressor.flush()


@pytest.mark.parametrize(
    ("data", "wbits"),
    [
        # row C15: wrong container, no fallback
        (RAW_TEXT, compression.ZLIB),  # raw where zlib is required (DCC)
        (ZLIB_TEXT, compression.RAW),  # zlib where raw DEFLATE is required (SHC)
        (gzip.compress(TEXT), compression.ZLIB),
        (gzip.compress(TEXT), compression.RAW),
        (_with_dictionary(), compression.ZLIB),  # FDICT: needs a preset dictionary
        # not compressed at all (DCC Z2)
        (bytes.fromhex("d2844da204489211db660d80c43a"), compression.ZLIB),
        (TEXT, compression.ZLIB),
        (b'{"iss":"hangzhou"}', compression.RAW),
        (b"", compression.ZLIB),
        (b"", compression.RAW),
        # corrupt
        (ZLIB_TEXT[:2] + b"\xff" * (len(ZLIB_TEXT) - 2), compression.ZLIB),
        (b"\x78\x9c\x07", compression.ZLIB),  # reserved block type 11
        (b"\x78\x00" + RAW_TEXT, compression.ZLIB),  # header checksum wrong
        (b"\x07", compression.RAW),
    ],
    ids=[
        "raw-as-zlib",
        "zlib-as-raw",
        "gzip-as-zlib",
        "gzip-as-raw",
        "zlib-preset-dictionary",
        "cose-uncompressed",
        "text-uncompressed",
        "json-uncompressed-as-raw",
        "empty-zlib",
        "empty-raw",
        "garbage-body",
        "reserved-block-type",
        "bad-header-check",
        "raw-reserved-block-type",
    ],
)
def test_wrong_container_or_corrupt_stream_is_rejected(data: bytes, wbits: int) -> None:
    assert _reason(data, wbits) is Reason.ERR_DECOMPRESS


@pytest.mark.parametrize(
    "wbits", [31, 47, 0, 9, -9, 16 + 15], ids=["gzip", "auto", "0", "9", "-9", "16+15"]
)
def test_only_the_two_containers_can_be_asked_for(wbits: int) -> None:
    with pytest.raises(ValueError, match="wbits"):
        compression.inflate(ZLIB_TEXT, wbits=wbits, max_bytes=CAP)


@CONTAINERS
@given(data=st.binary(max_size=2000))
def test_round_trip_of_arbitrary_bytes(wbits: int, data: bytes) -> None:
    compressed = compression.deflate(data, wbits=wbits)
    assert compression.inflate(compressed, wbits=wbits, max_bytes=len(data)) == data
    if data:
        assert _reason(compressed, wbits, len(data) - 1) is Reason.ERR_DECOMPRESSED_TOO_LARGE


@CONTAINERS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_code_rejected(wbits: int, data: bytes) -> None:
    result: bytes | Reason
    try:
        result = compression.inflate(data, wbits=wbits, max_bytes=1024)
    except CodeRejected as e:
        result = e.reason
    assert isinstance(result, bytes) or result in {
        Reason.ERR_DECOMPRESS,
        Reason.ERR_DECOMPRESSED_TOO_LARGE,
    }
