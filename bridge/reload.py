"""What changed between the running config and a new one, for a reload without a restart.

Pure: `Gateway.reload` applies the change. A link's room on one network is the unit: a link
whose room changed on one network is taken out of the old room and set up in the new one there,
and the link's rooms on the other networks are left alone; a network whose own settings changed
is reconnected alone (it sets up all its rooms again, so it needs no room changes of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.config.model import Config, Link, Person

RoomChange = tuple[str, Link]
"""(network, link): the link's room on that network."""

RESTART_ONLY = ("database", "listen", "audit")
"""Settings a running bridge cannot change: they need a restart."""


@dataclass(frozen=True)
class Reloaded:
    """What a reload did: the new config's located errors (it was not applied), or a summary
    of what changed."""

    errors: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class ConfigChange:
    rooms_removed: tuple[RoomChange, ...] = ()
    """Rooms to unbridge, with the link as it was."""
    rooms_added: tuple[RoomChange, ...] = ()
    """Rooms to set up, with the link as it is now (on networks that are not reconnected)."""
    networks_added: tuple[str, ...] = ()
    networks_removed: tuple[str, ...] = ()
    networks_changed: tuple[str, ...] = ()
    """Networks whose own settings changed: reconnected with the new ones."""
    people_changed: tuple[Person, ...] = ()
    """People (as they are now) whose name or organisation changed: their ghosts are renamed."""
    other: tuple[str, ...] = ()
    """Other settings that changed and apply at once (``delivery``, ``logging``, a network's
    ``federation_list``, the networks' and links' ``policy`` and the ``classification``, the
    ``retention``, a link's ``mirror_members``)."""
    restart_only: tuple[str, ...] = ()
    """Settings that changed but apply only after a restart."""

    @property
    def empty(self) -> bool:
        return not any(
            (self.rooms_removed, self.rooms_added, self.networks_added, self.networks_removed,
             self.networks_changed, self.people_changed, self.other, self.restart_only)
        )  # fmt: skip

    def summary(self) -> str:
        """One line for the log: what the reload does."""
        parts = [
            f"{len(items)} {what}"
            for items, what in (
                (self.rooms_added, "room(s) set up"),
                (self.rooms_removed, "room(s) unbridged"),
                (self.networks_added, "network(s) added"),
                (self.networks_removed, "network(s) removed"),
                (self.networks_changed, "network(s) reconnected"),
                (self.people_changed, "person(s) renamed"),
            )
            if items
        ]
        parts += [f"{key} changed" for key in self.other]
        return ", ".join(parts) or "nothing to do"


def diff(old: Config, new: Config) -> ConfigChange:
    networks_added = tuple(n for n in new.networks if n not in old.networks)
    networks_removed = tuple(n for n in old.networks if n not in new.networks)
    networks_changed = tuple(
        n for n in new.networks if n in old.networks and new.networks[n] != old.networks[n]
    )
    fresh = set(networks_added) | set(networks_changed)
    gone = set(networks_removed) | set(networks_changed)
    old_links, new_links = _by_id(old.links), _by_id(new.links)
    return ConfigChange(
        rooms_removed=_rooms_not_in(old_links, new_links, gone),
        rooms_added=_rooms_not_in(new_links, old_links, fresh),
        networks_added=networks_added,
        networks_removed=networks_removed,
        networks_changed=networks_changed,
        people_changed=_renamed(old, new),
        other=tuple(
            key
            for key, before, now in (
                ("delivery", old.delivery, new.delivery),
                ("logging", old.logging, new.logging),
                ("federation_list", old.federation_lists, new.federation_lists),
                ("policy", old.policy, new.policy),
                ("retention", old.retention, new.retention),
                (
                    "mirror_members",
                    _mirroring(old_links, new_links),
                    _mirroring(new_links, old_links),
                ),
            )
            if before != now
        ),
        restart_only=tuple(key for key in RESTART_ONLY if getattr(old, key) != getattr(new, key)),
    )


def _rooms_not_in(
    links: Mapping[str, Link], other: Mapping[str, Link], whole: set[str]
) -> tuple[RoomChange, ...]:
    """The rooms of ``links`` that the same link of ``other`` does not have (or not that
    room), but for those on networks in ``whole`` (a network added, removed or changed is set
    up or torn down as a whole)."""
    return tuple(
        (network, link)
        for link_id, link in links.items()
        for network, room in link.rooms.items()
        if network not in whole
        and (link_id not in other or other[link_id].rooms.get(network) != room)
    )


def _mirroring(links: Mapping[str, Link], kept: Mapping[str, Link]) -> dict[str, bool | None]:
    """The ``mirror_members`` of the links also in ``kept`` (a link added or removed is a
    room change already)."""
    return {link_id: link.mirror_members for link_id, link in links.items() if link_id in kept}


def _by_id(links: tuple[Link, ...]) -> Mapping[str, Link]:
    return {link.id: link for link in links}


def _renamed(old: Config, new: Config) -> tuple[Person, ...]:
    """People whose name or organisation changed. Changed accounts need nothing done: who is
    who is looked up in the config as each message passes."""
    return tuple(
        person
        for person in new.people
        if (before := old.person(person.id)) is not None
        and (before.name, before.org) != (person.name, person.org)
    )
