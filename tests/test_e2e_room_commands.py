"""End to end on two real Synapse homeservers: people in a linked room ask the bridge
``!passerelle help``, ``status`` and ``who``; the bot answers in their room, in their network's
language, and the command never reaches the other side."""

from __future__ import annotations

import pytest

from tests.harness import User
from tests.harness.expect import body_has, unique
from tests.world import World

pytestmark = pytest.mark.e2e

HELP_DE = (
    "Passerelle verbindet diesen Raum mit Tchap. Befehle: „!passerelle status“: welche Netze "
    "dieser Raum erreicht und ob sie antworten; „!passerelle who“: wer in den verbundenen Räumen "
    "der anderen Netze ist; „!passerelle help“: dieser Text. Nachrichten, die mit !passerelle "
    "beginnen, werden nicht weitergeleitet."
)
HELP_FR = (
    "Passerelle relie ce salon à bund. Commandes : « !passerelle status » : les réseaux que ce "
    "salon atteint et s’ils répondent ; « !passerelle who » : qui est dans les salons reliés des "
    "autres réseaux ; « !passerelle help » : ce texte. Les messages qui commencent par "
    "!passerelle ne sont pas transmis."
)


async def ask(user: User, room: str, command: str, bot: str) -> str:
    """Send ``command`` and return the body of the bot's next notice in the room."""
    sent = await user.send_text(room, command)
    answer = await user.wait_for(
        room,
        lambda e: e.get("sender") == bot and e["content"].get("msgtype") == "m.notice",
        after=sent,
    )
    return str(answer["content"]["body"])


async def passes_messages(user: User, room: str, reader: User, other_room: str) -> None:
    """A message sent now in ``room`` arrives in ``other_room``: what was sent before it had its
    chance to cross."""
    text = unique("danach")
    await user.send_text(room, text)
    await reader.wait_for(other_room, body_has(text))


async def bridged_commands(reader: User, room: str, bridge: str = "@passerelle") -> list[str]:
    """Messages the bridge (its ghosts or bot: user IDs starting with ``bridge``) posted in the
    room that carry a command; its answers are notices."""
    return [
        e["content"]["body"]
        for e in await reader.messages(room, 100)
        if e.get("type") == "m.room.message"
        and e["sender"].startswith(bridge)
        and e["content"].get("msgtype") != "m.notice"
        and "!passerelle" in e["content"].get("body", "").lower()
    ]


@pytest.mark.parametrize(
    ("asker", "network", "reader", "other", "exchanges"),
    [
        pytest.param("max", "bund", "jean", "tchap", [
            ("!passerelle help", HELP_DE),
            ("!passerelle status", "Dieser Raum erreicht:\n• Tchap: erreichbar"),
            ("!Passerelle WHO",
             "In den verbundenen Räumen:\n• Tchap: Anna Schmidt [AA], Jean Dupont [Intérieur]"),
            ("!passerelle wer", f"Unbekannter Befehl. {HELP_DE}"),
        ], id="in_german_on_the_german_network"),
        pytest.param("jean", "tchap", "max", "bund", [
            ("!passerelle", HELP_FR),
            ("!passerelle status", "Ce salon atteint :\n• bund : joignable"),
            ("!passerelle who",
             "Dans les salons reliés :\n• bund : Anna Schmidt, Erika Musterfrau, Max Mustermann"),
        ], id="in_french_on_tchap"),
    ],
)  # fmt: skip
async def test_commands_are_answered(
    world: World, asker: str, network: str, reader: str, other: str,
    exchanges: list[tuple[str, str]],
) -> None:  # fmt: skip
    """In the main room of ``network``, ``asker`` gets each answer of ``exchanges`` from the
    network's bot, and ``reader`` in the linked room of ``other`` sees none of the commands."""
    user, other_user = world.users[asker], world.users[reader]
    room, other_room = world.rooms[f"{network}:main"], world.rooms[f"{other}:main"]
    await passes_messages(user, room, other_user, other_room)
    bot = f"@passerelle:{network}.test"
    for command, answer in exchanges:
        assert await ask(user, room, command, bot) == answer
    await passes_messages(user, room, other_user, other_room)
    assert await bridged_commands(other_user, other_room) == []


async def test_commands_are_answered_by_the_relay_bot_in_relay_mode(world: World) -> None:
    """Tchap in relay mode: the relay bot answers there; on the German side, `who` lists the
    Tchap room without the relay bot."""
    max_, jean = world.users["max"], world.users["jean"]
    bund, tchap = world.rooms["bund:relay"], world.rooms["tchap:relay"]
    assert await ask(jean, tchap, "!passerelle who", "@relaybot:tchap.test") == (
        "Dans les salons reliés :\n• bund : Erika Musterfrau, Max Mustermann"
    )
    assert await ask(max_, bund, "!passerelle who", "@passerelle:bund.test") == (
        "In den verbundenen Räumen:\n• Tchap: Jean Dupont [Intérieur]"
    )
    await passes_messages(jean, tchap, max_, bund)
    await passes_messages(max_, bund, jean, tchap)
    assert await bridged_commands(max_, bund) == []
    assert await bridged_commands(jean, tchap, "@relaybot") == []
