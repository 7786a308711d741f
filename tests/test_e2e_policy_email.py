"""Classification marks in a mail's subject, end to end: the mail world's ``wg`` link joins a
mailing address with bund and Tchap; bund and the mail network may carry VS-NfD, Tchap only the
lowest level. Claire mails "[VS-NfD] …" with a report attached: bund gets the text and the file,
Tchap neither, and the link's members get the bridge's notice by mail; her next, unmarked mail
reaches Tchap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from mautrix.types import ContentURI

from tests.classification import classified
from tests.email_world import (
    CLAIRE,
    EmailWorld,
    compose,
    send_mail,
    sign,
    start_email_world,
)
from tests.harness import world as build
from tests.harness.expect import bodies, body_is, unique
from tests.harness.smtp import RelayedMail

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmailWorld]:
    """The mail world, then its admin classifies and reloads."""
    started = await build.started(start_email_world, tmp_path_factory.mktemp("policy-email-world"))
    config = classified(started.config_path.read_text())
    for network in ("    server_name: bund.test\n", "  mail:\n    kind: email\n"):
        config = config.replace(network, f"{network}    policy: {{classification: VS-NfD}}\n", 1)
    started.config_path.write_text(config)
    logged = await started.bridge.reload()
    assert "Config reloaded: policy changed" in logged, logged[-2000:]
    yield started
    await started.stop()


def notice_mentions(text: str) -> Callable[[RelayedMail], bool]:
    """A notice the bridge mailed to the link's members, whose text says ``text``."""

    def matches(mail: RelayedMail) -> bool:
        body = mail.message.get_body(("plain",))
        return body is not None and text in str(body.get_content())

    return matches


async def test_a_subject_tag_holds_a_mail_and_its_file_back_from_tchap(world: EmailWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    subject = unique("[VS-NfD] Lagebericht")
    report = ("Lage.pdf", "application/pdf", PDF)
    msg = compose(CLAIRE, world.address("mail"), subject, "Die Einzelheiten.",
                  name="Claire Martin", attachment=report)  # fmt: skip
    await send_mail(world, "mail", sign(msg, world.claire_key.private_pem), CLAIRE)

    # bund may carry VS-NfD: the text and the file arrive.
    seen = await max_.wait_for(world.rooms["bund:wg"], body_is(f"{subject}\n\nDie Einzelheiten."))
    file = await max_.wait_for(world.rooms["bund:wg"],
                               lambda e: e["content"].get("filename") == "Lage.pdf",
                               after=seen["event_id"])  # fmt: skip
    assert await max_.client.download_media(ContentURI(file["content"]["url"])) == PDF
    # Tchap may not: the link's members are told by mail, in the mail network's language.
    told = await world.relay.wait_for(notice_mentions(
        f"“{subject} Die Einzelheiten.” from Claire Martin could not be delivered to Tchap "
        "(marked VS-NfD, higher than Tchap may carry)"
    ))  # fmt: skip
    assert CLAIRE in told.recipients

    # Her next mail, unmarked, reaches Tchap; the marked one and its file never did.
    after = unique("Offene Rückfrage")
    msg = compose(CLAIRE, world.address("mail"), after, "Bitte um Rückmeldung.",
                  name="Claire Martin")  # fmt: skip
    await send_mail(world, "mail", sign(msg, world.claire_key.private_pem), CLAIRE)
    await jean.wait_for(world.rooms["tchap:wg"], body_is(f"{after}\n\nBitte um Rückmeldung."))
    shown = [body or "" for body in await bodies(jean, world.rooms["tchap:wg"], limit=100)]
    assert not [body for body in shown if "Lagebericht" in body or "Lage.pdf" in body]
