"""Tests of connectors.email.worker: reading a mail happens in a process of its own whose time
budget is enforced, and a mail that overruns it harms no other mail."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from connectors.email.parse import MalformedMail, parse_mail
from connectors.email.worker import MailWorker, TooComplex

BUDGET = 1.0


def mail(headers: str, body: str = "Hallo\n") -> bytes:
    return (headers.strip() + "\n\n" + body).replace("\n", "\r\n").encode()


SLOW = mail(
    'From: a@b.test\nContent-Type: multipart/mixed; boundary="b"',
    "--b\nContent-Type: text/plain"
    + "".join(f";\n p{i}=v{i}" for i in range(40_000))
    + "\n\nHallo\n--b--\n",
)
"""40,000 parameters in a part's Content-Type: many times the budget of the email package's
time."""


@pytest.fixture
async def worker() -> AsyncIterator[MailWorker]:
    started = MailWorker(BUDGET)
    await started.start()
    yield started
    await asyncio.to_thread(started.stop)


async def test_a_mail_is_read_in_another_process(worker: MailWorker) -> None:
    assert await worker.run(os.getpid) != os.getpid()
    parsed = await worker.run(parse_mail, mail("From: Claire <c@anssi.test>\nSubject: Hallo"))
    assert (parsed.from_name, parsed.subject, parsed.text) == ("Claire", "Hallo", "Hallo")


async def test_the_documented_error_comes_back_as_raised(worker: MailWorker) -> None:
    with pytest.raises(MalformedMail, match="unreadable Message-ID header"):
        await worker.run(parse_mail, mail("From: a@b.test\nMessage-ID: <>"))


async def test_overrunning_the_budget_replaces_the_process(worker: MailWorker) -> None:
    before = await worker.run(os.getpid)
    with pytest.raises(TooComplex, match=f"not read within {BUDGET:g} s"):
        # The budget ends it; the bound only keeps a broken budget from hanging the test.
        await asyncio.wait_for(worker.run(parse_mail, SLOW), timeout=60)
    assert await worker.run(os.getpid) != before
    parsed = await worker.run(parse_mail, mail("From: a@b.test\nSubject: danach"))
    assert parsed.subject == "danach"


async def test_a_dead_reader_refuses_only_its_mail(worker: MailWorker) -> None:
    with pytest.raises(TooComplex, match=r"its reader stopped \(exit code 3\)"):
        await worker.run(os._exit, 3)
    assert (await worker.run(parse_mail, mail("From: a@b.test\nSubject: weiter"))).subject == (
        "weiter"
    )
