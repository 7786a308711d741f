"""Every link the bridge serves: the admin's links from the config, plus the direct chats that
people open at run time (an XMPP user writing to a colleague's address, say).

Direct chats are links like any other to the router and the outbox; they are stored so a restart
keeps them, and each is exactly two rooms: the one the chat started in and the one the bridge
opened for it on the peer's network.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bridge.config.model import Config, Link, LinkRoom


@dataclass(frozen=True)
class DirectChat:
    """A direct chat as stored: who started it where, and the room opened for the peer."""

    link_id: str
    origin_network: str
    origin_room: str
    """The chat's key on the origin network, as that connector defines it (opaque here)."""
    peer_network: str
    peer_user: str
    peer_room: str

    def as_link(self) -> Link:
        return Link(
            id=self.link_id,
            rooms={
                self.origin_network: LinkRoom(self.origin_network, self.origin_room, None),
                self.peer_network: LinkRoom(self.peer_network, self.peer_room, None),
            },
            people=(),
        )


def direct_link_id(origin_network: str, origin_room: str, peer_network: str, peer_user: str) -> str:
    """A stable ID for the direct chat between one origin room and one peer."""
    key = "\0".join((origin_network, origin_room, peer_network, peer_user)).encode()
    return f"direct-{hashlib.sha256(key).hexdigest()[:24]}"


class Links:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._direct: dict[str, Link] = {}
        self._chats: dict[str, DirectChat] = {}

    def use(self, config: Config) -> None:
        """The links of a reloaded config (direct chats stay)."""
        self._config = config

    def get(self, link_id: str) -> Link:
        direct = self._direct.get(link_id)
        return direct if direct is not None else self._config.link(link_id)

    def add_direct(self, chat: DirectChat) -> Link:
        link = chat.as_link()
        self._direct[link.id] = link
        self._chats[link.id] = chat
        return link

    def is_direct(self, link_id: str) -> bool:
        return link_id in self._direct

    def direct_chat(self, link_id: str) -> DirectChat | None:
        return self._chats.get(link_id)
