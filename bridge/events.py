"""The network-neutral event: what crosses from one network to the others.

Connectors turn what they receive into an `Event`; the router stores it in the outbox as JSON and
the target connectors render it for their network. IDs inside an event are always IDs on the
*source* network; the outbox resolves them to the target network's IDs at delivery time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    MESSAGE = "message"
    EDIT = "edit"
    REDACTION = "redaction"
    REACTION = "reaction"
    JOIN = "join"
    """The sender joined the source room: their ghost or puppet joins the link's other rooms
    (where the link mirrors members, `bridge.members`)."""
    LEAVE = "leave"
    """The sender left the source room: their ghost or puppet leaves the other rooms."""


MEMBERSHIP = (Kind.JOIN, Kind.LEAVE)
"""The kinds that say who is in a room rather than what was said."""


class MsgType(StrEnum):
    TEXT = "text"
    NOTICE = "notice"
    EMOTE = "emote"


class AttachmentKind(StrEnum):
    IMAGE = "image"
    FILE = "file"
    VIDEO = "video"
    AUDIO = "audio"


def _fields(value: object) -> dict[str, Any]:
    """How `json.dumps` writes the event's dataclasses: as their fields."""
    if isinstance(value, Event | Sender | Attachment):
        return dict(vars(value))
    raise TypeError(f"{type(value).__name__} cannot be stored in an event")


@dataclass(frozen=True)
class Sender:
    """Who wrote it, as the targets should show them."""

    network: str
    user_id: str
    display_name: str
    person_id: str | None = None
    org: str | None = None
    """Organisation label: from the person's mapping, else the source network's default."""
    suffix: str = ""
    """The source network's ``name_suffix``, for targets that show it."""
    avatar: str | None = None
    """The sender's avatar as the source connector can fetch it (an ``mxc://`` URI)."""


@dataclass(frozen=True)
class Attachment:
    kind: AttachmentKind
    name: str
    mimetype: str | None
    size: int | None
    ref: str
    """Where the source connector can fetch the bytes (an ``mxc://`` URI on Matrix)."""
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class Event:
    kind: Kind
    link_id: str
    network: str
    """Source network name."""
    room_id: str
    """Source room (on the source network)."""
    remote_id: str
    """This event's ID on the source network."""
    sender: Sender
    text: str = ""
    html: str | None = None
    """Sanitized HTML; None when the message is plain text."""
    msgtype: MsgType = MsgType.TEXT
    reply_to: str | None = None
    """Source-network ID of the message this one replies to."""
    thread: str | None = None
    """Source-network ID of the first message (the root) of the thread this one is posted in:
    a Matrix thread, an XMPP ``<thread>``, a mail's ``References`` chain. A reply inside a
    thread carries both."""
    relates_to: str | None = None
    """Source-network ID of the message an edit, redaction or reaction applies to."""
    reaction: str | None = None
    reason: str | None = None
    """Why a message was deleted (a redaction's reason), where the sender gave one."""
    attachment: Attachment | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # Fields as they are (``dataclasses.asdict`` deep-copies every value first, which was a
        # tenth of the bridge's CPU per message); the enums are strings already.
        return json.dumps(self, default=_fields, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> Event:
        raw = json.loads(data)
        if "target" in raw:  # the field's name in outboxes written before it was renamed
            raw["relates_to"] = raw.pop("target")
        raw["kind"] = Kind(raw["kind"])
        raw["msgtype"] = MsgType(raw["msgtype"])
        raw["sender"] = Sender(**raw["sender"])
        if raw.get("attachment"):
            att = raw["attachment"]
            att["kind"] = AttachmentKind(att["kind"])
            raw["attachment"] = Attachment(**att)
        return cls(**raw)

    def summary(self, limit: int = 60) -> str:
        """A short quote of the message for notices ("… did not reach …")."""
        text = self.text if self.text else (self.attachment.name if self.attachment else "")
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"
