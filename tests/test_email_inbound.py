"""Tests of connectors.email.inbound: the SMTP server's dialogue is logged at DEBUG, not INFO,
with a real SMTP client talking to it."""

from __future__ import annotations

import logging

import aiosmtplib
import pytest

from connectors.email.config import InboundSettings
from connectors.email.inbound import InboundServer, Received
from tests.harness import free_port


class Gate:
    def mail(self, sender: str) -> str | None:
        return None

    def rcpt(self, sender: str, recipient: str) -> str | None:
        return None

    async def data(self, mail: Received) -> str:
        return "250 2.0.0 OK"


async def send_one(port: int) -> None:
    await aiosmtplib.send(
        b"From: a@b.test\r\nSubject: x\r\n\r\nHallo\r\n",
        sender="a@b.test",
        recipients=["wg@lists.passerelle.test"],
        hostname="127.0.0.1",
        port=port,
        start_tls=False,
        timeout=10,
    )


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_the_smtp_dialogue_is_logged_at_debug(
    caplog: pytest.LogCaptureFixture, level: int
) -> None:
    port = free_port()
    settings = InboundSettings("127.0.0.1", port, None, None, 1 << 20)
    server = InboundServer(settings, "l.test", Gate())
    await server.start()
    try:
        with caplog.at_level(level):
            await send_one(port)
    finally:
        await server.stop()
    dialogue = [r for r in caplog.records if r.name == "mail.log"]
    if level == logging.INFO:
        assert dialogue == []
    else:
        assert {r.levelname for r in dialogue} == {"DEBUG"}
        assert any(">> b'MAIL FROM:<a@b.test>" in r.getMessage() for r in dialogue)


def test_warnings_of_the_smtp_server_stay_warnings(caplog: pytest.LogCaptureFixture) -> None:
    InboundServer(InboundSettings("127.0.0.1", 2525, None, None, 1 << 20), "l.test", Gate())
    with caplog.at_level(logging.INFO):
        logging.getLogger("mail.log").warning("%r too many bogus commands", ("192.0.2.1", 25))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "('192.0.2.1', 25) too many bogus commands")
    ]
