"""The audit trail and people's rights on two real Synapse homeservers, as an officer checks them
with the bridge's own commands while it runs: a message crossing from the German homeserver to
Tchap leaves a record with the right fields and none of its content, a message held back from a
restricted Tchap room leaves a refusal, and a person forgotten keeps the chain intact."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from bridge.audit import content_of, keyed
from bridge.events import Event, Kind, Sender
from tests.harness.bridge import REPO_ROOT
from tests.harness.expect import body_is, unique
from tests.world import AUDIT_KEY, World

pytestmark = pytest.mark.e2e


async def passerelle(world: World, *argv: str) -> tuple[int, str]:
    """Run ``passerelle … -c <the world's config>`` as an admin would; exit status and output."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bridge", *argv, "-c", str(world.config_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


async def records(world: World, link: str, since: float) -> list[dict[str, Any]]:
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since - 1))
    code, out = await passerelle(world, "audit", "export", "--link", link, "--since", when)
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


async def eventually(world: World, link: str, since: float, match: Any) -> dict[str, Any]:
    """The first record of ``link`` since ``since`` that ``match``es (written as the outbox
    takes the delivery out, a moment after the target has it)."""
    for _ in range(50):
        found = [r for r in await records(world, link, since) if match(r)]
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no such audit record: {await records(world, link, since)}")


async def test_a_message_crossing_to_tchap_is_recorded_without_content(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    started = time.time()
    text = unique("Vertrauliche Sitzung um neun")
    await max_.send_text(world.rooms["bund:main"], text)
    await jean.wait_for(world.rooms["tchap:main"], body_is(text))

    record = await eventually(world, "main", started, lambda r: r["sender"] == "@max:bund.test")
    assert (record["link"], record["source"], record["target"]) == ("main", "bund", "tchap")
    assert (record["kind"], record["decision"], record["reason"]) == ("message", "delivered", "")
    assert record["size"] == len(text.encode())
    assert started - 1 <= time.mktime(time.strptime(record["time"][:19], "%Y-%m-%dT%H:%M:%S")) \
        - time.timezone <= time.time() + 1  # fmt: skip
    # The hash is of the content under the admin's key: an officer holding it can confirm a
    # message, nobody else can, and the text itself is nowhere in the trail.
    sent = Event(kind=Kind.MESSAGE, link_id="main", network="bund", room_id="", remote_id="",
                 sender=Sender("bund", "", ""), text=text)  # fmt: skip
    assert record["content_hash"] == keyed(AUDIT_KEY.encode(), "content", content_of(sent))
    code, out = await passerelle(world, "audit", "export", "--format", "csv")
    assert code == 0 and text not in out and record["content_hash"] in out

    code, out = await passerelle(world, "audit", "verify")
    assert code == 0 and out.startswith("Audit trail intact: records 1–"), out


async def test_a_message_held_back_from_a_restricted_room_is_recorded(world: World) -> None:
    max_ = world.users["max"]
    started = time.time()
    await max_.send_text(world.rooms["bund:restr"], unique("Nicht für Externe"))
    record = await eventually(world, "restricted", started,
                              lambda r: r["sender"] == "@max:bund.test")  # fmt: skip
    assert (record["source"], record["target"]) == ("bund", "tchap")
    assert (record["decision"], record["reason"]) == ("refused", "room_off")


async def test_a_forgotten_person_keeps_the_chain_and_can_write_again(world: World) -> None:
    erika, jean = world.users["erika"], world.users["jean"]
    started = time.time()
    text = unique("Erika vor dem Vergessen")
    await erika.send_text(world.rooms["bund:main"], text)
    seen = await jean.wait_for(world.rooms["tchap:main"], body_is(text))
    await eventually(world, "main", started, lambda r: r["sender"] == "@erika:bund.test")

    code, out = await passerelle(world, "person", "export", "@erika:bund.test")
    assert code == 0, out
    held = json.loads(out)
    assert held["people_entry"] is None
    assert any(r["sender"] == "@erika:bund.test" for r in held["audit_records"])
    profiles = {(p["network"], p["ghost"], p["name"]) for p in held["matrix"]["ghost_profiles"]}
    assert ("tchap", seen["sender"], "Erika Musterfrau [BMI]") in profiles

    code, out = await passerelle(world, "person", "forget", "@erika:bund.test")
    assert code == 0 and out.startswith("Forgot @erika:bund.test:\n"), out
    assert "  matrix.ghost_profiles: 1" in out.splitlines()
    held = json.loads((await passerelle(world, "person", "export", "@erika:bund.test"))[1])
    assert held["audit_records"] == [] and held["matrix"]["ghost_profiles"] == []
    pseudonymised = [r for r in await records(world, "main", started)
                     if r["sender"].startswith("forgotten-")]  # fmt: skip
    assert pseudonymised and all(r["source"] == "bund" for r in pseudonymised)
    code, out = await passerelle(world, "audit", "verify")
    assert code == 0 and "pseudonymised" in out, out

    # Forgetting is not blocking: her next message crosses under her name, her ghost renamed.
    text = unique("Erika nach dem Vergessen")
    await erika.send_text(world.rooms["bund:main"], text)
    again = await jean.wait_for(world.rooms["tchap:main"], body_is(text))
    assert again["sender"] == seen["sender"]
