"""The XMPP ends of a measured path: real MUC occupants (slixmpp over c2s, as the end-to-end
tests' `tests.harness.xmpp_clients.XmppUser` log in), one sending groupchat messages and one
recording when each marked message reaches it.

The occupant loads only the MUC plugin and keeps nothing it receives beyond the arrival times,
so the benchmark's own client does as little per stanza as a ``/sync`` client does per event.
The arrival time is taken in slixmpp's stanza handler, which runs as soon as the stanza has been
read off the c2s stream, the XMPP counterpart of a ``/sync`` response arriving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from bench.clients import ArrivalLog, body

LOGIN_TIMEOUT = 30.0


class Occupant:
    """A logged-in XMPP account on the loopback Prosody, which offers no TLS (call `close`)."""

    def __init__(self, jid: str, password: str, port: int) -> None:
        self.jid = jid
        self.port = port
        self.client = ClientXMPP(
            jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}}
        )
        self.client.enable_direct_tls = False
        self.client.enable_starttls = False
        self.client.enable_plaintext = True
        self.client.register_plugin("xep_0004")
        self.client.register_plugin("xep_0045")
        self._online = asyncio.Event()
        self.client.add_event_handler("session_start", self._session_start)

    async def _session_start(self, _: Any) -> None:
        self.client.send_presence()
        self._online.set()

    async def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self._online.wait(), LOGIN_TIMEOUT)

    async def join(self, room: str, nick: str) -> None:
        """Join a MUC without history (messages from before are no arrivals). A room this join
        created is unlocked with its default configuration, as clients do ("instant room"):
        Prosody keeps a new room locked to everyone else until then."""
        muc = self.client.plugin["xep_0045"]
        presence = (await muc.join_muc_wait(JID(room), nick, maxstanzas=0,
                                            timeout=LOGIN_TIMEOUT))[0]  # fmt: skip
        if 201 in presence["muc"]["status_codes"]:
            await muc.set_room_config(JID(room), self.client.plugin["xep_0004"].make_form())

    def say(self, room: str, text: str) -> None:
        self.client.make_message(mto=room, mbody=text, mtype="groupchat").send()

    def on_groupchat(self, handler: Callable[[Message, float], None]) -> None:
        """Call ``handler`` with every groupchat message and the `time.perf_counter` at which
        it was read."""

        def run(stanza: StanzaBase) -> None:
            now = time.perf_counter()
            assert isinstance(stanza, Message)
            handler(stanza, now)

        self.client.register_handler(
            Callback(f"groupchat {id(handler)}", StanzaPath("message@type=groupchat"), run)
        )

    async def close(self) -> None:
        if self.client.transport is not None:
            await self.client.disconnect(wait=1.0)


class MucSender:
    """An occupant posting groupchat messages; the room is the MUC's JID."""

    def __init__(self, occupant: Occupant) -> None:
        self.occupant = occupant

    async def send(self, room: str, marker: str) -> float:
        started = time.perf_counter()
        self.occupant.say(room, body(marker))
        return started


class MucWatcher(ArrivalLog):
    """An occupant of ``rooms`` recording the first time each marked message reaches it (from
    anyone in those rooms: another occupant, or a ghost of the bridge)."""

    def __init__(self, occupant: Occupant, rooms: Iterable[str]) -> None:
        super().__init__()
        self.rooms = set(rooms)
        occupant.on_groupchat(self._on_message)

    def _on_message(self, msg: Message, at: float) -> None:
        if msg["from"].bare in self.rooms:
            self.note(msg["body"], at)
