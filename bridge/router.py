"""Fan-out and the ID map.

`Router.ingest` takes an event from a connector, fills in who the sender is from the ``people``
mapping, and stores one outbox item per other network of the link (never back to the source);
an in-room command (`bridge.room_commands`) is not fanned out but answered in its own room
(`bridge.room_answers`).
`Router.deliver`, called by the outbox, translates the event's references (the message it
replies to, the one it edits, redacts or reacts to) into the target network's IDs, fetches
attachment bytes from the source connector, sends, and records the new ID so later follow-ups
find it. "Target" always means the network an item goes to; an event's references are
``reply_to``, ``thread`` and ``relates_to``, on the source in `Event` and on the target in
`Outgoing`. A reply that names no thread joins the thread of the message it answers (a mail, or
a client that knows no threads, answering inside one): replies inside a thread stay there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from bridge import metrics
from bridge.audit import AuditTrail, Decision
from bridge.claims import Claims
from bridge.config.model import Config
from bridge.connector import (
    Connector,
    DeliveryError,
    Outgoing,
    ReadMarkers,
    Refusal,
    Typing,
    Unavailable,
)
from bridge.directory import RoomDirectory
from bridge.events import MEMBERSHIP, Event, Kind, Sender
from bridge.health import NetworkHealth
from bridge.link_policy import (
    FileRefusal,
    crosses,
    declared_too_large,
    file_refusal,
    file_withheld_notice,
    held_back,
    sniffed_type,
    withheld,
)
from bridge.links import Links
from bridge.members import Damper
from bridge.naming import clean
from bridge.notices import Notice, notice
from bridge.outbox import Outbox
from bridge.policy import Listed, account_domain, federation_refusal
from bridge.read_markers import Read
from bridge.read_markers import ReadMarkers as MarkerBatches
from bridge.room_answers import RoomAnswers
from bridge.room_commands import command_of
from bridge.store import Note, OutboxItem, Store

log = logging.getLogger(__name__)


def known_sender(config: Config, sender: Sender) -> Sender:
    """The sender as targets should show them (see `bridge.naming`): a listed person's name,
    organisation and home network (the first of their accounts), or the remote profile with
    the organisation its network vouches for (the connector's, e.g. a Tchap name's), else the
    source network's default."""
    network = config.networks[sender.network]
    person = config.person_by_account(sender.network, sender.user_id)
    if person is None:
        return dataclasses.replace(
            sender, org=sender.org or network.org_label, suffix=network.name_suffix
        )
    # One person, one name, whichever account they write from: their first account's network
    # gives the suffix.
    home = config.networks[next(iter(person.accounts))]
    return dataclasses.replace(
        sender,
        person_id=person.id,
        display_name=person.name,
        org=person.org or sender.org or home.org_label,
        suffix=home.name_suffix,
    )


