"""Encrypted attachments in the pure translation: the ``file`` object of an encrypted room's
media event in, the ``file`` object for an encrypted target room out, and the bytes surviving
the round trip through the attachment reference."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment

from bridge.events import Attachment, AttachmentKind, Event, Kind
from connectors.matrix.translate import (
    FileKeys,
    MalformedEvent,
    encrypted_media_ref,
    matrix_content,
    parse_media_ref,
)
from tests.test_translate import SENDER, must, outgoing, room_event

DATA = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def encrypted_image() -> tuple[bytes, dict[str, Any]]:
    """Ciphertext and content of an image as Element sends it into an encrypted room."""
    ciphertext, file = encrypt_attachment(DATA)
    file.url = "mxc://tchap.example/EncRyptedBlob"  # type: ignore[assignment]
    return ciphertext, {
        "msgtype": "m.image",
        "body": "lageplan.png",
        "file": file.serialize(),
        "info": {"mimetype": "image/png", "size": len(DATA), "w": 640, "h": 480},
    }


def test_encrypted_image_in_keeps_what_decrypts_it() -> None:
    ciphertext, content = encrypted_image()
    event = must(room_event("m.room.message", content))
    attachment = event.attachment
    assert attachment is not None
    assert (attachment.kind, attachment.name, attachment.mimetype, attachment.size) == (
        AttachmentKind.IMAGE, "lageplan.png", "image/png", len(DATA)
    )  # fmt: skip
    url, keys = parse_media_ref(attachment.ref)
    assert url == "mxc://tchap.example/EncRyptedBlob"
    assert keys is not None
    assert decrypt_attachment(ciphertext, keys.key, keys.sha256, keys.iv) == DATA


def test_plain_media_ref_has_no_keys() -> None:
    assert parse_media_ref("mxc://bund.example/abc") == ("mxc://bund.example/abc", None)


def test_keys_with_url_unsafe_characters_survive_the_ref() -> None:
    keys = FileKeys(key="a-b_c", iv="ab+/cd==", sha256="x+y/z")
    assert parse_media_ref(encrypted_media_ref("mxc://s/m", keys)) == ("mxc://s/m", keys)


def test_encrypted_file_out_goes_in_file_not_url() -> None:
    _, content = encrypted_image()
    event = Event(
        kind=Kind.MESSAGE, link_id="crisis", network="tchap", room_id="!src:tchap.example",
        remote_id="$src", sender=SENDER,
        attachment=Attachment(kind=AttachmentKind.IMAGE, name="lageplan.png",
                              mimetype="image/png", size=len(DATA), ref="mxc://x/y"),
    )  # fmt: skip
    etype, sent = matrix_content(outgoing(event), sender_name="Max", file=content["file"])
    assert etype == "m.room.message"
    assert "url" not in sent
    assert sent["file"] == content["file"]
    assert sent["msgtype"] == "m.image" and sent["filename"] == "lageplan.png"


def _with_file(**changes: Any) -> dict[str, Any]:
    _, content = encrypted_image()
    file = {**content["file"], **changes}
    return room_event("m.room.message", {**content, "file": file})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (room_event("m.room.message", {"msgtype": "m.file", "body": "a", "file": "x"}),
         "content.file must be an object"),
        (_with_file(url="https://evil.example/blob"), "content.file.url must be an mxc:// URI"),
        (_with_file(v="v1"), "content.file.v must be v2"),
        (_with_file(key={"alg": "A128CBC", "k": "x"}), "content.file.key must be an A256CTR key"),
        (_with_file(key={"alg": "A256CTR", "k": "c2hvcnQ"}), "content.file.key.k"),
        (_with_file(iv="AAAA"), "content.file.iv must be 16 bytes"),
        (_with_file(iv="not base64!!"), "content.file.iv must be 16 bytes"),
        (_with_file(hashes={}), "content.file.hashes.sha256"),
    ],
    ids=["not-object", "http-url", "v1", "other-alg", "short-key", "short-iv", "bad-iv",
         "no-hash"],
)  # fmt: skip
def test_malformed_encrypted_files(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        must(raw)
