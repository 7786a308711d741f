"""Real XMPP clients (slixmpp) acting as people on the agency's server in end-to-end tests.

Each `XmppUser` logs in over c2s, joins MUCs and uses slixmpp's own client plugins for
corrections, retractions, reactions, replies and uploads, as an XMPP client would; everything it
receives is kept so tests can wait for what a person would see.
"""

from __future__ import annotations

import asyncio
import io
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from slixmpp import JID, ClientXMPP, Iq, Message, Presence
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath
from slixmpp.xmlstream.stanzabase import StanzaBase

Predicate = Callable[[Message], bool]

MUC_PLUGINS = ("xep_0004", "xep_0045")
PLUGINS = (*MUC_PLUGINS, "xep_0030", "xep_0054", "xep_0066", "xep_0085", "xep_0199", "xep_0203",
           "xep_0308", "xep_0313", "xep_0333", "xep_0359", "xep_0363", "xep_0424", "xep_0428",
           "xep_0444", "xep_0461")  # fmt: skip


class XmppClient:
    """A logged-in XMPP account that can join MUCs and talk in them, with only the plugins
    named in ``plugins`` and nothing kept of what it receives: the benchmark's occupants are
    this, so that their client costs as little per stanza as possible (call ``close()``)."""

    def __init__(
        self, jid: str, password: str, port: int, plugins: tuple[str, ...] = MUC_PLUGINS
    ) -> None:
        self.jid = jid
        self.port = port
        # The test server offers no TLS (loopback only), so SASL has to do without it.
        self.client = ClientXMPP(
            jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}}
        )
        self.client.enable_direct_tls = False
        self.client.enable_starttls = False
        self.client.enable_plaintext = True
        for plugin in plugins:
            self.client.register_plugin(plugin)
        self.nicks: dict[str, str] = {}
        self._online = asyncio.Event()
        self.client.add_event_handler("session_start", self._session_start)
        self.client.add_event_handler("disconnected", lambda _: self._online.clear())

    async def _session_start(self, _: Any) -> None:
        self.client.send_presence()
        self._online.set()

    async def connect(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        self.client.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self._online.wait(), timeout)

    async def close(self) -> None:
        if self.client.transport is not None:
            await self.client.disconnect(wait=1.0)

    async def join(self, room: str, nick: str) -> None:
        """Join a MUC without history (a person opening the room now: messages from before
        are not new). A room this join created is unlocked with its default configuration, as
        clients do ("instant room"): Prosody keeps a new room locked to everyone else until
        then."""
        muc = self.client.plugin["xep_0045"]
        presence = (await muc.join_muc_wait(JID(room), nick, maxstanzas=0, timeout=30))[0]
        if 201 in presence["muc"]["status_codes"]:
            await muc.set_room_config(JID(room), self.client.plugin["xep_0004"].make_form())
        self.nicks[room] = nick

    def say(self, room: str, body: str) -> Message:
        msg = self.client.make_message(mto=room, mbody=body, mtype="groupchat")
        msg.send()
        return msg


