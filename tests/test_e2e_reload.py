"""Live reload (SIGHUP): an admin adds, moves and removes a link and renames a person while
messages flow; nothing queued is lost, the rooms that lose the bridge are told, and a config
with a mistake leaves the running one in place.

These tests edit the shared world's config file and put it back at the end."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from mautrix.types import RoomID

from tests.harness.bridge import REPO_ROOT
from tests.harness.expect import bodies, body_is, name_of, unique
from tests.harness.world import UNRESTRICTED
from tests.world import World

pytestmark = pytest.mark.e2e

LINK = """\
  - id: reloaded
    rooms:
      bund: "#reloaded:bund.test"
      tchap: "{tchap_room}"
"""
UNBRIDGED_FR = (
    "Ce salon n'est plus relié à bund : les messages d'ici n'y arrivent plus, et inversement."
)
UNBRIDGED_DE = (
    "Dieser Raum ist nicht mehr mit Tchap verbunden: Nachrichten von hier kommen dort nicht mehr "
    "an, und umgekehrt."
)
"""What a room that a reload unbridged is told, on Tchap and on bund."""


@contextmanager
def config_restored(world: World) -> Iterator[str]:
    """The config file's text; whatever a test writes, the file is as before afterwards."""
    original = world.config_path.read_text()
    try:
        yield original
    finally:
        world.config_path.write_text(original)


@asynccontextmanager
async def flowing(world: World) -> AsyncIterator[list[str]]:
    """Max writes in the main link all along; every line must reach Tchap, in order."""
    max_, jean = world.users["max"], world.users["jean"]
    sent: list[str] = []
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            text = unique(f"während des Neuladens {len(sent)}")
            await max_.send_text(world.rooms["bund:main"], text)
            sent.append(text)
            await asyncio.sleep(0.3)

    writer = asyncio.create_task(write())
    try:
        yield sent
    finally:
        stop.set()
        await writer
    await jean.wait_for(world.rooms["tchap:main"], body_is(sent[-1]), timeout=60)
    seen = await bodies(jean, world.rooms["tchap:main"], limit=200)
    assert [b for b in seen if b in sent] == sent


