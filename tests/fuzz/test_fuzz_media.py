"""Generated hostile files against bridge.media.described: any bytes (random, or real pictures
cut short and with bytes changed) give an attachment back, never an error, within a bounded time
and memory, and nothing it calls a picture is larger than `MAX_PIXELS`."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from bridge.events import Attachment, AttachmentKind
from bridge.media import MAX_PIXELS, PICTURE_TYPES, described


def _picture(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (17, 9), (1, 2, 3)).save(out, fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PICTURES = [_picture(fmt) for fmt in PICTURE_TYPES]
PNG_BOMB = (
    b"\x89PNG\r\n\x1a\n"
    + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    + _chunk(b"IEND", b"")
)
"""100,000 × 100,000 pixels in 80 bytes."""
GIF_BOMB = (
    b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    + b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00\x3b"
)  # fmt: skip
WEBP_BOMB = (
    b"RIFF" + struct.pack("<I", 22) + b"WEBP" + b"VP8X" + struct.pack("<I", 10)
    + b"\x00\x00\x00\x00" + (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little")
)  # fmt: skip
"""A WebP canvas of 16,384 × 16,384 pixels: libwebp would allocate it before any frame."""
JPEG_COMMENTS = b"\xff\xd8" + b"\xff\xfe\x00\x02" * (8 * 1024 * 1024)
"""32 MiB of empty JPEG comments: one reader step for every 4 bytes, before any dimension."""


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A real picture, cut short and with some of its bytes changed."""
    data = bytearray(draw(st.sampled_from(PICTURES)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


files = st.one_of(st.binary(max_size=4096), mangled())
kinds = st.sampled_from(AttachmentKind)
types = st.sampled_from([None, "image/png", "application/octet-stream", "text/plain"])


@settings(deadline=5000)
@given(data=files, kind=kinds, mimetype=types)
@example(data=PNG_BOMB, kind=AttachmentKind.IMAGE, mimetype="image/png")
@example(data=GIF_BOMB, kind=AttachmentKind.IMAGE, mimetype="image/gif")
@example(data=WEBP_BOMB, kind=AttachmentKind.IMAGE, mimetype="image/webp")
@example(data=JPEG_COMMENTS, kind=AttachmentKind.IMAGE, mimetype="image/jpeg")
def test_any_file_is_described_without_error_in_bounded_time_and_memory(
    data: bytes, kind: AttachmentKind, mimetype: str | None
) -> None:
    before = Attachment(kind=kind, name="f", mimetype=mimetype, size=None, ref="r")
    tracemalloc.start()
    try:
        after = described(before, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= len(data) + 4 * 1024 * 1024
    assert after.size == len(data) and after.mimetype and (after.name, after.ref) == ("f", "r")
    if after.width is not None or after.height is not None:
        assert after.kind is AttachmentKind.IMAGE and after.mimetype in PICTURE_TYPES.values()
        assert after.width and after.height and after.width * after.height <= MAX_PIXELS
    if data in (PNG_BOMB, GIF_BOMB, WEBP_BOMB):
        assert after.kind is AttachmentKind.FILE and after.width is None