class XmppUser(XmppClient):
    """A logged-in XMPP account with the plugins of a full client, keeping every message and
    presence it receives (call ``close()`` when done)."""

    def __init__(self, jid: str, password: str, port: int) -> None:
        super().__init__(jid, password, port, PLUGINS)
        self.received: list[Message] = []
        self.presences: list[Presence] = []
        self.client.register_handler(
            Callback("record every message", StanzaPath("message"), self._record)
        )
        self.client.register_handler(
            Callback("record every presence", StanzaPath("presence"), self._record_presence)
        )

    def _record(self, msg: StanzaBase) -> None:
        assert isinstance(msg, Message)
        self.received.append(msg)

    def _record_presence(self, pres: StanzaBase) -> None:
        assert isinstance(pres, Presence)
        self.presences.append(pres)

    async def reconnect(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Log in again (after the server restarted) and rejoin the rooms joined before."""
        deadline = time.monotonic() + timeout
        while True:
            self._online.clear()
            self.client.connect("127.0.0.1", self.port)
            try:
                await asyncio.wait_for(self._online.wait(), 5)
                break
            except TimeoutError:
                self.client.cancel_connection_attempt()
                if time.monotonic() > deadline:
                    raise
        for room, nick in self.nicks.items():
            await self.join(room, nick)

    async def ensure_online(self) -> None:
        """Log in again (and rejoin) if the connection was lost, e.g. when the server
        restarted in an earlier test."""
        if not self._online.is_set():
            await self.reconnect()

    # -- rooms -------------------------------------------------------------------------------------

    async def set_history_length(self, room: str, length: int) -> None:
        """As the room's owner: how many messages the room replays to someone joining."""
        form = self.client.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden",
                       value="http://jabber.org/protocol/muc#roomconfig")  # fmt: skip
        form.add_field(var="muc#roomconfig_historylength", value=str(length))
        await self.client.plugin["xep_0045"].set_room_config(JID(room), form)

    def occupants(self, room: str) -> list[str]:
        return list(self.client.plugin["xep_0045"].get_roster(JID(room)))

    def left(self, room: str, nick: str, since: int = 0) -> list[Presence]:
        """The presences (from the ``since``-th one received on) saying ``nick`` left
        ``room``: a departure, or a kick."""
        return [p for p in self.presences[since:] if p["type"] == "unavailable"
                and p["from"].bare == room and p["from"].resource == nick]  # fmt: skip

    # -- sending -----------------------------------------------------------------------------------

    def correct(self, room: str, original: Message, body: str) -> Message:
        msg = self.client.plugin["xep_0308"].build_correction(
            original["id"], JID(room), mtype="groupchat", mbody=body
        )
        msg.send()
        return msg

    def retract(self, room: str, stanza_id: str, fallback: str | None = None) -> Message:
        """Retract a message; ``fallback`` replaces the standard fallback text (where clients
        put why)."""
        msg: Message = self.client.plugin["xep_0424"].send_retraction(
            JID(room), stanza_id, mtype="groupchat", fallback_text=fallback
        )
        return msg

    def react(self, room: str, stanza_id: str, reactions: list[str]) -> None:
        msg = self.client.make_message(mto=room, mtype="groupchat")
        self.client.plugin["xep_0444"].set_reactions(msg, stanza_id, reactions)
        msg.enable("store")
        msg.send()

    def reply(self, room: str, to: Message, body: str) -> Message:
        msg = self.client.plugin["xep_0461"].make_reply(
            str(to["from"]),
            to["stanza_id"]["id"],
            fallback=to["body"],
            quoted_nick=to["from"].resource,
            mto=room,
            mbody=body,
            mtype="groupchat",
        )
        msg.send()
        return msg

    async def upload(self, data: bytes, name: str, mimetype: str) -> str:
        """Upload through the server's XEP-0363 service; the GET URL."""
        url: str = await self.client.plugin["xep_0363"].upload_file(
            name, size=len(data), content_type=mimetype, input_file=io.BytesIO(data),
            domain=JID(self.client.boundjid.domain), timeout=30,
        )  # fmt: skip
        return url

    def share(self, room: str, url: str) -> Message:
        """Post an uploaded file the way clients do: the URL as body and as OOB data."""
        msg = self.client.make_message(mto=room, mbody=url, mtype="groupchat")
        msg["oob"]["url"] = url
        msg.send()
        return msg

    def forge(self, room: str, body: str, *, jid: str, occupant_id: str) -> Message:
        """Send a groupchat message claiming to be by someone else: their real JID in a MUC
        ``<x><item jid/></x>`` and their XEP-0421 occupant-id, as a hostile client can."""
        msg = self.client.make_message(mto=room, mbody=body, mtype="groupchat")
        x = ET.SubElement(msg.xml, "{http://jabber.org/protocol/muc#user}x")
        ET.SubElement(x, "{http://jabber.org/protocol/muc#user}item", {"jid": jid})
        ET.SubElement(msg.xml, "{urn:xmpp:occupant-id:0}occupant-id", {"id": occupant_id})
        msg.send()
        return msg

    def typing(self, room: str, composing: bool) -> None:
        """Say in the MUC that this user is typing (XEP-0085), or stopped."""
        msg = self.client.make_message(mto=room, mtype="groupchat")
        msg["chat_state"] = "composing" if composing else "active"
        msg.send()

    def displayed(self, to: str, message_id: str) -> None:
        """Say (XEP-0333) that this user has read a one-to-one chat up to ``message_id``."""
        self.client.plugin["xep_0333"].send_marker(JID(to), message_id, "displayed", mtype="chat")

    def chat(self, to: str, body: str) -> Message:
        """Send a one-to-one message."""
        msg = self.client.make_message(mto=to, mbody=body, mtype="chat")
        msg.send()
        return msg

    async def direct(self, to: str, body: str, timeout: float = 30) -> Message:  # noqa: ASYNC109
        """Send a one-to-one message; the error it bounced with (the test expects one)."""
        msg = self.client.make_message(mto=to, mbody=body, mtype="chat")
        msg.send()
        return await self.wait_for(
            lambda m: m["type"] == "error" and m["id"] == msg["id"], timeout=timeout
        )

    async def disco_identities(self, jid: str) -> list[tuple[str, str, str | None]]:
        info: Iq = await self.client.plugin["xep_0030"].get_info(jid=JID(jid), timeout=30)
        return [(c, t, n) for c, t, _lang, n in info["disco_info"]["identities"]]

    async def vcard(self, jid: str) -> tuple[str, bytes | None]:
        """The name and photo in a vCard (XEP-0054)."""
        iq = await self.client.plugin["xep_0054"].get_vcard(JID(jid), cached=False, timeout=30)
        vcard = iq["vcard_temp"]
        photo: bytes | None = vcard["PHOTO"]["BINVAL"] or None
        return str(vcard["FN"]), photo

    async def kick(self, room: str, nick: str) -> None:
        """As a moderator, remove ``nick`` from the room."""
        await self.client.plugin["xep_0045"].set_role(JID(room), nick, "none")

    # -- receiving ---------------------------------------------------------------------------------

    async def wait_for(self, predicate: Predicate, timeout: float = 30) -> Message:  # noqa: ASYNC109
        """The first received message matching ``predicate`` (earlier ones count too)."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.received:
                if predicate(msg):
                    return msg
            if time.monotonic() > deadline:
                summary = "\n".join(
                    f"  {m['type']} from {m['from']}: {m['body']!r}" for m in self.received[-15:]
                )
                raise TimeoutError(
                    f"{self.jid}: no matching message after {timeout}s; latest:\n{summary}"
                )
            await asyncio.sleep(0.1)

    async def archive(self, room: str, page: int = 250) -> list[Message]:
        """Every groupchat message the room's archive (XEP-0313) holds, oldest first: what the
        room kept, also of what was said while this user was not in it."""
        found: list[Message] = []
        async for result in self.client.plugin["xep_0313"].iterate(
            jid=JID(room), rsm={"max": page}
        ):
            found.append(result["mam_result"]["forwarded"]["stanza"])
        return found

    async def wait_for_body(self, room: str, body: str, timeout: float = 30) -> Message:  # noqa: ASYNC109
        return await self.wait_for(
            lambda m: m["type"] == "groupchat" and m["from"].bare == room and m["body"] == body,
            timeout,
        )