async def test_links_added_moved_and_removed_by_reload_while_messages_flow(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    bund_room = await max_.create_room(alias="reloaded", name="reloaded", public=True)
    first = await jean.create_room(
        alias="reloaded", name="reloaded", public=True, initial_state=[UNRESTRICTED]
    )
    second = await jean.create_room(
        alias="reloaded2", name="reloaded2", public=True, initial_state=[UNRESTRICTED]
    )
    with config_restored(world) as original:
        async with flowing(world) as sent:
            # Added: the link's rooms are joined and bridged both ways.
            world.config_path.write_text(original + LINK.format(tchap_room="#reloaded:tchap.test"))
            logged = await world.bridge.reload()
            assert "Config reloaded: 2 room(s) set up" in logged
            text = unique("Neuer Link")
            await max_.send_text(bund_room, text)
            await jean.wait_for(first, body_is(text))
            text = unique("Nouveau lien")
            await jean.send_text(first, text)
            await max_.wait_for(bund_room, body_is(text))

            # Moved on Tchap: the old room is told (in French), the new one takes over.
            world.config_path.write_text(original + LINK.format(tchap_room="#reloaded2:tchap.test"))
            logged = await world.bridge.reload()
            assert "Config reloaded: 1 room(s) set up, 1 room(s) unbridged" in logged
            await jean.wait_for(first, body_is(UNBRIDGED_FR))
            text = unique("Umgezogen")
            await max_.send_text(bund_room, text)
            await jean.wait_for(second, body_is(text))
            assert text not in await bodies(jean, first)

            # Removed: both rooms are told in their language, the ghosts and the bot leave.
            world.config_path.write_text(original)
            logged = await world.bridge.reload()
            assert "Config reloaded: 2 room(s) unbridged" in logged
            await max_.wait_for(bund_room, body_is(UNBRIDGED_DE))
            await jean.wait_for(second, body_is(UNBRIDGED_FR))
            members = await max_.client.get_joined_members(RoomID(bund_room))
            assert sorted(members) == ["@max:bund.test"]
            after = unique("Nicht mehr verbunden")
            await max_.send_text(bund_room, after)
        assert len(sent) >= 3
    await asyncio.sleep(1)
    assert after not in await bodies(jean, second)


async def test_a_renamed_person_is_renamed_everywhere_by_reload(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    text = unique("Vor der Umbenennung")
    await max_.send_text(world.rooms["bund:main"], text)
    ghost = (await jean.wait_for(world.rooms["tchap:main"], body_is(text)))["sender"]
    with config_restored(world) as original:
        world.config_path.write_text(
            original.replace("name: Max Mustermann\n", "name: Max Mustermann-Schulz\n", 1)
        )
        logged = await world.bridge.reload()
        assert "Config reloaded: 1 person(s) renamed" in logged
        await named(world, ghost, "Max Mustermann-Schulz [BMI]")
    await world.bridge.reload()
    await named(world, ghost, "Max Mustermann [BMI]")


async def named(world: World, ghost: str, name: str) -> None:
    """Until Jean sees ``ghost`` named ``name`` in the main room (the homeserver updates the
    ghost's member events after its profile)."""
    jean, room = world.users["jean"], world.rooms["tchap:main"]
    for _ in range(50):
        if await name_of(jean, room, ghost) == name:
            return
        await asyncio.sleep(0.2)
    assert await name_of(jean, room, ghost) == name


async def test_a_config_with_a_mistake_leaves_the_running_one(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    with config_restored(world) as original:
        world.config_path.write_text(original.replace("links:", "linsk:", 1))
        logged = await world.bridge.reload()
        assert "Config not reloaded (the running one stays):" in logged
        assert "linsk: unknown key 'linsk' (did you mean 'links'?)" in logged
        text = unique("Läuft weiter")
        await max_.send_text(world.rooms["bund:main"], text)
        await jean.wait_for(world.rooms["tchap:main"], body_is(text))
    logged = await world.bridge.reload()
    assert "Config reloaded: unchanged" in logged


async def test_a_changed_network_is_reconnected_alone(world: World) -> None:
    """Tchap's settings change: its connector is replaced (the homeserver's transactions reach
    the new one), and the relay link on the other Tchap network is not touched."""
    max_, jean = world.users["max"], world.users["jean"]
    with config_restored(world) as original:
        world.config_path.write_text(
            original.replace('name_suffix: " (Tchap)"', 'name_suffix: " (Tchap FR)"', 1)
        )
        logged = await world.bridge.reload()
        assert "Config reloaded: 1 network(s) reconnected" in logged
        assert await jean_shown_on_bund(world, unique("Après la reconnexion")) == (
            "Jean Dupont [Intérieur] (Tchap FR)"
        )
        text = unique("Nach dem Neuverbinden")
        await max_.send_text(world.rooms["bund:main"], text)
        await jean.wait_for(world.rooms["tchap:main"], body_is(text))
        text = unique("Relais unberührt")
        await max_.send_text(world.rooms["bund:relay"], text)
        await jean.wait_for(
            world.rooms["tchap:relay"], lambda e: text in e["content"].get("body", "")
        )
    logged = await world.bridge.reload()
    assert "Config reloaded: 1 network(s) reconnected" in logged
    assert await jean_shown_on_bund(world, unique("Zurück")) == "Jean Dupont [Intérieur] (Tchap)"


async def jean_shown_on_bund(world: World, text: str) -> str:
    """The name under which Max sees ``text``, which Jean sends now in Tchap's main room, arrive
    in bund's."""
    max_, room = world.users["max"], world.rooms["bund:main"]
    await world.users["jean"].send_text(world.rooms["tchap:main"], text)
    seen = await max_.wait_for(room, body_is(text))
    return await name_of(max_, room, seen["sender"])


def passerelle(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", *args, "-c", str(world.config_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip


async def test_passerelle_reload_checks_then_has_the_bridge_apply_it(world: World) -> None:
    with config_restored(world) as original:
        world.config_path.write_text(original.replace("links:", "linsk:", 1))
        done = await asyncio.to_thread(passerelle, world, "reload")
        assert done.returncode == 1
        assert "linsk: unknown key 'linsk' (did you mean 'links'?)" in done.stderr
        world.config_path.write_text(
            original.replace("name: Max Mustermann\n", "name: Max Mustermann-Schulz\n", 1)
        )
        done = await asyncio.to_thread(passerelle, world, "reload")
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{world.config_path}: reloaded (1 person(s) renamed)\n"
    done = await asyncio.to_thread(passerelle, world, "reload")
    assert done.stdout == f"{world.config_path}: reloaded (1 person(s) renamed)\n"
    done = await asyncio.to_thread(passerelle, world, "reload")
    assert done.stdout == f"{world.config_path}: reloaded (unchanged)\n"
