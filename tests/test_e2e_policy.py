"""Per-link policy end to end on the real homeservers: an admin makes a link one-way, lets only
some file types into Tchap, and classifies: bund may carry VS-NfD, Tchap (appservice) the same
level under its French name, the Tchap relay network only OFFEN. What people see in each room.

The module edits the shared world's config, reloads, and puts the config back at the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from mautrix.types import ContentURI

from tests.classification import classified
from tests.harness import User, content
from tests.harness.clients import Predicate
from tests.harness.expect import bodies, body_has, body_is, unique
from tests.harness.world import UNRESTRICTED
from tests.world import World

pytestmark = pytest.mark.e2e

BUND = "    kind: matrix\n    flavour: matrix\n"
TCHAP = "    flavour: tchap\n    homeserver:"
RELAY = "    mode: relay\n"
LINKS = """\
  - id: oneway
    rooms:
      bund: "#oneway:bund.test"
      tchap: "#oneway:tchap.test"
    policy:
      bund: {direction: send}
      tchap: {direction: receive}
  - id: policy
    rooms:
      bund: "#policy:bund.test"
      tchap: "#policy:tchap.test"
      tchap-relay: "#policyrelay:tchap.test"
"""
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(240)
"""The start of a Windows executable."""
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def policed(config: str) -> str:
    """The world's config with the policy of this module."""
    config = classified(config)
    config = config.replace(BUND, BUND + "    policy: {classification: VS-NfD}\n", 1)
    config = config.replace(TCHAP, (
        "    flavour: tchap\n"
        "    policy:\n"
        "      classification: DIFFUSION RESTREINTE\n"
        "      attachments: {types: [image/*, application/pdf, text/plain], max_size: 1M}\n"
        "    homeserver:"
    ), 1)  # fmt: skip
    config = config.replace(RELAY, RELAY + "    policy: {classification: OFFEN}\n", 1)
    return config + LINKS


@pytest.fixture(scope="module")
async def rooms(world: World) -> AsyncIterator[dict[str, str]]:
    """The rooms of the module's two links, made by their people, then bridged by a reload
    that also brings in the policy."""
    max_, jean = world.users["max"], world.users["jean"]
    made = {
        "bund:oneway": await max_.create_room(alias="oneway", name="oneway", public=True),
        "bund:policy": await max_.create_room(alias="policy", name="policy", public=True),
    }
    for key, alias in (("tchap:oneway", "oneway"), ("tchap:policy", "policy"),
                       ("relay:policy", "policyrelay")):  # fmt: skip
        made[key] = await jean.create_room(alias=alias, name=alias, public=True,
                                           initial_state=[UNRESTRICTED])  # fmt: skip
    original = world.config_path.read_text()
    world.config_path.write_text(policed(original))
    try:
        logged = await world.bridge.reload()
        assert "Config reloaded: 5 room(s) set up, policy changed" in logged, logged[-2000:]
        await bridged(world, made)
        yield made
    finally:
        world.config_path.write_text(original)
        await world.bridge.reload()


async def bridged(world: World, made: dict[str, str]) -> None:
    """Until the bridge passes messages in both new links (one-way as it is)."""
    max_, jean = world.users["max"], world.users["jean"]
    for link in ("oneway", "policy"):
        text = unique(f"Bereit? {link}")
        await max_.send_text(made[f"bund:{link}"], text)
        await jean.wait_for(made[f"tchap:{link}"], body_is(text), timeout=60)
    await jean.wait_for(made["relay:policy"], body_has("Bereit? policy"), timeout=60)


async def test_a_one_way_link_mirrors_bund_into_tchap_and_nothing_back(
    world: World, rooms: dict[str, str]
) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    announcement = unique("Mitteilung an alle")
    await max_.send_text(rooms["bund:oneway"], announcement)
    await jean.wait_for(rooms["tchap:oneway"], body_is(announcement))

    start = len(world.bridge.log_text())
    answer = unique("Réponse qui reste ici")
    answer_id = await jean.send_text(rooms["tchap:oneway"], answer)
    await logged(world, f"Not passing {answer_id} of tchap on to bund (link oneway)", start)
    later = unique("Zweite Mitteilung")
    await max_.send_text(rooms["bund:oneway"], later)
    await jean.wait_for(rooms["tchap:oneway"], body_is(later))
    assert answer not in await bodies(max_, rooms["bund:oneway"])


