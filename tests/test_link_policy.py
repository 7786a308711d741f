"""Per-link policy: the config that states it (and its located errors), the pure decisions made
on it (direction, classification, files read from their bytes), and a reload that changes it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bridge.config import load_config
from bridge.config.model import Config
from bridge.config.policy import Direction
from bridge.connector import Refusal
from bridge.events import Attachment, AttachmentKind, Event, Kind, Sender
from bridge.link_policy import (
    FileRefusal,
    crosses,
    declared_too_large,
    file_refusal,
    file_withheld_notice,
    held_back,
    marked_level,
    sniffed_type,
    withheld,
)
from bridge.reload import diff
from bridge.router import undelivered_notice
from tests.test_config import VALID, errors_of, write
from tests.test_router import Recording, close, open_bridge, settled
from tests.test_router import message as routed

SCHEME = """\
classification:
  levels:
    - level: OFFEN
      marks: [NON PROTÉGÉ]
    - level: VS-NfD
      marks: [VS-NUR FÜR DEN DIENSTGEBRAUCH, DIFFUSION RESTREINTE]
"""
POLICED = SCHEME + VALID.replace(
    "      access_token: relay-secret\n",
    "      access_token: relay-secret\n"
    "    policy:\n"
    "      classification: DIFFUSION RESTREINTE\n"
    "      attachments: {types: [image/*, application/pdf], max_size: 1M}\n",
).replace(
    "      tchap: {create: {name: WG}}\n",
    "      tchap: {create: {name: WG}}\n"
    "    policy:\n"
    "      bund: {direction: send}\n"
    "      tchap: {direction: receive, attachments: {max_size: 2K}}\n",
)
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(240)
"""The first bytes of a Windows executable (a DOS header)."""
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def config(tmp_path: Path, text: str = POLICED, name: str = "config.yaml") -> Config:
    return load_config(write(tmp_path, text, name), {})


def message(text: str = "Hallo", link: str = "wg", **more: object) -> Event:
    sender = Sender(network="bund", user_id="@max:bund.test", display_name="Max")
    return Event(kind=Kind.MESSAGE, link_id=link, network="bund", room_id="!abc:bund.test",
                 remote_id="$1", sender=sender, text=text, **more)  # type: ignore[arg-type]  # fmt: skip


# -- config --------------------------------------------------------------------------------------


def test_network_defaults_and_link_overrides(tmp_path: Path) -> None:
    policy = config(tmp_path).policy
    bund, tchap = policy.room("wg", "bund"), policy.room("wg", "tchap")
    assert bund.direction is Direction.SEND and bund.ceiling == 0 and bund.types is None
    # The link's tchap room keeps the network's types and level, with its own size and direction.
    assert tchap.direction is Direction.RECEIVE
    assert tchap.types == ("image/*", "application/pdf") and tchap.max_size == 2048
    assert tchap.ceiling == 1
    # Another link (a direct chat, say) has the network's defaults.
    assert policy.room("other", "tchap").max_size == 1024**2
    assert policy.room("other", "bund").direction is Direction.BOTH


def test_no_policy_means_everything_crosses(tmp_path: Path) -> None:
    policy = config(tmp_path, VALID).policy
    assert policy.classification is None and crosses(policy, "wg", "tchap", "bund")
    assert held_back(policy, message("VS-NfD\nx"), "tchap") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            POLICED.replace("direction: send", "direction: out"),
            "links[0].policy.bund.direction: must be one of: both, send, receive",
        ),
        (
            POLICED.replace("classification: DIFFUSION RESTREINTE", "classification: GEHEIM"),
            'networks.tchap.policy.classification: "GEHEIM" is not a level of the '
            'classification section ("OFFEN", "VS-NfD")',
        ),
        (
            POLICED.replace("image/*", "images"),
            'networks.tchap.policy.attachments.types[0]: "images" is not a media type '
            "(type/subtype or type/*)",
        ),
        (
            POLICED.replace("max_size: 1M", "max_size: lots"),
            'networks.tchap.policy.attachments.max_size: "lots" is not a size (bytes, or e.g. '
            "512K, 25M, 1G)",
        ),
        (
            POLICED.replace("max_size: 1M", "max_size: 0"),
            "networks.tchap.policy.attachments.max_size: must be at least 1",
        ),
        (
            POLICED.replace("      bund: {direction: send}\n", "      mail: {direction: send}\n"),
            'links[0].policy.mail: the link has no room on "mail"; its rooms are on: bund, tchap',
        ),
        (
            POLICED.replace("direction: receive,", "direction: receive, colour: red,"),
            "links[0].policy.tchap.colour: unknown key 'colour'",
        ),
        (
            POLICED.replace("[NON PROTÉGÉ]", "[DIFFUSION RESTREINTE]"),
            'classification.levels[1]: the mark "diffusion restreinte" already means level "OFFEN"',
        ),
        (
            POLICED.replace("    - level: VS-NfD\n", "    - level: OFFEN\n    - level: VS-NfD\n"),
            'classification.levels[1]: level "OFFEN" is listed twice',
        ),
        (
            SCHEME + "  marking_line: ['\\[(VS.*)\\]']\n" + POLICED.removeprefix(SCHEME),
            "classification.marking_line[0]: needs a group named mark, (?P<mark>…), around the "
            "mark",
        ),
        (
            SCHEME + "  subject_tag: ['(?P<mark>[']\n" + POLICED.removeprefix(SCHEME),
            "classification.subject_tag[0]: not a regular expression: unterminated character set "
            "at position 9",
        ),
        (
            SCHEME + "  unmarked: STRENG GEHEIM\n" + POLICED.removeprefix(SCHEME),
            'classification.unmarked: "STRENG GEHEIM" is not a level of the classification '
            'section ("OFFEN", "VS-NfD")',
        ),
        (
            POLICED.removeprefix(SCHEME),
            "networks.tchap.policy.classification: define the levels first, in the top-level "
            "classification section",
        ),
    ],
)
def test_errors_are_located(tmp_path: Path, text: str, error: str) -> None:
    errors = errors_of(write(tmp_path, text))
    assert len(errors) == 1 and errors[0].split(": ", 1)[1] == error, errors


def test_the_example_config_states_a_policy(tmp_path: Path) -> None:
    example = (Path(__file__).parent.parent / "config.example.yaml").read_text()
    policy = config(tmp_path, example.replace('as_token: ""', "as_token: x")
                    .replace('hs_token: ""', "hs_token: y")).policy  # fmt: skip
    assert policy.classification is not None and len(policy.classification.levels) >= 2
    assert policy.room("cloud-wg", "tchap").types == ("application/pdf",)
    assert policy.room("cloud-wg", "bund").direction is Direction.BOTH


# -- decisions -----------------------------------------------------------------------------------


def test_direction_send_and_receive(tmp_path: Path) -> None:
    policy = config(tmp_path).policy
    assert crosses(policy, "wg", "bund", "tchap")
    assert not crosses(policy, "wg", "tchap", "bund")


@pytest.mark.parametrize(
    ("text", "subject", "rank"),
    [
        ("Hallo zusammen", None, 0),
        ("VS-NUR FÜR DEN DIENSTGEBRAUCH\nLagebericht", None, 1),
        ("\n  [vs-nfd]  \nLagebericht", None, 1),
        ("Diffusion  Restreinte\nCompte rendu", None, 1),
        ("NON PROTÉGÉ\nBonjour", None, 0),
        ("Lagebericht\nVS-NfD", None, 0),  # a mark only counts as the leading line
        ("[Update] Lagebericht", None, 0),  # brackets that are no mark
        ("Lagebericht", "[VS-NfD] Lagebericht", 1),  # a mail's subject tag
        ("Lagebericht", "Re: [OFFEN] Lagebericht", 0),
    ],
)
def test_marks_are_recognised(tmp_path: Path, text: str, subject: str | None, rank: int) -> None:
    scheme = config(tmp_path).policy.classification
    assert scheme is not None
    extra = {"subject": subject} if subject else {}
    assert marked_level(scheme, message(text, extra=extra)) == rank


def test_custom_patterns_and_unmarked_level(tmp_path: Path) -> None:
    text = SCHEME + "  marking_line: ['Einstufung: (?P<mark>.+)']\n  unmarked: VS-NfD\n"
    scheme = config(tmp_path, text + POLICED.removeprefix(SCHEME)).policy.classification
    assert scheme is not None
    assert marked_level(scheme, message("Einstufung: OFFEN\nHallo")) == 0
    assert marked_level(scheme, message("OFFEN\nHallo")) == 1  # the default line is replaced


def test_a_marked_message_is_held_back_only_where_it_is_too_high(tmp_path: Path) -> None:
    policy = config(tmp_path, POLICED.replace("direction: send", "direction: both")).policy
    marked = message("VS-NUR FÜR DEN DIENSTGEBRAUCH\nLagebericht")
    assert held_back(policy, marked, "tchap") is None  # DIFFUSION RESTREINTE: the same level
    toward_bund = Event(**{**vars(marked), "network": "tchap", "link_id": "wg"})
    level = held_back(policy, toward_bund, "bund")  # bund declares nothing: the lowest level
    assert level is not None and level.name == "VS-NfD"
    assert held_back(policy, message("Hallo"), "bund") is None


def test_a_held_back_message_notice_names_the_level() -> None:
    shown = undelivered_notice(message("VS-NfD\nLage"), "Tchap", Refusal.CLASSIFIED, 86400,
                               "bund.test", "VS-NfD")  # fmt: skip
    assert shown.render("de") == (
        "⚠️ Nachricht „VS-NfD Lage“ von Max konnte nicht an Tchap zugestellt werden "
        "(als VS-NfD eingestuft, höher als für Tchap zugelassen)."
    )
    assert str(shown).endswith("(marked VS-NfD, higher than Tchap may carry).")


def test_file_types_come_from_the_bytes() -> None:
    assert sniffed_type(PE) == "application/x-dosexec"
    assert sniffed_type(PDF) == "application/pdf"
    picture = io.BytesIO()
    Image.new("RGB", (2, 2)).save(picture, "PNG")
    assert sniffed_type(picture.getvalue()) == "image/png"
    assert sniffed_type(b"Treffen um 10?\n") == "text/plain"


def test_file_refusals(tmp_path: Path) -> None:
    room = config(tmp_path).policy.room("other", "tchap")
    assert file_refusal(room, "application/pdf", 1000) is None
    assert file_refusal(room, "image/png", 1000) is None  # image/*
    assert file_refusal(room, "application/x-dosexec", 1000) is FileRefusal.TYPE
    assert file_refusal(room, "application/pdf", 2 * 1024**2) is FileRefusal.SIZE
    assert declared_too_large(room, 2 * 1024**2) and not declared_too_large(room, None)
    anything = config(tmp_path, VALID, "plain.yaml").policy.room("wg", "tchap")
    assert file_refusal(anything, "application/x-dosexec", 10**9) is None


def test_a_withheld_file_leaves_its_text_and_a_line_in_the_target_language() -> None:
    file = Attachment(AttachmentKind.FILE, "bericht.pdf", "application/pdf", 100, "mxc://b/x")
    event = message("Der Bericht", attachment=file, html="<p>Der Bericht</p>")
    shown = withheld(event, FileRefusal.TYPE, "fr")
    assert shown.attachment is None
    assert shown.text == "Der Bericht\n[fichier retenu : type non autorisé]"
    assert shown.html == "<p>Der Bericht</p><br><em>[fichier retenu : type non autorisé]</em>"
    alone = withheld(message("", attachment=file), FileRefusal.SIZE, "de")
    assert alone.text == "[Datei zurückgehalten: zu groß]" and alone.html is None
    told = file_withheld_notice(event, FileRefusal.TYPE, "Tchap", "application/x-dosexec", None)
    assert told.render("de") == (
        "⚠️ Die Datei „bericht.pdf“ wurde nicht an Tchap weitergegeben: Dateien dieses Typs "
        "(application/x-dosexec) sind dort nicht erlaubt. Der Text ist angekommen; teilen Sie "
        "die Datei auf anderem Weg."
    )
    big = file_withheld_notice(event, FileRefusal.SIZE, "Tchap", "", 25 * 1024**2)
    assert "it is larger than 25 MB" in str(big)


# -- reload --------------------------------------------------------------------------------------


def test_a_reload_applies_a_changed_policy(tmp_path: Path) -> None:
    old = config(tmp_path, VALID, "before.yaml")
    new = config(tmp_path, POLICED, "after.yaml")
    change = diff(old, new)
    assert change.other == ("policy",) and not change.networks_changed
    assert not change.rooms_added and not change.rooms_removed
    assert change.summary() == "policy changed"
    assert diff(new, config(tmp_path, POLICED, "again.yaml")).empty


# -- the router, in memory, before and after a reload ----------------------------------------------

ROUTER_POLICY = """\
classification:
  levels:
    - level: OFFEN
    - level: VS-NfD
      marks: [DIFFUSION RESTREINTE]
