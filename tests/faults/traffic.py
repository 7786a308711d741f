"""Numbered messages written by real people on every network, and what arrived where.

Each message carries ``[<run>] <source network> #<n>``: the run (so that runs sharing rooms do
not mix), where it was written and its number there. A writer counts a message as sent only
once its own network took it (Synapse answered the ``PUT``, the MUC reflected it, the bridge's
SMTP server said 250), and, like a person's client or a sending mail server, tries again until
it did, with the same transaction ID, stanza id or Message-ID. What arrived is read from the
receiving side as a person would see it: the Matrix room's history (``/messages``), the MUC's
archive (XEP-0313), the mails the relay took for Rita.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import aiohttp
import aiosmtplib
from mautrix.api import Method, Path
from mautrix.errors import MatrixError
from slixmpp import JID, Message
from slixmpp.xmlstream.stanzabase import StanzaBase

from tests.email_world import compose
from tests.faults.world import MUC, RITA, FaultWorld
from tests.harness import User
from tests.harness.xmpp_clients import XmppUser

log = logging.getLogger(__name__)

MARKER = re.compile(r"\[(?P<run>[0-9a-z]+)\] (?P<source>bund|tchap|xmpp|mail) #(?P<seq>\d+)")
WRITE_PATIENCE = 1800.0
"""Seconds a writer keeps trying one message before the suite gives up on its network."""
RETRY = 1.0

Route = tuple[str, str]
"""(source network, target network)."""


def marker(run: str, source: str, seq: int) -> str:
    return f"[{run}] {source} #{seq}"


def read_marker(text: str | None, run: str) -> tuple[str, int] | None:
    """(source, number) of this run's message in ``text`` (None for anything else)."""
    found = MARKER.search(text or "")
    if found is None or found["run"] != run:
        return None
    return found["source"], int(found["seq"])


@dataclass(frozen=True)
class Arrival:
    seq: int
    at: float
    """Wall-clock time the target recorded it (the homeserver's timestamp, the moment the MUC
    or the relay handed it over)."""


class Writer(ABC):
    network: str

    @abstractmethod
    async def write(self, text: str, key: str) -> None:
        """Return once the network took ``text``; ``key`` is the same on every try, so the
        network recognises a retry of what it took already."""


class MatrixWriter(Writer):
    def __init__(self, network: str, user: User, room: str) -> None:
        self.network, self.user, self.room = network, user, room

    async def write(self, text: str, key: str) -> None:
        path = Path.v3.rooms[self.room].send["m.room.message"][key]
        content = {"msgtype": "m.text", "body": text}
        await self.user.client.api.request(Method.PUT, path, content)


class XmppWriter(Writer):
    """Alice in the MUC. A message is taken when the room reflects it back to her."""

    network = "xmpp"

    def __init__(self, user: XmppUser, room: str = MUC) -> None:
        self.user, self.room = user, room

    async def write(self, text: str, key: str) -> None:
        await self.user.ensure_online()
        reflected = [m for m in self.user.received if m["id"] == key]
        if reflected:
            return
        msg = self.user.client.make_message(mto=JID(self.room), mbody=text, mtype="groupchat")
        msg["id"] = key
        msg["origin_id"]["id"] = key
        msg.send()
        await self.user.wait_for(
            lambda m: m["id"] == key and m["from"].bare == self.room, timeout=30
        )


class MailWriter(Writer):
    """Rita's mail server: it hands the mail to the first of the bridge's SMTP servers that
    takes it (the instances are its MX hosts, in order of preference)."""

    network = "mail"

    def __init__(self, ports: list[int], to: str) -> None:
        self.ports, self.to = ports, to

    async def write(self, text: str, key: str) -> None:
        msg = compose(RITA, self.to, text, text, name="Rita Reader")
        msg.replace_header("Message-ID", f"<{key}@bmi.test>")
        errors = []
        for port in self.ports:
            try:
                await aiosmtplib.send(msg, hostname="127.0.0.1", port=port, timeout=30)
                return
            except (aiosmtplib.SMTPException, OSError) as e:
                errors.append(f"{port}: {e}")
        raise ConnectionError("; ".join(errors))


