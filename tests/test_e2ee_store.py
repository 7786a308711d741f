"""The encryption state in the bridge's own database, on SQLite and PostgreSQL: an identity and
the events waiting for their keys survive a restart, networks keep separate identities, and the
crypto tables migrate beside the bridge's own without disturbing them."""

from __future__ import annotations

from mautrix.crypto import OlmAccount, PgCryptoStore
from mautrix.types import DeviceID

from bridge.store import Store
from connectors.matrix.crypto_store import PICKLE_KEY, PendingEvents, crypto_databases
from tests.harness.postgres import Opener


async def _identity(store: Store, network: str) -> tuple[str | None, str | None]:
    """(device ID, identity key) stored for ``network``."""
    crypto_db, _ = await crypto_databases(store.db)
    crypto = PgCryptoStore(network, PICKLE_KEY, crypto_db)
    account = await crypto.get_account()
    return await crypto.get_device_id() or None, account.identity_key if account else None


async def test_identity_survives_a_restart_and_networks_keep_their_own(
    open_store: Opener,
) -> None:
    store = await open_store()
    crypto_db, _ = await crypto_databases(store.db)
    for network, device in (("bund", "BUNDDEVICE"), ("tchap", "TCHAPDEVICE")):
        crypto = PgCryptoStore(network, PICKLE_KEY, crypto_db)
        await crypto.put_account(OlmAccount())
        await crypto.put_device_id(DeviceID(device))
    bund = await _identity(store, "bund")
    tchap = await _identity(store, "tchap")
    await store.close()

    restarted = await open_store()
    assert await _identity(restarted, "bund") == bund
    assert await _identity(restarted, "tchap") == tchap
    assert bund[0] == "BUNDDEVICE" and tchap[0] == "TCHAPDEVICE"
    assert bund[1] != tchap[1]
    assert await _identity(restarted, "relay") == (None, None)
    assert await restarted.outbox_size() == 0, "the bridge's own tables are untouched"


async def test_events_waiting_for_keys_survive_a_restart(open_store: Opener) -> None:
    store = await open_store()
    _, pending_db = await crypto_databases(store.db)
    waiting = {"event_id": "$waiting", "room_id": "!r:bund.test", "type": "m.room.encrypted",
               "content": {"algorithm": "m.megolm.v1.aes-sha2", "session_id": "s"}}  # fmt: skip
    await PendingEvents(pending_db, "bund").add(waiting)
    await PendingEvents(pending_db, "bund").add(waiting)  # the same event redelivered
    await PendingEvents(pending_db, "bund").add({**waiting, "event_id": "$solved"})
    await PendingEvents(pending_db, "bund").remove("$solved")
    await store.close()

    restarted = await open_store()
    _, pending_db = await crypto_databases(restarted.db)
    parked = await PendingEvents(pending_db, "bund").all()
    assert [p.raw for p in parked] == [waiting]
    assert await PendingEvents(pending_db, "tchap").all() == []