"""


class Files(Recording):
    """A recording network whose people send files (every reference is these bytes)."""

    async def fetch_media(self, ref: str) -> bytes:
        return PE


async def test_the_router_applies_a_reloaded_policy(tmp_path: Path) -> None:
    bridge = await open_bridge(tmp_path)
    files = Files("bund")
    bridge.router.connectors = {**bridge.router.connectors, "bund": files}
    try:
        await bridge.router.ingest(routed("$before", "VS-NfD\nvorher"))
        await settled(bridge.router)
        assert [out.event.text for out in bridge.third.sent] == ["VS-NfD\nvorher"]

        text = (tmp_path / "config.yaml").read_text()
        text = ROUTER_POLICY + text.replace("    server_name: tchap.example\n", (
            "    server_name: tchap.example\n"
            "    policy: {classification: DIFFUSION RESTREINTE, attachments: {types: [image/*]}}\n"
        )).replace("    server_name: bund.example\n", (
            "    server_name: bund.example\n    policy: {classification: VS-NfD}\n"
        )) + "    policy: {tchap: {direction: receive}}\n"  # fmt: skip
        (tmp_path / "after.yaml").write_text(text)
        bridge.router.use(load_config(tmp_path / "after.yaml", {}))

        # Marked: to tchap (the same level), not to third (the lowest); the sender is told.
        await bridge.router.ingest(routed("$marked", "VS-NfD\nnachher"))
        await bridge.router.ingest(routed("$edit", "nachher", kind=Kind.EDIT,
                                           relates_to="$marked"))  # fmt: skip
        await bridge.router.ingest(routed("$like", kind=Kind.REACTION, relates_to="$marked",
                                           reaction="👍"))  # fmt: skip
        await bridge.router.ingest(routed("$open", "offen"))
        # A reply reaches third without its formatted part, which may quote what it replies to.
        quoting = "<p>Einverstanden</p><details><blockquote>VS-NfD nachher</blockquote></details>"
        await bridge.router.ingest(routed("$reply", "Einverstanden", reply_to="$marked",
                                          html=quoting))  # fmt: skip
        await settled(bridge.router)
        assert [out.event.text for out in bridge.third.sent] == [
            "VS-NfD\nvorher", "offen", "Einverstanden"]  # fmt: skip
        assert bridge.third.sent[-1].event.html is None and bridge.third.sent[-1].reply_to is None
        assert bridge.tchap.sent[-1].event.html == quoting
        kinds = [Kind.MESSAGE, Kind.MESSAGE, Kind.EDIT, Kind.REACTION, Kind.MESSAGE, Kind.MESSAGE]
        assert [out.event.kind for out in bridge.tchap.sent] == kinds
        [(room, told)] = files.notices
        assert room == "!wg:bund.example" and "als VS-NfD eingestuft" in told

        # The "other" link's tchap room only receives now.
        await bridge.router.ingest(routed("$back", "zurück", link="other", network="tchap"))
        await settled(bridge.router)
        assert "zurück" not in [out.event.text for out in files.sent]

        # A file tchap does not take, by its bytes: its text goes with the withheld line.
        file = Attachment(AttachmentKind.FILE, "bild.png", "image/png", len(PE), "mxc://b/1")
        await bridge.router.ingest(routed("$file", "Das Bild", link="other", attachment=file))
        await settled(bridge.router)
        last = bridge.tchap.sent[-1].event
        assert last.attachment is None
        assert last.text == "Das Bild\n[fichier retenu : type non autorisé]"
        assert "(application/x-dosexec)" in files.notices[-1][1]
    finally:
        await close(bridge)
