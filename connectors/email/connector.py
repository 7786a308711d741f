"""An email network: mail to a link address appears in the link's rooms, messages from the
rooms are mailed to the link's email members.

Who may post: the link's ``people`` with an address on this network, and anyone from the
network's ``allowed_domains``; with a federation list, only from the domains on it. The
envelope sender is checked at ``RCPT TO`` (by domain, so that bounce-address schemes of a
person's own mail system pass); the From address, which is what the rooms show, is checked at
``DATA``. Then DKIM and SPF decide whether that From address is genuine, and the network's
``auth_policy`` what happens when it is not, or when it could not be checked because DNS did
not answer in time.

At ``DATA``, the cheap checks come first and every reading of the mail happens in the mail
worker (`connectors.email.worker`), never on the event loop: the header block's size, field
count and field lengths (`connectors.email.head`), then its From header alone, then DKIM and
SPF, and only then the whole MIME structure. A mail refused on the way gets a 5xx naming the
reason; 451 ("try again later") is kept for failures of the bridge's own and for a sender
that could not be checked under the ``reject`` policy. Every mail gets one log line (see
`EmailConnector._log_mail`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from email.utils import make_msgid

from bridge.config.model import Link
from bridge.connector import Connector, DeliveryError, Host, Outgoing
from bridge.notices import Notice, notice
from bridge.policy import listed_refusal
from bridge.tasks import supervise
from connectors.email.auth import Authenticator, Verdict
from connectors.email.config import AuthPolicy, EmailNetwork
from connectors.email.head import HeaderLimits, OverLimit, header_end
from connectors.email.inbound import InboundServer, Received
from connectors.email.outbound import Relay, wire_bytes
from connectors.email.parse import (
    Doubt,
    Head,
    MalformedMail,
    ParsedMail,
    mail_events,
    message_remote_id,
    parse_mail,
    read_head,
)
from connectors.email.render import mailed, render_mail, render_notice
from connectors.email.spool import Spool, spool_key
from connectors.email.worker import MailWorker, TooComplex

BIND_RETRY_SECONDS = 5.0
SWEEP_INTERVAL_SECONDS = 3600.0
NOT_CHECKED = "sender not checked"
UNCHECKED = "sender could not be verified"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _check_text(verdict: Verdict) -> str:
    """What the sender check said, for the mail's log line."""
    if verdict.verified:
        said = "sender verified"
    else:
        said = UNCHECKED if verdict.temporary else "sender unverified"
    return f"{said} ({verdict.reason})"


