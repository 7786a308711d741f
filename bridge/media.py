"""What an attachment's bytes say about it: its size, its type and, for a picture, its width and
height.

A source does not always tell (an XMPP file is only a URL, its type guessed from the name), and
a Matrix client shows a picture well only with them (the event's ``info``). So the target that
needs them fills them in from the bytes it is about to send (`described`), at delivery, when
the bytes are known. The bytes are a stranger's: only the header of the web's picture formats is
read, never the pixels (Pillow decodes nothing before it is asked to), from at most `HEAD_BYTES`
of the file (WebP excepted: libwebp reads a whole file, in C), which bounds the time taken; a
picture of more than `MAX_PIXELS` pixels (a decompression bomb for whoever decodes it: a client,
a homeserver making thumbnails) is refused as a picture and sent as a plain file.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import replace

from PIL import Image

from bridge.events import Attachment, AttachmentKind

PICTURE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif",
                 "WEBP": "image/webp"}  # fmt: skip
"""The formats (Pillow's names) read, and their types: what every Matrix client shows inline."""
HEAD_BYTES = 256 * 1024
"""How much of a file its header is looked for in (a JPEG's dimensions come after its
metadata segments, 64 KiB each at most)."""
MAX_PIXELS = 32_000_000
"""The largest picture called one (Synapse's default ``max_image_pixels``)."""
UNKNOWN_TYPE = "application/octet-stream"

# Pillow refuses (DecompressionBombError) pictures of more than twice this many pixels, before
# a decoder allocates anything; it only warns below that.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2


def described(attachment: Attachment, data: bytes) -> Attachment:
    """``attachment`` with its size, and for a picture its type, width and height, as ``data``
    (its bytes) shows them. A decompression bomb becomes a plain file; a picture the source
    knew nothing of (no type, or ``application/octet-stream``) becomes a picture."""
    size = len(data)
    try:
        picture = _picture(data)
    except Image.DecompressionBombError:
        return replace(attachment, kind=AttachmentKind.FILE, size=size, width=None, height=None,
                       mimetype=attachment.mimetype or UNKNOWN_TYPE)  # fmt: skip
    if picture is None:
        return replace(attachment, size=size, mimetype=attachment.mimetype or UNKNOWN_TYPE)
    mimetype, width, height = picture
    kind = attachment.kind
    if kind is AttachmentKind.FILE and attachment.mimetype in (None, UNKNOWN_TYPE):
        kind = AttachmentKind.IMAGE
    if kind is not AttachmentKind.IMAGE:
        return replace(attachment, size=size, mimetype=mimetype)
    return replace(attachment, kind=kind, size=size, mimetype=mimetype, width=width,
                   height=height)  # fmt: skip


def _picture(data: bytes) -> tuple[str, int, int] | None:
    """(type, width, height) of a picture in one of `PICTURE_TYPES`, None for anything else
    (or a header beyond `HEAD_BYTES`). Raises ``DecompressionBombError`` for a picture of more
    than `MAX_PIXELS` pixels."""
    webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    head = data if webp else data[:HEAD_BYTES]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(head), formats=list(PICTURE_TYPES)) as image:
                width, height = image.size
                mimetype = PICTURE_TYPES[image.format or ""]
    except Image.DecompressionBombError:
        raise
    except Exception:  # Pillow's readers raise many kinds of error on malformed input
        return None
    if width < 1 or height < 1:
        return None
    return mimetype, width, height
