"""End to end with a signed federation list: the Tchap network takes its domains from a list
its federation's operator signs (a file here, re-read every second). Real Synapse homeservers,
a real Prosody and the bridge process; the lists are made with the same functions as
``passerelle federation-list sign``.

A list that adds ``tchap.test`` lets Jean's messages cross (his ghost appears on bund.test, his
puppet in the MUC); a newer one that drops it takes his ghost and puppet out at once and stops
his next message. Forged, expired and rolled-back lists are refused, with a log line and the
alert metric, and the last good list stays in force."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from mautrix.types import RoomID
from prometheus_client.parser import text_string_to_metric_families

from tests.federation_keys import key_pair, signed_list
from tests.harness import world as build
from tests.harness.expect import bodies, body_is, unique
from tests.xmpp_world import MUC, XmppWorld, start_xmpp_world

pytestmark = pytest.mark.e2e

LISTED = """\
    flavour: tchap
    federation_list:
      file: federation.jws
      public_key: {file: federation.pub}
      refresh: 1s
"""
JEAN = "@jean.dupont-interieur.gouv.fr:tchap.test"


@pytest.fixture(scope="module")
async def fw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[XmppWorld]:
    """The XMPP world (bund, tchap and a MUC in one link), and then its admin gives the Tchap
    network a federation list that names only another domain, and reloads."""
    root = tmp_path_factory.mktemp("federation-list-world")
    world = await build.started(start_xmpp_world, root, xmpp=True)
    (world.root / "federation.pub").write_text(key_pair()[1])
    publish(world, signed_list(1, ["elsewhere.test"]))
    config = world.config_path.read_text()
    world.config_path.write_text(config.replace("    flavour: tchap\n", LISTED, 1))
    logged = await world.bridge.reload()
    assert "Config reloaded: federation_list changed" in logged
    assert "Federation list of tchap: version 1 in force (1 domain(s)" in logged
    yield world
    await world.stop()


def publish(world: XmppWorld, token: str) -> None:
    """What the operator's sync job does: the new signed list replaces the file at once."""
    path = world.root / "federation.jws"
    (world.root / "federation.jws.new").write_text(token)
    (world.root / "federation.jws.new").rename(path)


async def logged(world: XmppWorld, text: str, since: int, timeout: float = 20) -> None:  # noqa: ASYNC109
    """Until the bridge has logged ``text`` after the ``since``-th character of its log."""
    for _ in range(int(timeout * 10)):
        if text in world.bridge.log_text()[since:]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not logged within {timeout}s: {text}")


async def not_bridged(world: XmppWorld, text: str) -> None:
    """Jean writes ``text``: the bridge refuses it as it arrives (its log says why), and
    neither bund nor the MUC shows it."""
    since = len(world.bridge.log_text())
    event_id = await world.users["jean"].send_text(world.rooms["tchap"], text)
    await logged(world, f"Not bridging {event_id} from {JEAN}: tchap.test is not on the "
                        "federation list (not_on_federation_list)", since)  # fmt: skip
    marker = unique("Markierung")
    await world.users["max"].send_text(world.rooms["bund"], marker)
    await world.xmpp["alice"].wait_for_body(MUC, marker)
    assert text not in await bodies(world.users["max"], world.rooms["bund"])
    assert text not in [m["body"] for m in world.xmpp["alice"].received]


async def bridged(world: XmppWorld, text: str) -> str:
    """Jean writes ``text``: it reaches bund (the ghost's ID is returned) and the MUC."""
    await world.users["jean"].send_text(world.rooms["tchap"], text)
    await world.xmpp["alice"].wait_for_body(MUC, text)
    seen = await world.users["max"].wait_for(world.rooms["bund"], body_is(text))
    return str(seen["sender"])


async def refused_total(world: XmppWorld, reason: str) -> float:
    url = f"http://{world.bridge.host}:{world.bridge.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "passerelle_federation_list_refused_total" and sample.labels == {
                "network": "tchap", "reason": reason
            }:  # fmt: skip
                return float(sample.value)
    return 0.0