@dataclasses.dataclass(eq=False)
class Router:
    config: Config
    links: Links
    store: Store
    directory: RoomDirectory
    connectors: Mapping[str, Connector]
    claims: Claims
    serves: Callable[[str], bool] = lambda network: True
    listed: Listed = dataclasses.field(default_factory=dict)
    """The federation lists in force (`bridge.federation.lists.FederationLists.domains`),
    read at every decision."""
    audit: AuditTrail | None = None
    """Where every delivery and refusal is recorded (`bridge.audit`); None: nowhere."""

    def __post_init__(self) -> None:
        self.health = NetworkHealth(list(self.config.networks))
        self.outbox = Outbox(self.store, self.config.delivery, self.health, self.claims,
                             self.deliver, self.report_undeliverable, self.serves,
                             self.audit_note)  # fmt: skip
        self.answers = RoomAnswers(self.config, self.links, self.store, self.directory,
                                   self.connectors, self.health)  # fmt: skip
        self._arrival: dict[tuple[str, str], float] = {}
        self.markers = MarkerBatches(self._pass_read)
        self.damper = Damper(self._ingest)

    async def stop(self) -> None:
        """Stop delivering and answering; what is queued stays in the store."""
        await self.outbox.stop()
        await self.answers.stop()
        await self.markers.stop()
        await self.damper.stop()

    async def ingest(self, event: Event) -> bool:
        if event.kind in MEMBERSHIP and self.damper.hold(event):
            return True  # mirrored when its window ends (`bridge.members.Damper`)
        return await self._ingest(event)

    async def _ingest(self, event: Event) -> bool:
        arrived = time.perf_counter()
        command = command_of(event)
        if command is not None and self.answers.takes(event):
            return await self.answers.take(event, command)  # answered where it was asked, only
        link = self.links.get(event.link_id)
        event = dataclasses.replace(event, sender=known_sender(self.config, event.sender))
        if event.reply_to and not event.thread:
            thread = await self.store.thread_of(event.network, event.reply_to)
            if thread is not None:
                event = dataclasses.replace(event, thread=thread)
        targets: list[str] = []
        off: list[tuple[str, Decision, str]] = []
        for network in link.rooms:
            if network == event.network:
                continue
            if self.directory.disabled_reason(link.id, network) is not None:
                off.append((network, Decision.REFUSED, Refusal.ROOM_OFF.value))
            elif crosses(self.config.policy, link.id, event.network, network):
                targets.append(network)
            else:
                log.debug("Not passing %s of %s on to %s (link %s): one-way", event.remote_id,
                          event.network, network, link.id)  # fmt: skip
        note = self.audit.notes(event, off) if self.audit is not None and off else None
        if not await self.store.accept(event, targets, also=note):
            metrics.DUPLICATES.labels(event.network).inc()
            log.debug("Already bridged: %s %s", event.network, event.remote_id)
            return False
        metrics.RECEIVED.labels(event.network).inc()
        for target in targets:
            self._arrival[(event.remote_id, target)] = arrived
            self.outbox.wake(link.id, target)
        for target in targets:
            if not self.outbox.working(link.id, target):
                await self.claims.announce((link.id, target))  # another instance works it
        return True

    def use(self, config: Config) -> None:
        """A reloaded config, from the next event on."""
        self.config = config
        self.answers.config = config
        self.links.use(config)
        self.outbox.use(config.delivery)
        for network in config.networks:
            self.health.add(network)

    async def typing(self, network: str, room_id: str, sender: Sender, typing: bool) -> None:
        """Fan a typing notification out at once to the link's other rooms that can show it."""
        link_id = self.directory.link_for(network, room_id)
        if link_id is None:
            return
        if federation_refusal(self.config, self.listed, network, sender.user_id) is not None:
            return
        sender = known_sender(self.config, sender)
        person = self.config.person(sender.person_id) if sender.person_id else None
        for target in self.links.get(link_id).rooms:
            connector = self.connectors[target]
            room = self.directory.room_for(link_id, target)
            if (
                target == network
                or room is None
                or not isinstance(connector, Typing)
                or self.directory.disabled_reason(link_id, target) is not None
                or (person is not None and target in person.accounts)
                or not crosses(self.config.policy, link_id, network, target)
            ):
                continue
            try:
                await connector.set_typing(room, sender, typing)
            except Exception as e:
                log.debug("Typing of %s not shown on %s: %s", sender.user_id, target, e)

    def read(self, read: Read) -> None:
        """A read marker, passed on in its reader's next batch (`bridge.read_markers`)."""
        self.markers.take(read)

    async def _pass_read(self, read: Read) -> None:
        """Show a read marker in the link's other rooms that can show it, each at the message
        that is the read one there. Only the markers of people listed in ``people``, and of
        both people of a direct chat (each is the one whose ghost the other chats with), cross:
        the bridge shows no stranger's reading habits to a whole working group."""
        link_id = self.directory.link_for(read.network, read.room_id)
        if link_id is None:
            return
        sender = read.sender
        if federation_refusal(self.config, self.listed, read.network, sender.user_id) is not None:
            return
        sender = known_sender(self.config, sender)
        person = self.config.person(sender.person_id) if sender.person_id else None
        if person is None and not self.links.is_direct(link_id):
            return
        for target in self.links.get(link_id).rooms:
            connector = self.connectors.get(target)
            room = self.directory.room_for(link_id, target)
            if (
                target == read.network
                or room is None
                or not isinstance(connector, ReadMarkers)
                or self.directory.disabled_reason(link_id, target) is not None
                or (person is not None and target in person.accounts)
                or not crosses(self.config.policy, link_id, read.network, target)
            ):
                continue
            remote_id = await self.store.counterpart(read.network, read.remote_id, target)
            if remote_id is None:
                continue  # a message that never reached that room
            try:
                await connector.show_read(room, sender, remote_id)
            except Exception as e:
                log.debug("Read marker of %s not shown on %s: %s", sender.user_id, target, e)

    async def deliver(self, item: OutboxItem) -> None:
        event = item.event
        arrived = self._arrival.pop((event.remote_id, item.target), None)
        if not self.serves(item.target):  # stopped here (another instance leads it, a reload)
            raise Unavailable(f"{item.target} is not running here now", network_down=False)
        room_id = self.directory.room_for(item.link_id, item.target)
        if room_id is None:
            raise Unavailable(f"the {item.target} room of link {item.link_id} is not set up yet",
                              network_down=False)  # fmt: skip
        refused = self.directory.disabled_reason(item.link_id, item.target)
        if refused is not None:
            # Queued before the room was switched off (its access rule or encryption changed):
            # what the room may no longer receive is not delivered.
            raise DeliveryError(f"the {item.target} room is no longer bridged: {refused}",
                                permanent=True, reason=Refusal.ROOM_OFF)  # fmt: skip
        sender = event.sender
        refusal = federation_refusal(self.config, self.listed, sender.network, sender.user_id)
        if refusal is not None:
            # Queued before the sender's domain left their network's federation list.
            domain = account_domain(self.config, sender.network, sender.user_id)
            raise DeliveryError(f"{sender.user_id} is no longer bridged out of {sender.network}: "
                                f"{refusal.explain(domain)} ({refusal.value})", permanent=True,
                                reason=Refusal.NOT_LISTED)  # fmt: skip
        if not crosses(self.config.policy, item.link_id, event.network, item.target):
            # Queued before a reload made the link one-way.
            log.info("Not delivering %s to %s: link %s no longer passes messages from %s "
                     "there (direction)", event.remote_id, item.target, item.link_id,
                     event.network)  # fmt: skip
            note = self.audit_note(item, Decision.REFUSED, "direction")
            await self.store.delivered(item, None, room_id, also=note)
            return
        reply_to = relates_to = thread = None
        if event.reply_to:
            reply_to = await self.store.counterpart(event.network, event.reply_to, item.target)
        if event.thread:
            thread = await self.store.thread_root(event.network, event.thread, item.target,
                                                  item.link_id)  # fmt: skip
        if event.relates_to:
            relates_to = await self.store.counterpart(event.network, event.relates_to, item.target)
            if relates_to is None:
                log.info(
                    "Dropping %s of %s for %s: the original never reached it",
                    event.kind,
                    event.relates_to,
                    item.target,
                )
                await self.store.delivered(item, None, room_id, also=self.audit_note(
                    item, Decision.REFUSED, "original_not_delivered"))  # fmt: skip
                return
        if (
            reply_to is None
            and event.reply_to
            and event.html is not None
            and (self.config.policy.classification is not None)
        ):
            # The message replied to never reached this target (it may have been held back for
            # its mark): the reply's formatted text may quote it (a mail client's quote), its
            # plain text is the sender's own words.
            event = dataclasses.replace(event, html=None)
        level = held_back(self.config.policy, event, item.target)
        if level is not None:
            raise DeliveryError(f"{event.remote_id} is marked {level.name}, above what "
                                f"{item.target} may carry in link {item.link_id}",
                                permanent=True, reason=Refusal.CLASSIFIED)  # fmt: skip
        media = None
        withheld_file: tuple[FileRefusal, str] | None = None
        if event.kind is Kind.MESSAGE and event.attachment is not None:
            media, withheld_file = await self._file(item)
            if withheld_file is not None:
                language = self.config.networks[item.target].language
                event = withheld(event, withheld_file[0], language)
        person = self.config.person(event.sender.person_id) if event.sender.person_id else None
        out = Outgoing(
            event=event,
            room_id=room_id,
            reply_to=reply_to,
            relates_to=relates_to,
            sender_is_local=bool(person and item.target in person.accounts),
            fetch_source_media=self.connectors[event.network].fetch_media,
            delivery_id=item.delivery_id,
            thread=thread,
        )
        if arrived is not None:
            metrics.ARRIVAL_TO_SEND.labels(item.target).observe(time.perf_counter() - arrived)
        remote_id = await self.connectors[item.target].send(out, media)
        await self.store.delivered(item, remote_id, room_id,
                                   also=self.audit_note(item, Decision.DELIVERED))  # fmt: skip
        if withheld_file is not None:
            await self._file_withheld(item, *withheld_file)

    async def _file(self, item: OutboxItem) -> tuple[bytes | None, tuple[FileRefusal, str] | None]:
        """The bytes of ``item``'s file, or why the target's room of the link does not take it
        (and the type its bytes show)."""
        event = item.event
        assert event.attachment is not None
        room = self.config.policy.room(item.link_id, item.target)
        if declared_too_large(room, event.attachment.size):
            return None, (FileRefusal.SIZE, event.attachment.mimetype or "")
        try:
            media = await self.connectors[event.network].fetch_media(event.attachment.ref)
        except Unavailable as e:  # the source is down, not the target
            raise Unavailable(f"the file cannot be fetched from {event.network} now: {e}",
                              network_down=False) from e  # fmt: skip
        mimetype = "" if room.types is None else await asyncio.to_thread(sniffed_type, media)
        refusal = file_refusal(room, mimetype, len(media))
        return (media, None) if refusal is None else (None, (refusal, mimetype))

    async def _file_withheld(self, item: OutboxItem, refusal: FileRefusal, mimetype: str) -> None:
        """The text of ``item`` went to its target without its file: the log says why, and
        the sender's room is told, in its language."""
        event = item.event
        room = self.config.policy.room(item.link_id, item.target)
        log.info("Withheld the file of %s from %s (link %s): %s (%s, %s bytes)", event.remote_id,
                 item.target, item.link_id, refusal.value, mimetype or "type not read",
                 event.attachment.size if event.attachment else None)  # fmt: skip
        text = file_withheld_notice(event, refusal, self.config.networks[item.target].label,
                                    mimetype, room.max_size)  # fmt: skip
        try:
            await self.connectors[event.network].notify(
                event.room_id, text.render(self.config.networks[event.network].language)
            )
        except Exception:
            log.exception("Could not post the withheld-file notice in %s", event.room_id)

    def audit_note(self, item: OutboxItem, decision: Decision, reason: str = "") -> Note | None:
        """The audit record of what was decided for ``item`` (None without an audit trail)."""
        if self.audit is None:
            return None
        return self.audit.note(item.event, item.target, decision, reason)

    async def report_undeliverable(self, item: OutboxItem, reason: Refusal, error: str) -> None:
        """Tell the sender's room, in its language, which message did not reach which network
        and why, in words people use (``error``, the details, went to the log)."""
        event = item.event
        if event.kind in MEMBERSHIP:  # nobody's message: the log line is enough
            return
        target = self.config.networks[item.target]
        lifetime = self.config.delivery.give_up_after
        domain = account_domain(self.config, event.sender.network, event.sender.user_id)
        level = held_back(self.config.policy, event, item.target)
        shown = undelivered_notice(event, target.label, reason, lifetime, domain,
                                   level.name if level is not None else "")  # fmt: skip
        text = shown.render(self.config.networks[event.network].language)
        try:
            await self.connectors[event.network].notify(event.room_id, text)
        except Exception:
            log.exception("Could not post the delivery failure notice in %s", event.room_id)


