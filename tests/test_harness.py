"""Smoke test of the harness itself: a real Synapse, two real users, a message, a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Homeserver, HomeserverError, User, require_server, synapse_available

pytestmark = pytest.mark.e2e


async def test_homeserver_message_roundtrip_and_restart(tmp_path: Path) -> None:
    reason = synapse_available()
    if reason:
        require_server("synapse", reason)
    hs = Homeserver("bund.test", tmp_path / "bund")
    try:
        await hs.start()
    except HomeserverError as exc:
        require_server("synapse", str(exc))
    alice = bob = None
    try:
        alice = await User.register(hs, "alice", displayname="Alice")
        bob = await User.register(hs, "bob")
        assert alice.user_id == "@alice:bund.test"

        room = await alice.create_room(name="Smoke", alias="smoke", invitees=[bob.user_id])
        assert await bob.join("#smoke:bund.test") == room
        first = await alice.send_text(room, "hello", html="<b>hello</b>")

        event = await bob.wait_for_text(room, "hello", sender=alice.user_id, timeout=10)
        assert event["event_id"] == first
        assert event["content"]["formatted_body"] == "<b>hello</b>"

        await hs.restart()
        await alice.send_text(room, "after restart")
        event = await bob.wait_for(
            room,
            lambda e: e.get("content", {}).get("body") == "after restart",
            timeout=10,
            after=first,
        )
        assert event["sender"] == alice.user_id
        bodies = [e["content"].get("body") for e in await bob.messages(room)]
        assert bodies[-2:] == ["hello", "after restart"]
    finally:
        for user in (alice, bob):
            if user is not None:
                await user.close()
        await hs.astop()