async def test_a_list_that_adds_a_domain_and_later_drops_it(fw: XmppWorld) -> None:
    max_, alice = fw.users["max"], fw.xmpp["alice"]
    await not_bridged(fw, unique("Avant la liste"))

    since = len(fw.bridge.log_text())
    publish(fw, signed_list(2, ["elsewhere.test", "tchap.test"]))
    await logged(fw, "Federation list of tchap: version 2 in force (2 domain(s)", since)
    ghost = await bridged(fw, unique("Sur la liste"))
    anna = unique("Anna écrit depuis Tchap")
    await fw.users["anna_tchap"].send_text(fw.rooms["tchap"], anna)
    jean_nick = "Jean Dupont [Intérieur] (Tchap)"
    assert (await alice.wait_for_body(MUC, anna))["from"].resource == "Anna Schmidt [AA]"
    assert {jean_nick, "Anna Schmidt [AA]"} <= set(alice.occupants(MUC))
    presences = len(alice.presences)

    since = len(fw.bridge.log_text())
    publish(fw, signed_list(3, ["elsewhere.test"]))
    await logged(fw, "Federation list of tchap: version 3 in force (1 domain(s), expires ", since)
    await logged(fw, "no longer listed: tchap.test", since)
    for _ in range(100):
        members = await max_.client.get_joined_members(RoomID(fw.rooms["bund"]))
        if ghost not in members and alice.left(MUC, jean_nick, presences):
            break
        await asyncio.sleep(0.2)
    assert ghost not in members  # Jean's ghost left the bund room
    assert alice.left(MUC, jean_nick, presences)  # and his puppet the MUC
    # Anna is listed with a bund account too, so her one puppet may stay for that one.
    assert not alice.left(MUC, "Anna Schmidt [AA]", presences)
    await not_bridged(fw, unique("Après la liste"))
    text = unique("Bund schreibt weiter")
    await max_.send_text(fw.rooms["bund"], text)
    await fw.users["jean"].wait_for(fw.rooms["tchap"], body_is(text))


async def test_forged_expired_and_rolled_back_lists_leave_the_last_good_one_in_force(
    fw: XmppWorld,
) -> None:
    since = len(fw.bridge.log_text())
    publish(fw, signed_list(4, ["tchap.test"]))
    await logged(fw, "Federation list of tchap: version 4 in force (1 domain(s)", since)
    await bridged(fw, unique("De retour sur la liste"))  # his ghost and puppet come back

    header, _, signature = signed_list(4, ["tchap.test"]).split(".")
    _, payload, _ = signed_list(5, ["tchap.test", "evil.test"]).split(".")
    refused = {reason: await refused_total(fw, reason)
               for reason in ("bad_signature", "expired", "rolled_back")}  # fmt: skip
    for token, reason, detail in (
        (f"{header}.{payload}.{signature}", "bad_signature",
         "the signature does not match the configured key"),
        (signed_list(5, [], key="someone else"), "bad_signature",
         "the signature does not match the configured key"),
        (signed_list(5, [], datetime.now(UTC) - timedelta(minutes=5)), "expired", "expired at "),
    ):  # fmt: skip
        since = len(fw.bridge.log_text())
        publish(fw, token)
        await logged(fw, f"Federation list of tchap refused ({reason}): {detail}", since)
        await logged(fw, "version 4 stays in force", since)
        await bridged(fw, unique(f"Toujours sur la liste ({reason})"))
    assert await refused_total(fw, "bad_signature") >= refused["bad_signature"] + 2
    assert await refused_total(fw, "expired") >= refused["expired"] + 1

    since = len(fw.bridge.log_text())
    publish(fw, signed_list(6, []))
    await logged(fw, "Federation list of tchap: version 6 in force (0 domain(s)", since)
    since = len(fw.bridge.log_text())
    publish(fw, signed_list(4, ["tchap.test"]))  # the old list again: a rollback
    await logged(fw, "Federation list of tchap refused (rolled_back): version 4 is older than "
                     "version 6, the last one taken; version 6 stays in force", since)  # fmt: skip
    assert await refused_total(fw, "rolled_back") >= refused["rolled_back"] + 1
    await not_bridged(fw, unique("Liste périmée rejouée"))
