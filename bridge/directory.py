"""Which room on which network belongs to which link, as found at run time.

Configured rooms may be aliases or rooms the bridge creates, so the room IDs are only known once
each connector has set its rooms up; connectors bind them here and look incoming rooms up here.
A room refused by policy is disabled: nothing is bridged into it or out of it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class RoomDirectory:
    def __init__(self) -> None:
        self._room_of: dict[tuple[str, str], str] = {}
        self._link_of: dict[tuple[str, str], str] = {}
        self._disabled: dict[tuple[str, str], str] = {}

    def bind(self, link_id: str, network: str, room_id: str) -> None:
        self._room_of[(link_id, network)] = room_id
        self._link_of[(network, room_id)] = link_id

    def unbind(self, link_id: str, network: str) -> None:
        """The link no longer has a room on ``network`` (a reload took it out)."""
        room_id = self._room_of.pop((link_id, network), None)
        if room_id is not None and self._link_of.get((network, room_id)) == link_id:
            del self._link_of[(network, room_id)]
        self._disabled.pop((link_id, network), None)

    def disable(self, link_id: str, network: str, reason: str) -> None:
        self._disabled[(link_id, network)] = reason

    def enable(self, link_id: str, network: str) -> None:
        self._disabled.pop((link_id, network), None)

    def disabled_reason(self, link_id: str, network: str) -> str | None:
        return self._disabled.get((link_id, network))

    def link_for(self, network: str, room_id: str) -> str | None:
        """The link of an incoming room, or None if it is not bridged (or disabled)."""
        link_id = self._link_of.get((network, room_id))
        if link_id is None or (link_id, network) in self._disabled:
            return None
        return link_id

    def bound_link(self, network: str, room_id: str) -> str | None:
        """The link a room is bound to, even while disabled (for policy re-checks)."""
        return self._link_of.get((network, room_id))

    def room_for(self, link_id: str, network: str) -> str | None:
        return self._room_of.get((link_id, network))

    def rooms(self, network: str) -> list[str]:
        """Every room bridged on ``network`` (disabled ones left out)."""
        return [room for (link, net), room in self._room_of.items()
                if net == network and (link, net) not in self._disabled]  # fmt: skip