async def test_a_file_refused_by_its_bytes_leaves_its_text_and_the_sender_is_told(
    world: World, rooms: dict[str, str]
) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    # An executable renamed to .pdf, its type claimed as PDF: Tchap takes PDFs, not this.
    caption = unique("Der Bericht zur Lage")
    await send_file(max_, rooms["bund:policy"], PE, "bericht.pdf", caption)
    withheld = await jean.wait_for(rooms["tchap:policy"], body_has(caption))
    assert withheld["content"]["msgtype"] == "m.text" and "url" not in withheld["content"]
    assert withheld["content"]["body"] == f"{caption}\n[fichier retenu : type non autorisé]"
    await max_.wait_for(rooms["bund:policy"], body_is(
        "⚠️ Die Datei „bericht.pdf“ wurde nicht an Tchap weitergegeben: Dateien dieses Typs "
        "(application/x-dosexec) sind dort nicht erlaubt. Der Text ist angekommen; teilen Sie "
        "die Datei auf anderem Weg."
    ))  # fmt: skip
    # The relay network allows any file: it got this one, bytes and all.
    relayed = await jean.wait_for(rooms["relay:policy"], lambda e: e["content"].get("url")
                                  and caption in str(e["content"].get("body")))  # fmt: skip
    assert await jean.client.download_media(ContentURI(relayed["content"]["url"])) == PE

    # A real PDF reaches Tchap as a file.
    data = PDF + uuid.uuid4().hex.encode()
    caption = unique("Der echte Bericht")
    await send_file(max_, rooms["bund:policy"], data, "echt.pdf", caption)
    seen = await jean.wait_for(rooms["tchap:policy"], lambda e: e["content"].get("msgtype")
                               == "m.file" and caption in str(e["content"]))  # fmt: skip
    assert await jean.client.download_media(ContentURI(seen["content"]["url"])) == data


async def test_a_vs_nfd_message_is_held_back_from_an_offen_network_only(
    world: World, rooms: dict[str, str]
) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    secret = unique("Lagebericht Nord")
    marked = f"VS-NUR FÜR DEN DIENSTGEBRAUCH\n{secret}"
    marked_id = await max_.send_text(rooms["bund:policy"], marked)
    # Tchap (appservice) may carry DIFFUSION RESTREINTE, the same level: it gets it.
    await jean.wait_for(rooms["tchap:policy"], body_is(marked))
    # The relay network only OFFEN: Max is told, in German.
    await max_.wait_for(rooms["bund:policy"], held_back_notice("VS-NUR FÜR DEN DIENSTGEBRAUCH"))
    # Its edit (the mark taken out) does not leak it either; what follows flows on.
    await max_.send_event(rooms["bund:policy"], "m.room.message",
                          content.edit(f"{secret} (korrigiert)", marked_id))  # fmt: skip
    after = unique("Offene Mitteilung")
    await max_.send_text(rooms["bund:policy"], after)
    await jean.wait_for(rooms["relay:policy"], body_has(after))
    relayed = [body or "" for body in await bodies(jean, rooms["relay:policy"], limit=100)]
    assert not [body for body in relayed if secret in body]
    # A mark in brackets on its own first line counts the same.
    bracketed = f"[VS-NfD]\n{unique('Lage Süd')}"
    await max_.send_text(rooms["bund:policy"], bracketed)
    await jean.wait_for(rooms["tchap:policy"], body_is(bracketed))
    await max_.wait_for(rooms["bund:policy"], held_back_notice("[VS-NfD] Lage Süd"))


def held_back_notice(start: str) -> Predicate:
    """Max's notice, in German, that his message starting with ``start`` did not reach the
    relay network ("Tchap" too, by its name suffix) for its mark."""
    return lambda e: (
        str(e["content"].get("body")).startswith(f"⚠️ Nachricht „{start}")
        and str(e["content"].get("body")).endswith(
            "“ von Max Mustermann konnte nicht an Tchap zugestellt werden (als VS-NfD "
            "eingestuft, höher als für Tchap zugelassen)."
        )
    )


async def send_file(user: User, room_id: str, data: bytes, name: str, caption: str) -> str:
    """A file with a caption, its type claimed from its name, as a client sends it."""
    mxc = await user.client.upload_media(data, mime_type="application/pdf", filename=name)
    return await user.send_event(room_id, "m.room.message", {
        "msgtype": "m.file", "body": caption, "filename": name, "url": mxc,
        "info": {"mimetype": "application/pdf", "size": len(data)},
    })  # fmt: skip


async def logged(world: World, text: str, since: int) -> None:
    """Until the bridge has logged ``text`` after the ``since``-th character of its log."""
    for _ in range(300):
        if text in world.bridge.log_text()[since:]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not logged within 30 s: {text}")
