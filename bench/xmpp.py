"""The XMPP ends of a measured path: real MUC occupants (the end-to-end tests' slixmpp client
over c2s, `tests.harness.xmpp_clients.XmppClient`), one sending groupchat messages and one
recording when each marked message reaches it.

The occupant loads only the MUC plugin and keeps nothing it receives beyond the arrival times,
so the benchmark's own client does as little per stanza as a ``/sync`` client does per event.
The arrival time is taken in slixmpp's stanza handler, which runs as soon as the stanza has been
read off the c2s stream, the XMPP counterpart of a ``/sync`` response arriving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from slixmpp import Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from bench.clients import ArrivalLog, body
from tests.harness.xmpp_clients import XmppClient


class Occupant(XmppClient):
    """A MUC occupant on the loopback Prosody: the harness's lightest client (the MUC plugin
    only, nothing kept), told of each groupchat message as it is read (call `close`)."""

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
