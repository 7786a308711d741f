"""In-room commands: which messages are commands, what the answers read in each language, and,
through the real router and store in memory (`tests.test_router`), that a command is answered
in its own room only, never passed on, answered once, and not too often."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config.load import load_config
from bridge.connector import Unavailable
from bridge.events import Attachment, AttachmentKind, Event, Kind, MsgType, Sender
from bridge.links import DirectChat
from bridge.room_commands import (
    SHOWN_NAMES,
    Command,
    NetworkState,
    Reach,
    Roster,
    Throttle,
    command_of,
    help_text,
    status_text,
    who_text,
)
from tests.test_router import CONFIG, Bridge, Recording, close, message, open_bridge, settled

SENDER = Sender(network="bund", user_id="@max:bund.example", display_name="Max")


def text(body: str, **more: Any) -> Event:
    more.setdefault("kind", Kind.MESSAGE)
    return Event(link_id="wg", network="bund", room_id="!wg:bund.example", remote_id="$1",
                 sender=SENDER, text=body, **more)  # fmt: skip


@pytest.mark.parametrize(("body", "command"), [
    ("!passerelle who", Command.WHO),
    ("!Passerelle STATUS", Command.STATUS),
    ("  !passerelle\n  help  ", Command.HELP),
    ("!passerelle", Command.HELP),
    ("!passerelle who is reading along?", Command.WHO),
    ("!passerelle wer", Command.UNKNOWN),
    ("!passerelle who " + "x" * 1_000_000, Command.WHO),
])  # fmt: skip
def test_a_message_whose_first_word_is_the_prefix_is_a_command(body: str, command: Command) -> None:
    assert command_of(text(body)) is command


@pytest.mark.parametrize("event", [
    text("!passerellewho"),
    text("Hallo !passerelle who"),
    text("passerelle who"),
    text(""),
    text(" " * 100 + "!passerelle who"),
    text("!passerelle who", msgtype=MsgType.NOTICE),
    text("!passerelle who", msgtype=MsgType.EMOTE),
    text("!passerelle who", kind=Kind.EDIT, relates_to="$0"),
    text("!passerelle who", attachment=Attachment(AttachmentKind.FILE, "a.txt", None, 1, "mxc://x/y")),
])  # fmt: skip
def test_anything_else_is_an_ordinary_message(event: Event) -> None:
    assert command_of(event) is None


def test_the_help_names_the_linked_networks_in_each_language() -> None:
    assert help_text("de", ["Tchap", "XMPP BSI"]) == (
        "Passerelle verbindet diesen Raum mit Tchap, XMPP BSI. Befehle: „!passerelle status“: "
        "welche Netze dieser Raum erreicht und ob sie antworten; „!passerelle who“: wer in den "
        "verbundenen Räumen der anderen Netze ist; „!passerelle help“: dieser Text. Nachrichten, "
        "die mit !passerelle beginnen, werden nicht weitergeleitet."
    )
    assert help_text("fr", ["BundesMessenger"], unknown=True) == (
        "Commande inconnue. Passerelle relie ce salon à BundesMessenger. Commandes : "
        "« !passerelle status » : les réseaux que ce salon atteint et s’ils répondent ; "
        "« !passerelle who » : qui est dans les salons reliés des autres réseaux ; "
        "« !passerelle help » : ce texte. Les messages qui commencent par !passerelle ne sont "
        "pas transmis."
    )


def test_the_status_says_how_each_network_is() -> None:
    states = [
        NetworkState("Tchap", Reach.UP),
        NetworkState("XMPP", Reach.DOWN, down_for=10),
        NetworkState("E-Mail", Reach.DOWN, down_for=3 * 3600),
        NetworkState("Alt", Reach.DOWN, down_for=4 * 86400),
        NetworkState("Neu", Reach.PENDING),
        NetworkState("Zu", Reach.OFF),
        NetworkState("Gesperrt", Reach.REFUSED),
    ]
    assert status_text("de", states) == "\n".join([
        "Dieser Raum erreicht:",
        "• Tchap: erreichbar",
        "• XMPP: seit 1 min nicht erreichbar; Nachrichten warten",
        "• E-Mail: seit 3 h nicht erreichbar; Nachrichten warten",
        "• Alt: seit 4 Tagen nicht erreichbar; Nachrichten warten",
        "• Neu: der Raum dort ist noch nicht eingerichtet",
        "• Zu: nicht verbunden, der Raum dort lässt es nicht zu",
        "• Gesperrt: verweigert der Brücke den Zugang, bis eine Administratorin oder ein "
        "Administrator das behebt; Nachrichten warten",
    ])  # fmt: skip
    assert status_text("en", states[:2]) == (
        "This room reaches:\n• Tchap: reachable\n• XMPP: unreachable for 1 min; messages wait"
    )


def test_who_lists_safe_names_sorted_and_bounded() -> None:
    many = [f"Person {i:02d}" for i in range(SHOWN_NAMES + 3)]
    rosters = [
        Roster("Tchap", ["jean Dupont", "Anna\u202e Schmidt\n[AA]", "  ", "Émile"]),
        Roster("XMPP", many),
        Roster("E-Mail", []),
        Roster("Alt", None),
        Roster("Zu", None, off=True),
    ]
    shown = ", ".join(many[:SHOWN_NAMES])
    assert who_text("fr", rosters) == "\n".join([
        "Dans les salons reliés :",
        "• Tchap : Anna Schmidt [AA], Émile, jean Dupont",
        f"• XMPP : {shown} et 3 autres",
        "• E-Mail : personne",
        "• Alt : impossible à interroger pour l’instant",
        "• Zu : non relié",
    ])  # fmt: skip


def test_the_throttle_allows_a_few_answers_per_room_and_window() -> None:
    now = [0.0]
    throttle = Throttle(burst=3, window=60, clock=lambda: now[0])
    assert [throttle.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert throttle.allow("b")
    now[0] = 59.9
    assert not throttle.allow("a")
    now[0] = 60.0
    assert throttle.allow("a")


# Through the router


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    opened = await open_bridge(tmp_path)
    yield opened
    await opened.router.answers.stop()
    await close(opened)


async def notices_of(
    connector: Recording, count: int, what: Callable[[str], bool] = lambda n: True
) -> list[tuple[str, str]]:
    """The notices ``connector`` was asked to post, once ``count`` of them passed ``what``."""
    for _ in range(1000):
        if sum(1 for _, n in connector.notices if what(n)) >= count:
            return connector.notices
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} notice(s) expected, got {connector.notices}")


async def test_a_command_is_answered_in_its_room_only_and_not_passed_on(bridge: Bridge) -> None:
    bridge.tchap.people = ["Jean Dupont [Intérieur]", "Anna Schmidt [AA]"]
    bridge.third.people = Unavailable("connection refused")
    assert await bridge.router.ingest(message("$who", "!passerelle who"))
    await bridge.router.ingest(message("$after", "danach ganz normal"))
    await settled(bridge.router)
    assert await notices_of(bridge.bund, 1) == [("!wg:bund.example", "\n".join([
        "In den verbundenen Räumen:",
        "• Tchap: Anna Schmidt [AA], Jean Dupont [Intérieur]",
        "• third: gerade nicht abfragbar",
    ]))]  # fmt: skip
    assert bridge.tchap.texts() == bridge.third.texts() == ["danach ganz normal"]
    assert bridge.tchap.notices == bridge.third.notices == []


async def test_a_command_seen_twice_is_answered_once(bridge: Bridge) -> None:
    assert await bridge.router.ingest(message("$s", "!passerelle status", network="tchap"))
    assert not await bridge.router.ingest(message("$s", "!passerelle status", network="tchap"))
    await notices_of(bridge.tchap, 1)
    await asyncio.sleep(0.2)
    assert bridge.tchap.notices == [
        ("!wg:tchap.example", "Ce salon atteint :\n• bund : joignable\n• third : joignable")
    ]


async def test_status_tells_a_network_that_is_down_and_a_room_switched_off(
    bridge: Bridge,
) -> None:
    bridge.router.health.down("tchap", "connection refused")
    bridge.directory.disable("wg", "third", "the room is end-to-end encrypted")
    await bridge.router.ingest(message("$st", "!passerelle status"))
    await bridge.router.ingest(message("$wh", "!passerelle who"))
    [(_, status), (_, who)] = sorted(await notices_of(bridge.bund, 2), key=lambda n: n[1][0])
    assert status == "\n".join([
        "Dieser Raum erreicht:",
        "• Tchap: seit 1 min nicht erreichbar; Nachrichten warten",
        "• third: nicht verbunden, der Raum dort lässt es nicht zu",
    ])  # fmt: skip
    assert who.endswith("• third: nicht verbunden")


async def test_answers_after_a_reload_use_the_new_config(bridge: Bridge, tmp_path: Path) -> None:
    """An admin renames a network and switches its language: the next answer says so."""
    renamed = CONFIG.replace("  third:\n", "  third:\n    label: Dritte\n    language: fr\n")
    (tmp_path / "reloaded.yaml").write_text(renamed.format(life="5d"))
    bridge.router.use(load_config(tmp_path / "reloaded.yaml", {}))
    await bridge.router.ingest(message("$st", "!passerelle status"))
    await bridge.router.ingest(message("$th", "!passerelle status", network="third"))
    notices = await notices_of(bridge.bund, 1) + await notices_of(bridge.third, 1)
    assert notices == [
        ("!wg:bund.example", "Dieser Raum erreicht:\n• Tchap: erreichbar\n• Dritte: erreichbar"),
        ("!wg:third.example", "Ce salon atteint :\n• bund : joignable\n• Tchap : joignable"),
    ]


async def test_a_room_gets_a_few_answers_and_then_none(bridge: Bridge) -> None:
    """Someone repeating a command: the bridge answers the first few and then stays quiet
    there, passes none on, and still answers in another room."""
    for i in range(12):
        assert await bridge.router.ingest(message(f"$h{i}", "!passerelle"))
    await bridge.router.ingest(message("$elsewhere", "!passerelle", link="other"))
    await notices_of(bridge.bund, 6)
    await asyncio.sleep(0.2)
    rooms = [room for room, _ in bridge.bund.notices]
    assert rooms.count("!wg:bund.example") == 5
    assert rooms.count("!other:bund.example") == 1
    await settled(bridge.router)
    assert bridge.tchap.sent == bridge.third.sent == []


async def test_where_commands_are_not_taken_the_message_is_passed_on(bridge: Bridge) -> None:
    """A network whose notices would not reach the asker alone (email), and a direct chat:
    the text is an ordinary message there."""
    bridge.third.takes_commands = False
    await bridge.router.ingest(message("$mail", "!passerelle who", network="third"))
    chat = DirectChat("direct-1", "bund", "!dm:bund.example", "tchap", "@jean:tchap.example",
                      "!dm:tchap.example")  # fmt: skip
    bridge.router.links.add_direct(chat)
    bridge.directory.bind("direct-1", "bund", "!dm:bund.example")
    bridge.directory.bind("direct-1", "tchap", "!dm:tchap.example")
    await bridge.router.ingest(message("$dm", "!passerelle help", link="direct-1"))
    await settled(bridge.router)
    assert bridge.bund.texts() == ["!passerelle who"]
    assert bridge.tchap.texts() == ["!passerelle who", "!passerelle help"]
    assert bridge.bund.notices == bridge.third.notices == []
