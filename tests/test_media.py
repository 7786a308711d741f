"""Tests of bridge.media: what a file's bytes say about it (size, type, a picture's dimensions),
and that a decompression bomb is never called a picture."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from bridge.events import Attachment, AttachmentKind
from bridge.media import HEAD_BYTES, described


def picture(fmt: str, size: tuple[int, int] = (3, 2)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 10)).save(out, fmt)
    return out.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG claiming these dimensions, with a few bytes of pixel data (a reader learns the
    dimensions from the header, before any pixel)."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + chunk(b"IEND", b"")


def attachment(kind: AttachmentKind, name: str, mimetype: str | None) -> Attachment:
    return Attachment(kind=kind, name=name, mimetype=mimetype, size=None, ref="https://x/y")


@pytest.mark.parametrize(
    ("fmt", "mimetype"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_a_picture_gets_its_type_size_and_dimensions_from_its_bytes(
    fmt: str, mimetype: str
) -> None:
    data = picture(fmt, (640, 480))
    got = described(attachment(AttachmentKind.IMAGE, "foto", "image/png"), data)
    assert (got.kind, got.mimetype, got.size, got.width, got.height) == (
        AttachmentKind.IMAGE, mimetype, len(data), 640, 480,
    )  # fmt: skip
    assert (got.name, got.ref) == ("foto", "https://x/y")


def test_a_file_gets_its_size_and_keeps_its_type() -> None:
    data = b"%PDF-1.7\n" + b"x" * 500
    got = described(attachment(AttachmentKind.FILE, "bericht.pdf", "application/pdf"), data)
    assert (got.kind, got.mimetype, got.size, got.width) == (
        AttachmentKind.FILE, "application/pdf", len(data), None,
    )  # fmt: skip
    unknown = described(attachment(AttachmentKind.FILE, "daten", None), b"\x00\x01")
    assert (unknown.mimetype, unknown.size) == ("application/octet-stream", 2)


def test_a_picture_nobody_knew_of_becomes_one_and_a_chosen_file_stays_a_file() -> None:
    data = picture("PNG")
    found = described(attachment(AttachmentKind.FILE, "scan", None), data)
    assert (found.kind, found.mimetype, found.width, found.height) == (
        AttachmentKind.IMAGE, "image/png", 3, 2,
    )  # fmt: skip
    chosen = described(attachment(AttachmentKind.FILE, "scan.png", "image/png"), data)
    assert (chosen.kind, chosen.mimetype, chosen.width) == (AttachmentKind.FILE, "image/png", None)


def test_a_decompression_bomb_is_sent_as_a_plain_file() -> None:
    """A PNG of 100,000 × 100,000 pixels: a few bytes, 30 GB for whoever decodes it."""
    data = png_claiming(100_000, 100_000)
    got = described(attachment(AttachmentKind.IMAGE, "bombe.png", "image/png"), data)
    assert (got.kind, got.width, got.height) == (AttachmentKind.FILE, None, None)
    assert got.size == len(data)
    small = described(attachment(AttachmentKind.IMAGE, "ok.png", None), png_claiming(8, 8))
    assert (small.kind, small.width) == (AttachmentKind.IMAGE, 8)


def test_what_is_no_picture_keeps_what_the_source_said() -> None:
    broken = png_claiming(10, 10)[:20]
    got = described(attachment(AttachmentKind.IMAGE, "kaputt.png", "image/png"), broken)
    assert (got.kind, got.mimetype, got.width, got.size) == (
        AttachmentKind.IMAGE, "image/png", None, 20,
    )  # fmt: skip
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    got = described(attachment(AttachmentKind.IMAGE, "logo.svg", "image/svg+xml"), svg)
    assert (got.kind, got.mimetype, got.width) == (AttachmentKind.IMAGE, "image/svg+xml", None)


def test_only_the_head_of_a_file_is_searched_for_its_dimensions() -> None:
    """A JPEG whose dimensions come after `HEAD_BYTES` of comments is not read to the end."""
    comments = b"\xff\xfe\xff\xff" + b"c" * 0xFFFD
    jpeg = picture("JPEG")
    data = jpeg[:2] + comments * (HEAD_BYTES // len(comments) + 1) + jpeg[2:]
    got = described(attachment(AttachmentKind.IMAGE, "lang.jpg", "image/jpeg"), data)
    assert (got.width, got.size) == (None, len(data))
    assert described(attachment(AttachmentKind.IMAGE, "kurz.jpg", None), jpeg).width == 3