def undelivered_notice(
    event: Event, network: str, reason: Refusal, lifetime: float, domain: str, level: str = ""
) -> Notice:
    """The notice for the sender of ``event`` (whose domain is ``domain``, marked ``level``
    where that is why), which could not be delivered to ``network``."""
    values: dict[str, str | int | Notice] = {"network": network}
    if reason is Refusal.EXPIRED and lifetime < 2 * 3600:
        key, values = "reason.expired_minutes", {"minutes": max(1, round(lifetime / 60))}
    elif reason is Refusal.EXPIRED and lifetime < 2 * 86400:
        key, values = "reason.expired_hours", {"hours": round(lifetime / 3600)}
    elif reason is Refusal.EXPIRED:
        key, values = "reason.expired", {"days": round(lifetime / 86400)}
    elif reason in (Refusal.NOT_ALLOWED, Refusal.NOT_LISTED):
        key, values = f"reason.{reason.value}", {"domain": domain}
    elif reason is Refusal.CLASSIFIED:
        key, values = "reason.classified", {"network": network, "level": level}
    else:
        key = f"reason.{reason.value}"
    summary = event.summary()
    return notice(
        f"undelivered.{event.kind.value}",
        quote=notice("quote", text=summary) if summary else "",
        sender=clean(event.sender.display_name) or clean(event.sender.user_id),
        network=network,
        reaction=event.reaction or "",
        reason=Notice(key, values),
    )