@dataclass
class Traffic:
    """The writers at work: each writes its next message every ``interval`` seconds, unless
    its network is held (a fault has it down: nobody can write there then)."""

    run: str
    writers: list[Writer]
    interval: float
    sent: dict[str, list[Arrival]] = field(default_factory=dict)
    """Source network → what it took, in order (``at``: when it did)."""
    _holds: dict[str, asyncio.Lock] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for writer in self.writers:
            self.sent[writer.network] = []
            self._holds[writer.network] = asyncio.Lock()
            self._tasks.append(asyncio.create_task(self._write(writer), name=writer.network))

    async def stop(self) -> None:
        """Stop writing (after the message each writer is on)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    @asynccontextmanager
    async def hold(self, network: str) -> AsyncIterator[None]:
        """Nobody writes on ``network`` inside this block (once the message being written is
        taken); for a fault that takes the network down."""
        lock = self._holds.get(network)
        if lock is None:
            yield
            return
        async with lock:
            yield

    @property
    def total(self) -> int:
        return sum(len(s) for s in self.sent.values())

    async def _write(self, writer: Writer) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            key = f"faults-{self.run}-{writer.network}-{seq}"
            async with self._holds[writer.network]:
                await self._until_taken(writer, marker(self.run, writer.network, seq), key)
                self.sent[writer.network].append(Arrival(seq, time.time()))
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except TimeoutError:
                pass

    async def _until_taken(self, writer: Writer, text: str, key: str) -> None:
        deadline = time.monotonic() + WRITE_PATIENCE
        while True:
            try:
                await writer.write(text, key)
                return
            except (MatrixError, aiohttp.ClientError, OSError, TimeoutError) as e:
                if time.monotonic() > deadline:
                    raise
                log.debug("%s not taken yet (%s); again", text, e)
                await asyncio.sleep(RETRY)


def writers(world: FaultWorld) -> list[Writer]:
    """One writer per network of the world."""
    out: list[Writer] = [MatrixWriter(n, world.users[n], world.rooms[n]) for n in ("bund", "tchap")]
    if world.alice is not None:
        out.append(XmppWriter(world.alice))
    if "mail" in world.rooms:
        out.append(MailWriter([i.inbound_port for i in world.instances], world.rooms["mail"]))
    return out


class XmppClock:
    """When Alice's client saw each message of the run in the MUC (the MUC's archive keeps
    only seconds)."""

    def __init__(self, user: XmppUser, run: str) -> None:
        self.run = run
        self.seen: dict[tuple[str, int], float] = {}
        user.client.add_event_handler("groupchat_message", self._note)

    def _note(self, msg: StanzaBase) -> None:
        found = read_marker(msg["body"], self.run)
        if found is not None:
            self.seen.setdefault(found, time.time())


async def arrivals(
    world: FaultWorld, run: str, clock: XmppClock | None = None
) -> dict[Route, list[Arrival]]:
    """Every copy of this run's messages that reached each network, in the order it shows
    them, by route."""
    found: dict[Route, list[Arrival]] = {}

    def note(source: str, target: str, seq: int, at: float) -> None:
        if source != target:
            found.setdefault((source, target), []).append(Arrival(seq, at))

    for network in ("bund", "tchap"):
        user = world.users[network]
        for event in await user.messages(world.rooms[network], limit=10**6):
            content = event.get("content", {})
            if event.get("type") != "m.room.message" or event.get("sender") == user.user_id:
                continue
            if content.get("msgtype") != "m.text":
                continue
            mark = read_marker(content.get("body"), run)
            if mark is not None:
                note(mark[0], network, mark[1], event["origin_server_ts"] / 1000)
    if world.alice is not None:
        for msg in await _archive(world.alice):
            mark = read_marker(msg["body"], run)
            if mark is not None and msg["from"].resource != "Alice":
                at = clock.seen.get(mark, 0.0) if clock is not None else 0.0
                note(mark[0], "xmpp", mark[1], at)
    if world.relay is not None:
        for mail in world.relay.mails:
            if RITA not in mail.recipients:
                continue
            parsed = BytesParser(policy=policy.default).parsebytes(mail.raw)
            assert isinstance(parsed, EmailMessage)
            part = parsed.get_body(("plain",))
            mark = read_marker(part.get_content() if part is not None else None, run)
            if mark is not None:
                note(mark[0], "mail", mark[1], mail.at)
    return found


async def _archive(user: XmppUser) -> list[Message]:
    await user.ensure_online()
    return await user.archive(MUC)