class EmailConnector(Connector):
    def __init__(self, network: EmailNetwork, host: Host) -> None:
        self.name = network.name
        self.network = network
        self.host = host
        self.log = logging.getLogger(f"passerelle.{network.name}")
        self.limits = HeaderLimits.of(network.inbound)
        self.worker = MailWorker(network.inbound.parse_timeout)
        self.auth = Authenticator(network.dns, network.dns_timeout, self.worker)
        self.relay = Relay(network.relay)
        self.spool = Spool(network.spool)
        self.server = InboundServer(network.inbound, network.domain, self)
        self.rooms_ready: asyncio.Event = asyncio.Event()
        """Set once the SMTP server listens (the gateway's readiness waits for it)."""
        self._links: dict[str, Link] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def exclusive(self) -> bool:
        """Received attachments wait in a spool on this machine's disk until delivered."""
        return True

    @property
    def room_commands(self) -> bool:
        """No: a mail to a link address is always passed on. A notice is mailed to every
        member of the link, so an answer would land in everyone's mailbox rather than the
        asker's alone, and a mail is a letter to the group, not a chat line to the bridge."""
        return False

    async def members(self, room_id: str) -> list[str]:
        """Who reads along by mail: the link's people with an address on this network, by
        their names in the mapping."""
        link = self._links.get(room_id)
        if link is None:
            return []
        people = (self.host.config.person(person_id) for person_id in link.people)
        return [p.name for p in people if p is not None and self.name in p.accounts]

    # Set-up

    async def start(self) -> None:
        for link in self.host.config.links:
            if self.name in link.rooms:
                await self.link_added(link)
        self._tasks = [
            supervise(f"smtp:{self.name}", self._listen, self.log),
            supervise(f"spool:{self.name}", self._sweep_regularly, self.log),
        ]

    async def link_added(self, link: Link) -> None:
        address = link.rooms[self.name].room
        if address is not None:
            self._links[address] = link
            self.host.directory.bind(link.id, self.name, address)

    async def link_removed(self, link: Link, room_id: str | None, notice: Notice) -> None:
        """The list's members get the notice by mail; mail to the address is refused from now
        on like mail to any unknown address."""
        if room_id is None:
            return
        if self.host.leads(self.name):
            await self.notify(room_id, notice.render(self.network.language))
        self._links.pop(room_id, None)

    async def _listen(self) -> None:
        inbound = self.network.inbound
        await self.worker.start()
        while True:
            try:
                await self.server.start()
                break
            except OSError as e:
                self.log.error(
                    "Cannot listen for mail on %s:%d (retrying): %s", inbound.host, inbound.port, e
                )
                await asyncio.sleep(BIND_RETRY_SECONDS)
        self.log.info(
            "Receiving mail for %s on %s:%d (%s)",
            self.network.domain,
            inbound.host,
            inbound.port,
            "STARTTLS" if self.server.tls else "no TLS",
        )
        self.rooms_ready.set()

    async def _sweep_regularly(self) -> None:
        while True:
            try:
                empty = await self.host.idle()
                removed = await asyncio.to_thread(
                    self.spool.sweep, empty, self.network.spool_days * 86400
                )
                if removed:
                    self.log.info(
                        "Removed %d delivered mail(s)' attachments from the spool", removed
                    )
            except Exception:
                self.log.exception("Sweeping the mail spool failed")
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.stop()
        await self.relay.close()
        await asyncio.to_thread(self.worker.stop)

    # Who may post

    def _member_addresses(self, link: Link) -> set[str]:
        addresses = set()
        for person_id in link.people:
            person = self.host.config.person(person_id)
            if person is not None and self.name in person.accounts:
                addresses.add(person.accounts[self.name])
        return addresses

    def _from_allowed(self, link: Link, address: str) -> bool:
        return (
            address in self._member_addresses(link)
            or _domain(address) in self.network.allowed_domains
        ) and self._listed(address)

    def _envelope_allowed(self, link: Link, sender: str) -> bool:
        domains = {_domain(a) for a in self._member_addresses(link)}
        return (
            _domain(sender) in domains or _domain(sender) in self.network.allowed_domains
        ) and self._listed(sender)

    def _listed(self, address: str) -> bool:
        """Whether the network's federation list (if it takes one) names the address's
        domain: it applies to the link's people too."""
        return listed_refusal(self.host.federation, self.name, _domain(address)) is None

    # The SMTP dialogue (`connectors.email.inbound.MailGate`)

    def mail(self, sender: str) -> str | None:
        if sender and _domain(sender) == self.network.domain:
            self.log.warning("Refused mail from %s: the bridge's own domain (a mail loop)", sender)
            return f"550 5.4.6 Mail from {self.network.domain} is not taken back (mail loop)"
        return None

    def rcpt(self, sender: str, recipient: str) -> str | None:
        link = self._links.get(recipient)
        if link is None:
            self.log.info(
                "Refused mail from %s to %s: no such link address", sender or "<>", recipient
            )
            return f"550 5.1.1 <{recipient}>: no such link address"
        if sender and not self._envelope_allowed(link, sender.lower()):
            self.log.info(
                "Refused mail from %s to %s: not a member of link %s", sender, recipient, link.id
            )
            return f"550 5.7.1 <{sender}> may not post to <{recipient}>"
        return None

    async def data(self, received: Received) -> str:
        sender = received.mail_from or "<>"
        try:
            return await self._receive(received)
        except OverLimit as e:
            self.log.warning("Refused a mail from %s: %s", sender, e)
            return f"552 5.3.4 {e}"
        except MalformedMail as e:
            self.log.warning("Refused a malformed mail from %s: %s", sender, e)
            return f"550 5.6.0 Malformed message: {e}"
        except TooComplex as e:
            self.log.warning("Refused a mail from %s: %s", sender, e)
            return f"554 5.6.0 Message too complex: {e}"

    def _log_mail(
        self, received: Received, head: Head, check: str, outcome: str, *, taken: bool = True
    ) -> None:
        """The one log line of a mail that got as far as its headers: who sent it to whom, its
        size, what the sender check said and what became of it (INFO when the mail was taken,
        WARNING when it was refused or deferred). The SMTP dialogue itself is logged at DEBUG
        (`connectors.email.inbound`)."""
        self.log.log(
            logging.INFO if taken else logging.WARNING,
            "Mail %s from %s (envelope %s, %s) to %s, %d bytes, %s: %s",
            head.message_id,
            head.from_address,
            received.mail_from or "<>",
            received.peer_ip,
            ", ".join(received.recipients),
            len(received.raw),
            check,
            outcome,
        )

    async def _receive(self, received: Received) -> str:
        """The reply to one mail's ``DATA``; raises `OverLimit`, `MalformedMail` or `TooComplex`
        for a mail that cannot be read."""
        raw = received.raw
        end = header_end(raw, self.limits)
        head = await self.worker.run(read_head, raw, end)
        log = functools.partial(self._log_mail, received, head)
        if not received.mail_from or head.auto_submitted:
            kind = "an automatic reply" if received.mail_from else "a bounce"
            log(NOT_CHECKED, f"not bridged ({kind})")
            return "250 2.0.0 OK, not bridged (automatic message)"
        if _domain(head.from_address) == self.network.domain:
            log(NOT_CHECKED, "refused: From is the bridge's own domain (a mail loop)", taken=False)
            return f"550 5.4.6 Mail from {self.network.domain} is not taken back (mail loop)"
        links = [self._links[r] for r in received.recipients if r in self._links]
        allowed = [link for link in links if self._from_allowed(link, head.from_address)]
        barred = ", ".join(link.id for link in links if link not in allowed)
        if not allowed:
            log(NOT_CHECKED, f"refused: From may not post to {barred}", taken=False)
            return f"550 5.7.1 <{head.from_address}> may not post to these addresses"
        verdict = await self.auth.check(
            raw, end, head.from_address, received.peer_ip, received.helo, received.mail_from
        )
        check = _check_text(verdict)
        policy = self.network.auth_policy
        if not verdict.verified and policy is AuthPolicy.REJECT:
            if verdict.temporary:
                log(check, "deferred (451)", taken=False)
                return "451 4.7.0 Cannot verify the sender right now, please try again later"
            log(check, "refused", taken=False)
            return f"550 5.7.1 Sender <{head.from_address}> not verified by DKIM or SPF"
        if not verdict.verified and policy is AuthPolicy.QUARANTINE:
            path = await asyncio.to_thread(
                self.spool.quarantine,
                raw,
                head.message_id,
                head.from_address,
                [link.rooms[self.name].room or "" for link in allowed],
                f"{UNCHECKED}: {verdict.reason}" if verdict.temporary else verdict.reason,
            )
            log(check, f"held for review as {path}")
            return "250 2.0.0 OK, held for review"
        mail = await self.worker.run(parse_mail, raw)
        stored = await self._bridge(mail, allowed, self._doubt(verdict, mail.from_address))
        if stored:
            marked = " marked" if not verdict.verified else ""
            into = ", ".join(link.id for link in allowed)
            log(check, f"bridged{marked} into {into}" + (f", not into {barred}" if barred else ""))
            return "250 2.0.0 OK"
        return "451 4.3.0 Could not store the message, please try again later"

    def _doubt(self, verdict: Verdict, address: str) -> Doubt | None:
        """How a mail whose sender was not verified is marked (the ``mark`` policy), in the
        network's language."""
        if verdict.verified:
            return None
        key = "sender.unchecked" if verdict.temporary else "sender.unverified"
        language = self.network.language
        return Doubt(
            notice(f"{key}.label").render(language), notice(key, address=address).render(language)
        )

    async def _bridge(self, mail: ParsedMail, links: list[Link], doubt: Doubt | None) -> bool:
        """Spool the attachments and store the events (the mail is acknowledged after this);
        False when that failed."""
        key = spool_key(mail.message_id)
        try:
            await asyncio.to_thread(self.spool.put, key, mail.attachments)
            for link in links:
                address = link.rooms[self.name].room or ""
                reply_to = await self._known_parent(link, mail)
                events = mail_events(
                    mail,
                    link_id=link.id,
                    network=self.name,
                    address=address,
                    spool_key=key,
                    reply_to=reply_to,
                    doubt=doubt,
                )
                for event in events:
                    await self.host.ingest(event)
        except Exception:
            self.log.exception("Could not store mail %s", mail.message_id)
            return False
        return True

    async def _known_parent(self, link: Link, mail: ParsedMail) -> str | None:
        """The bridged message of this link that the mail answers, if any."""
        for message_id in mail.thread:
            remote_id = message_remote_id(link.id, message_id)
            if await self.host.store.is_known(self.name, remote_id):
                return remote_id
        return None

    # Sending

    def _recipients(self, link: Link, out: Outgoing) -> list[str]:
        """The link's email members, except the sender (who has the message already)."""
        sender = out.event.sender
        person = self.host.config.person(sender.person_id) if sender.person_id else None
        own = person.accounts.get(self.name) if person else None
        return sorted(a for a in self._member_addresses(link) if a != own)

    async def send(self, out: Outgoing, media: bytes | None) -> str | None:
        link = self._links.get(out.room_id)
        if link is None:
            raise DeliveryError(f"{out.room_id} is no link address of {self.name}", permanent=True)
        if not mailed(out.event):
            return None
        recipients = self._recipients(link, out)
        if not recipients:
            return None
        # The same Message-ID for every attempt at this delivery: a mail resent after a crash
        # is one mail to its readers' clients, which recognise it.
        message_id = f"<{out.delivery_id}@{self.network.domain}>"
        msg = render_mail(
            out,
            link_id=link.id,
            address=out.room_id,
            message_id=message_id,
            date=datetime.now(UTC),
            media=media,
        )
        data = wire_bytes(msg, self.network.domain, self.network.dkim)
        await self.relay.send(data, out.room_id, recipients)
        self.log.info(
            "Mailed %s %s to %d member(s) of %s as %s",
            out.event.kind,
            out.event.remote_id,
            len(recipients),
            link.id,
            message_id,
        )
        return message_remote_id(link.id, message_id)

    async def fetch_media(self, ref: str) -> bytes:
        try:
            return await asyncio.to_thread(self.spool.get, ref)
        except FileNotFoundError:
            raise DeliveryError(
                f"the attachment {ref} is no longer in the mail spool", permanent=True
            ) from None
        except ValueError as e:
            raise DeliveryError(str(e), permanent=True) from None

    async def notify(self, room_id: str, text: str) -> None:
        link = self._links.get(room_id)
        if link is None:
            return
        recipients = sorted(self._member_addresses(link))
        if not recipients:
            return
        msg = render_notice(
            link_id=link.id,
            address=room_id,
            text=text,
            message_id=make_msgid(domain=self.network.domain),
            date=datetime.now(UTC),
        )
        await self.relay.send(
            wire_bytes(msg, self.network.domain, self.network.dkim), room_id, recipients
        )
        self.log.info("Mailed a notice to %d member(s) of %s", len(recipients), link.id)
