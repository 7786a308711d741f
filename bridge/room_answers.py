"""Answers to in-room commands (`bridge.room_commands`), posted in the room that asked.

The router hands a command over here instead of fanning it out. It is recorded like any event
(so a redelivered or caught-up command is answered once, and follow-ups to it go nowhere), and
answered in the background: gathering ``who`` asks the other networks (`Connector.members`,
bounded by `MEMBERS_TIMEOUT`), which must not hold up the source's next events. The answer goes
through the source connector's own notice path, so it is encrypted where the room is. At most
`Throttle`'s share of answers goes to one room; the rest are dropped with a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.config.model import Config, Link
from bridge.connector import Connector
from bridge.directory import RoomDirectory
from bridge.events import Event
from bridge.health import NetworkHealth
from bridge.links import Links
from bridge.room_commands import (
    Command,
    NetworkState,
    Reach,
    Roster,
    Throttle,
    help_text,
    status_text,
    who_text,
)
from bridge.store import Store

log = logging.getLogger(__name__)

MEMBERS_TIMEOUT = 10.0
"""Seconds one network has to say who is in its room before ``who`` says it cannot be asked."""


@dataclass(eq=False)
class RoomAnswers:
    config: Config
    links: Links
    store: Store
    directory: RoomDirectory
    connectors: Mapping[str, Connector]
    health: NetworkHealth
    throttle: Throttle = field(default_factory=Throttle, init=False)
    _answering: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def takes(self, event: Event) -> bool:
        """Whether commands are taken where ``event`` comes from: a room of one of the
        admin's links (a direct chat is a conversation with one person, not with the bridge),
        on a network whose connector answers commands."""
        return self.connectors[event.network].room_commands and not self.links.is_direct(
            event.link_id
        )

    async def take(self, event: Event, command: Command) -> bool:
        """Record the command and answer it (in the background); False if it was seen
        before. Returns once it is stored, like `bridge.router.Router.ingest`."""
        if not await self.store.accept(event, []):
            return False
        if not self.throttle.allow((event.network, event.room_id)):
            log.info("Not answering %s in %s of %s: too many commands there lately",
                     event.remote_id, event.room_id, event.network)  # fmt: skip
            return True
        task = asyncio.create_task(self._answer(event, command), name=f"answer:{event.remote_id}")
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)
        return True

    async def stop(self) -> None:
        for task in self._answering:
            task.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)

    async def _answer(self, event: Event, command: Command) -> None:
        link = self.links.get(event.link_id)
        others = [network for network in link.rooms if network != event.network]
        language = self.config.networks[event.network].language
        if command is Command.STATUS:
            text = status_text(language, [self._state(link, network) for network in others])
        elif command is Command.WHO:
            rosters = await asyncio.gather(*(self._roster(link, network) for network in others))
            text = who_text(language, rosters)
        else:
            labels = [self.config.networks[network].label for network in others]
            text = help_text(language, labels, unknown=command is Command.UNKNOWN)
        try:
            await self.connectors[event.network].notify(event.room_id, text)
            log.info("Answered %s (%s) of %s in %s", event.remote_id, command.value,
                     event.sender.user_id, event.room_id)  # fmt: skip
        except Exception as e:
            log.warning("Could not answer %s in %s: %s", event.remote_id, event.room_id, e)

    def _state(self, link: Link, network: str) -> NetworkState:
        label = self.config.networks[network].label
        if self.directory.disabled_reason(link.id, network) is not None:
            return NetworkState(label, Reach.OFF)
        if self.connectors[network].problem() is not None:
            return NetworkState(label, Reach.REFUSED)
        if not self.health.is_up(network):
            return NetworkState(label, Reach.DOWN,
                                time.time() - self.health.state(network).since)  # fmt: skip
        if self.directory.room_for(link.id, network) is None:
            return NetworkState(label, Reach.PENDING)
        return NetworkState(label, Reach.UP)

    async def _roster(self, link: Link, network: str) -> Roster:
        label = self.config.networks[network].label
        if self.directory.disabled_reason(link.id, network) is not None:
            return Roster(label, None, off=True)
        room = self.directory.room_for(link.id, network)
        if room is None:
            return Roster(label, None)
        try:
            names = await asyncio.wait_for(self.connectors[network].members(room), MEMBERS_TIMEOUT)
        except Exception as e:
            log.info("Could not ask %s who is in %s: %s", network, room, e)
            return Roster(label, None)
        return Roster(label, names)
