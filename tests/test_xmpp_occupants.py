"""Who XMPP rooms said their occupants are (XEP-0421 occupant-id → real JID), as the store
keeps it across restarts, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.harness.postgres import Opener

ROOM = "wg@conference.xmpp.test"


async def test_occupant_identities_survive_a_restart_per_network(open_store: Opener) -> None:
    store = await open_store()
    await store.save_occupant_identity("xmpp", ROOM, "a1", "alice@xmpp.test")
    await store.save_occupant_identity("xmpp", ROOM, "h1", "")  # a room that hides the JID
    await store.save_occupant_identity("xmpp", ROOM, "h1", "hidden@xmpp.test")  # learned later
    await store.save_occupant_identity("other", ROOM, "a1", "someone@other.test")
    await store.close()
    reopened = await open_store()
    assert sorted(await reopened.occupant_identities("xmpp")) == [
        (ROOM, "a1", "alice@xmpp.test"),
        (ROOM, "h1", "hidden@xmpp.test"),
    ]
    assert await reopened.occupant_identities("nowhere") == []
