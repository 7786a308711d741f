"""What the Matrix and XMPP connectors keep in tables of their own (`Kind.state`), as the
bridge's database keeps it across restarts, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from connectors.matrix import state as matrix
from connectors.matrix.state import GhostProfile, MatrixState
from connectors.xmpp import state as xmpp
from connectors.xmpp.rooms import Remembered
from connectors.xmpp.state import XmppState
from tests.harness.postgres import Opener

ROOM = "wg@conference.xmpp.test"


async def test_matrix_tables_survive_a_restart_per_network(open_store: Opener) -> None:
    store = await open_store()
    tchap = MatrixState(await store.open_state(matrix.upgrade_table), "tchap")
    await tchap.save_sync_position("s42_1")
    await tchap.save_room_position("!a:t", "t1")
    await tchap.save_ghost_profile("@a:t", GhostProfile("Alice", None))
    await tchap.mark_txn_handled("1", "d1")
    await store.close()

    store = await open_store()
    db = await store.open_state(matrix.upgrade_table)
    tchap, bund = MatrixState(db, "tchap"), MatrixState(db, "bund")
    assert await tchap.sync_position() == "s42_1"
    assert await bund.sync_position() is None
    assert await tchap.room_positions() == {"!a:t": "t1"}
    assert await tchap.ghost_profile("@a:t") == GhostProfile("Alice", None)
    assert await bund.ghost_profile("@a:t") is None
    assert await tchap.txn_handled("1", "d1") and not await bund.txn_handled("1", "d1")


async def test_upserts(open_store: Opener) -> None:
    state = MatrixState(await (await open_store()).open_state(matrix.upgrade_table), "tchap")
    await state.save_sync_position("s1")
    await state.save_sync_position("s2")
    assert await state.sync_position() == "s2"
    await state.save_ghost_profile("@a:t", GhostProfile("Alice", None))
    await state.save_ghost_profile("@a:t", GhostProfile("Alice [BMI]", "mxc://b/y"))
    assert await state.ghost_profile("@a:t") == GhostProfile("Alice [BMI]", "mxc://b/y")
    await state.save_room_position("!a:t", "t1")
    await state.save_room_position("!a:t", "t2")
    assert await state.room_positions() == {"!a:t": "t2"}


async def test_room_facts_are_read_back_in_one_query_per_network(open_store: Opener) -> None:
    """A restart checks its rooms by these instead of a request per room."""
    store = await open_store()
    tchap = MatrixState(await store.open_state(matrix.upgrade_table), "tchap")
    await tchap.save_room_fact("!a:t", "im.vector.room.access_rules", {"rule": "restricted"})
    await tchap.save_room_fact("!a:t", "im.vector.room.access_rules", {"rule": "unrestricted"})
    await tchap.save_room_fact("!a:t", "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    await tchap.save_room_fact("!b:t", "m.room.encryption", None)
    await store.close()

    db = await (await open_store()).open_state(matrix.upgrade_table)
    assert sorted(await MatrixState(db, "tchap").room_facts()) == [
        ("!a:t", "im.vector.room.access_rules", {"rule": "unrestricted"}),
        ("!a:t", "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}),
        ("!b:t", "m.room.encryption", None),
    ]
    assert await MatrixState(db, "bund").room_facts() == []


async def test_a_reused_txn_id_with_new_content_is_not_a_replay(open_store: Opener) -> None:
    """Synapse on SQLite numbers its transactions from 1 again after a restart."""
    state = MatrixState(await (await open_store()).open_state(matrix.upgrade_table), "bund")
    await state.mark_txn_handled("1", "before-restart")
    await state.mark_txn_handled("1", "before-restart")  # idempotent
    assert not await state.txn_handled("1", "after-restart")
    await state.mark_txn_handled("1", "after-restart")
    assert await state.txn_handled("1", "after-restart")


async def test_occupant_identities_survive_a_restart_per_network(open_store: Opener) -> None:
    store = await open_store()
    db = await store.open_state(xmpp.upgrade_table)
    state, other = XmppState(db, "xmpp"), XmppState(db, "other")
    await state.save_occupant_identity(ROOM, "a1", "alice@xmpp.test")
    await state.save_occupant_identity(ROOM, "h1", "")  # a room that hides the JID
    await state.save_occupant_identity(ROOM, "h1", "hidden@xmpp.test")  # learned later
    await other.save_occupant_identity(ROOM, "a1", "someone@other.test")
    await store.close()
    reopened = XmppState(await (await open_store()).open_state(xmpp.upgrade_table), "xmpp")
    assert sorted(await reopened.occupant_identities()) == [
        (ROOM, "a1", "alice@xmpp.test"),
        (ROOM, "h1", "hidden@xmpp.test"),
    ]
    assert await XmppState(reopened.db, "nowhere").occupant_identities() == []


def entry(memory: str, key: str, value: str, room: str = ROOM) -> Remembered:
    return Remembered(room, memory, json.dumps(key), json.dumps(value))


async def test_room_memories_survive_a_restart_newest_write_last(open_store: Opener) -> None:
    store = await open_store()
    db = await store.open_state(xmpp.upgrade_table)
    state, other = XmppState(db, "xmpp"), XmppState(db, "other")
    await state.save_memories([entry("id", "m1", "S1"), entry("id", "m2", "S2")])
    await state.save_memories([entry("id", "m1", "S3")])  # rewritten: now the newest
    await other.save_memories([entry("id", "m1", "elsewhere")])
    await store.close()
    reopened = XmppState(await (await open_store()).open_state(xmpp.upgrade_table), "xmpp")
    assert await reopened.memories() == [entry("id", "m2", "S2"), entry("id", "m1", "S3")]


async def test_room_memories_are_pruned_to_the_newest_per_room_and_kind(
    open_store: Opener,
) -> None:
    state = XmppState(await (await open_store()).open_state(xmpp.upgrade_table), "xmpp")
    await state.save_memories([entry("id", f"m{i}", f"S{i}") for i in range(5)])
    await state.save_memories([entry("quote", "S1", "q"), entry("id", "x", "y", room="b@c.t")])
    await state.prune_memories(2)
    assert await state.memories() == [
        entry("id", "m3", "S3"), entry("id", "m4", "S4"),
        entry("quote", "S1", "q"), entry("id", "x", "y", room="b@c.t"),
    ]  # fmt: skip
