"""Events as the translator, renderer and store tests build them: a message someone wrote, that
message on its way to a room of another network, and the mail it becomes there."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from bridge.connector import Outgoing
from bridge.events import Event, Kind, Sender
from connectors.email.render import render_mail

MAIL_DATE = datetime(2024, 3, 12, 9, 15, tzinfo=UTC)


async def no_media(ref: str) -> bytes:
    raise AssertionError(f"rendering must not fetch media ({ref})")


def message(
    sender: Sender, link_id: str, room_id: str, remote_id: str, text: str, /, **fields: Any
) -> Event:
    """A message ``sender`` wrote in room ``room_id`` of their network, bridged by link
    ``link_id``; ``fields`` set any other `Event` field or replace one of these (``kind``,
    ``text``)."""
    event = Event(Kind.MESSAGE, link_id, sender.network, room_id, remote_id, sender, text)
    return replace(event, **fields)


def outgoing(
    event: Event, room_id: str, *, reply_to: str | None = None, relates_to: str | None = None
) -> Outgoing:
    """``event`` on its way into ``room_id``, from a sender with no account on that network and
    with nothing to fetch from the source."""
    return Outgoing(
        event, room_id, reply_to, relates_to, sender_is_local=False, fetch_source_media=no_media
    )


def rendered_mail(
    out: Outgoing,
    *,
    link_id: str | None = None,
    message_id: str = "<new.1@lists.passerelle.test>",
    media: bytes | None = None,
) -> EmailMessage:
    """``out`` as the mail sent to the link whose address is ``out.room_id`` and whose ID is
    that address's local part (or ``link_id``), dated `MAIL_DATE`."""
    return render_mail(
        out,
        link_id=link_id or out.room_id.partition("@")[0],
        address=out.room_id,
        message_id=message_id,
        date=MAIL_DATE,
        media=media,
    )
