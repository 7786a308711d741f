"""One-to-one chats: an XMPP user writes to a colleague's puppet address (``bund_max\\3abund.test@
component``) and the colleague gets a direct-message room on their own network.

The chat is a link the core opens on first contact (`Host.direct_chat`); on this side its
"room" is the pair (user, puppet) — see `direct_key`. Messages, corrections, retractions and
files cross both ways; a chat has no room to echo messages, so a send counts once the server
took it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from bridge.connector import DeliveryError, DirectChatRefused, Host, Outgoing, Unavailable
from bridge.events import Event, Kind, Sender
from bridge.naming import address_parts, heads, owner_account
from connectors.xmpp.addresses import puppet_jid, puppet_owner
from connectors.xmpp.component import FATAL, Component, NotConnected
from connectors.xmpp.config import XmppNetwork
from connectors.xmpp.files import Files
from connectors.xmpp.translate import (
    Message,
    Oob,
    chat_stanza,
    direct_key,
    direct_message_id,
    edit_event,
    fallback_id,
    message_body,
    message_event,
    origin_id,
    retraction_reason,
    retraction_stanza,
    split_direct_key,
    split_jid,
    stanza_id_of,
)

Ingest = Callable[[Event], Awaitable[None]]


class OneToOne:
    def __init__(
        self, network: XmppNetwork, host: Host, component: Component, files: Files,
        ingest: Ingest,
    ) -> None:  # fmt: skip
        self.network = network
        self.host = host
        self.component = component
        self.files = files
        self._ingest = ingest
        self._queue: asyncio.Queue[tuple[ET.Element, Message]] = asyncio.Queue()
        self.log = logging.getLogger(f"passerelle.{network.name}")

    def received(self, el: ET.Element, msg: Message) -> None:
        """A chat message to a puppet from an allowed user: handled in arrival order."""
        self._queue.put_nowait((el, msg))

    def read(self, msg: Message) -> None:
        """A displayed marker (XEP-0333) from an allowed user to a puppet: shown in the chat's
        room on the peer's network. A marker opens no chat."""
        user, puppet = split_jid(msg.sender)[0], split_jid(msg.to)[0]
        key = direct_key(user, puppet)
        if msg.displayed is None or self.host.directory.link_for(self.network.name, key) is None:
            return
        sender = Sender(network=self.network.name, user_id=user, display_name=user)
        self.host.read(self.network.name, key, sender, direct_message_id(key, msg.displayed))

    async def work(self) -> None:
        """Handle the chats' messages in order; any failure but cancellation costs only the
        message that caused it (its sender gets an error)."""
        while True:
            el, msg = await self._queue.get()
            try:
                await self._receive(el, msg)
            except FATAL:
                raise
            except BaseException:
                self.log.exception("Could not bridge one-to-one message %s", msg.id)
                self.component.send_error(el, "internal-server-error", "The gateway failed.")

    async def _receive(self, el: ET.Element, msg: Message) -> None:
        user, puppet = split_jid(msg.sender)[0], split_jid(msg.to)[0]
        parts = puppet_owner(puppet.partition("@")[0], heads(self.host.config))
        owner = owner_account(self.host.config, *parts, self.network.name) if parts else None
        if owner is None or owner[0] == self.network.name:
            self.component.send_error(el, "item-not-found", f"{puppet} is nobody known here")
            return
        if msg.oob is not None:
            refusal = self.files.refusal(msg.oob.url)
            if refusal is not None:
                self.log.info("Not bridging a file from %s to %s: %s", user, puppet, refusal)
                self.component.send_error(
                    el, "not-acceptable", "The gateway does not fetch files from there."
                )
                return
        network, remote = owner
        key = direct_key(user, puppet)
        sender = Sender(network=self.network.name, user_id=user, display_name=user)
        link_id = self.host.directory.link_for(self.network.name, key)
        if link_id is None:
            try:
                link_id = await self.host.direct_chat(self.network.name, key, sender, network,
                                                      remote)  # fmt: skip
            except DirectChatRefused as e:
                self.log.info("Refused a direct chat from %s to %s: %s", user, remote, e)
                self.component.send_error(el, "forbidden", str(e))
                return
        event = self._event(msg, key, link_id, sender)
        if event is not None:
            await self._ingest(event)

    def _event(self, msg: Message, key: str, link_id: str, sender: Sender) -> Event | None:
        remote_id = direct_message_id(key, msg.origin_id or msg.id or fallback_id(msg))
        retracted = msg.retract_id or msg.retract_origin_id
        if retracted:
            return Event(kind=Kind.REDACTION, link_id=link_id, network=self.network.name,
                         room_id=key, remote_id=remote_id, sender=sender,
                         relates_to=direct_message_id(key, retracted),
                         reason=retraction_reason(msg.body))  # fmt: skip
        if msg.replace_id is not None:
            event: Event | None = edit_event(
                msg, remote_id=remote_id, link_id=link_id, network=self.network.name,
                sender=sender, relates_to=direct_message_id(key, msg.replace_id),
            )  # fmt: skip
        else:
            reply_to = direct_message_id(key, msg.reply.id) if msg.reply else None
            event = message_event(msg, remote_id=remote_id, link_id=link_id,
                                  network=self.network.name, sender=sender,
                                  reply_to=reply_to)  # fmt: skip
        return dataclasses.replace(event, room_id=key) if event is not None else None

    async def send(self, out: Outgoing, media: bytes | None) -> str:
        """Deliver into a chat as the sender's puppet; the ID is the message id we chose."""
        pair = split_direct_key(out.room_id)
        if pair is None:
            raise DeliveryError(f"{out.room_id} is not a chat", permanent=True)
        user = pair[0]
        event = out.event
        sender_jid = puppet_jid(*address_parts(self.host.config, event.sender),
                                self.network.component)  # fmt: skip
        msg_id = origin_id(event.network, event.remote_id)
        if event.kind is Kind.REACTION:
            return direct_message_id(out.room_id, msg_id)  # chats carry no reactions here
        if event.kind is Kind.REDACTION:
            assert out.relates_to is not None
            el = retraction_stanza(user, sender_jid, msg_id, stanza_id_of(out.relates_to),
                                   event.reason)  # fmt: skip
            el.set("type", "chat")
        elif event.kind is Kind.EDIT:
            assert out.relates_to is not None
            el = chat_stanza(user, sender_jid, msg_id, message_body(event),
                             replace_id=stanza_id_of(out.relates_to))  # fmt: skip
        elif event.attachment is not None and media is not None:
            url = await self.files.upload(media, event.attachment.name, event.attachment.mimetype)
            el = chat_stanza(user, sender_jid, msg_id, url, oob=Oob(url, event.text or None))
        else:
            el = chat_stanza(user, sender_jid, msg_id, message_body(event))
        try:
            self.component.send_element(el)
        except NotConnected as e:
            raise Unavailable(str(e)) from e
        return direct_message_id(out.room_id, msg_id)

    async def notify(self, key: str, text: str) -> None:
        pair = split_direct_key(key)
        if pair is None:
            raise DeliveryError(f"{key} is not a chat")
        el = chat_stanza(pair[0], self.network.component, origin_id("notice", text), text)
        self.component.send_element(el)
