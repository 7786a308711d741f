"""The XMPP side of the connector: one slixmpp `ComponentXMPP` connection (XEP-0114).

Protocol I/O only: connecting (and reconnecting with backoff when the server goes away), handing
every incoming message and presence to the connector in arrival order, sending elements built by
`connectors.xmpp.translate`, answering disco (a gateway identity, XEP-0030), pings and vCards of
puppets (XEP-0054), self-pings (XEP-0410) and HTTP upload slots (XEP-0363). What the stanzas mean
is decided by the connector.

Nothing a handler raises reaches slixmpp: it would answer the stanza's sender with an error, and
a MUC kicks an occupant (here: the bridge) whose error bounces to another occupant. For the same
reason no error ever answers a groupchat message or anything from a linked MUC (``quiet``).
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from slixmpp import JID, Iq, Message, Presence
from slixmpp.componentxmpp import ComponentXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0054.stanza import VCardTemp
from slixmpp.plugins.xep_0410 import PingStatus
from slixmpp.stanza import StreamError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from connectors.xmpp.translate import error_condition

log = logging.getLogger(__name__)

NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
IQ_TIMEOUT = 30.0
FATAL = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)
"""What a handler or worker lets through: everything else is logged and survived, including
errors that are no `Exception` (slixmpp's Rust JID functions panic with one)."""


class NotConnected(Exception):
    """The component is not connected to the XMPP server right now."""


class Missing(Exception):
    """The entity asked does not exist: it answered ``item-not-found``."""


class UploadError(Exception):
    """The upload service refused a file; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class VCard:
    """What a puppet's vCard shows."""

    name: str
    photo: bytes | None
    photo_type: str | None


@dataclass(frozen=True)
class Handlers:
    """What the connector does with what the component receives. All are called on the event
    loop in arrival order and must not block: they only note or queue work."""

    online: Callable[[], Awaitable[None]]
    """Connected (again): the connector (re)joins its rooms."""
    offline: Callable[[], None]
    """The connection was lost."""
    unreachable: Callable[[], None]
    """A connection attempt failed."""
    message: Callable[[ET.Element], None]
    presence: Callable[[ET.Element], None]
    vcard: Callable[[str], VCard | None]
    """The vCard of a JID on the component (a puppet), if there is one."""


class Component(ComponentXMPP):  # type: ignore[misc]
    def __init__(
        self,
        jid: str,
        secret: str,
        host: str,
        port: int,
        handlers: Handlers,
        *,
        gateway_name: str,
        quiet: Collection[str] = (),
    ) -> None:
        super().__init__(jid, secret, host, port)
        self.handlers = handlers
        self._quiet = quiet
        """Bare JIDs (the linked MUCs) never answered with an error; a live view, as a reload
        adds and removes rooms."""
        self._running = False
        self._online = asyncio.Event()
        self._lost = asyncio.Event()
        self._had_session = False
        self._loop_task: asyncio.Task[None] | None = None
        for plugin in ("xep_0030", "xep_0054", "xep_0199", "xep_0363", "xep_0410"):
            self.register_plugin(plugin)
        disco = self.plugin["xep_0030"]
        disco.add_identity(category="gateway", itype="matrix", name=gateway_name, jid=self.boundjid)
        self.plugin["xep_0054"].api.register(self._vcard, "get_vcard")
        self.register_handler(Callback("passerelle message", StanzaPath("message"), self._message))
        self.register_handler(
            Callback("passerelle presence", StanzaPath("presence"), self._presence)
        )
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("disconnected", self._disconnected)
        self.add_event_handler("connection_failed", self._connection_failed)
        self.add_event_handler("stream_error", self._stream_error)

    # -- connection --------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._online.is_set()

    def start(self) -> None:
        """Connect in the background, and again after every loss, with backoff."""
        self._running = True
        self._loop_task = asyncio.create_task(self._connection_loop(), name="xmpp-connection")

    async def stop(self) -> None:
        self._running = False
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self.transport is not None:
            await self.disconnect(wait=2.0)
        self.cancel_connection_attempt()

    async def _connection_loop(self) -> None:
        delay = INITIAL_BACKOFF
        while self._running:
            self._lost.clear()
            self._had_session = False
            self.connect()
            await self._lost.wait()
            # slixmpp would retry a failed attempt itself with its own (up to 300 s) delays; the
            # attempt is cancelled so that this loop's bounded backoff decides.
            self.cancel_connection_attempt()
            if not self._running:
                return
            if self._had_session:
                delay = INITIAL_BACKOFF
            log.info("Reconnecting to the XMPP server in %.0fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _session_start(self, _: Any) -> None:
        log.info("Connected to the XMPP server as component %s", self.boundjid)
        self._had_session = True
        self._online.set()
        await self.handlers.online()

    def _disconnected(self, reason: Any) -> None:
        if self._online.is_set():
            self._online.clear()
            if self._running:
                log.warning("Lost the XMPP server connection: %s", reason or "connection closed")
            self.handlers.offline()
        else:  # the server closed the stream before accepting us (see `_stream_error`)
            self.handlers.unreachable()
        self._lost.set()

    def _connection_failed(self, error: Any) -> None:
        log.warning("Cannot connect to the XMPP server: %s", error)
        self.handlers.unreachable()
        self._lost.set()

    def _stream_error(self, error: StreamError) -> None:
        # A wrong secret or component name ends here (not-authorized, host-unknown, conflict).
        log.error("XMPP server closed the stream: %s %s", error["condition"], error["text"] or "")

    # -- stanzas -----------------------------------------------------------------------------------

    def _message(self, msg: StanzaBase) -> None:
        self._handle(self.handlers.message, msg)

    def _presence(self, pres: StanzaBase) -> None:
        self._handle(self.handlers.presence, pres)

    @staticmethod
    def _handle(handler: Callable[[ET.Element], None], stanza: StanzaBase) -> None:
        try:
            handler(stanza.xml)
        except FATAL:
            raise
        except BaseException:
            log.exception("Could not handle a %s from %s", stanza.name, stanza.xml.get("from"))

    def exception(self, exception: BaseException) -> None:
        """slixmpp's hook for what an event handler raised: logged, nothing sent."""
        log.error("XMPP event handler failed", exc_info=exception)

    def send_element(self, el: ET.Element) -> None:
        """Send a ``<message/>`` or ``<presence/>`` built by the translate functions."""
        if not self.online or self.transport is None:
            raise NotConnected("not connected to the XMPP server")
        kind = el.tag.rpartition("}")[2]
        stanza = {"message": Message, "presence": Presence}[kind](self, xml=el)
        stanza.send()

    def send_error(self, stanza: ET.Element, condition: str, text: str) -> None:
        """Bounce ``stanza`` with an XMPP error (RFC 6120 §8.3), unless it is an error, a
        groupchat message or from a linked MUC (see the module's docstring)."""
        kind = stanza.tag.rpartition("}")[2]
        sender = stanza.get("from", "").partition("/")[0].lower()
        if (
            kind not in ("message", "presence")
            or stanza.get("type") in ("error", "groupchat")
            or sender in self._quiet
        ):
            log.debug("Not answering %s from %s with %s", kind, sender, condition)
            return
        try:
            original = {"message": Message, "presence": Presence}[kind](self, xml=stanza)
            reply = original.reply(clear=True)
            if stanza.get("id"):  # slixmpp's Message.reply draws a new id; an error keeps it
                reply["id"] = stanza.get("id")
            reply["type"] = "error"
            reply["error"]["type"] = "cancel" if condition != "policy-violation" else "modify"
            reply["error"]["condition"] = condition
            reply["error"]["text"] = text
            if self.online:
                reply.send()
        except FATAL:
            raise
        except BaseException:  # the stanza's addresses are a stranger's
            log.exception("Could not answer a %s from %s with %s", kind, sender, condition)

    async def features(self, jid: str, timeout: float) -> frozenset[str] | None:  # noqa: ASYNC109
        """The disco#info features (XEP-0030) of ``jid``, or None when it answers none.

        Raises `Missing` when ``jid`` does not exist (a MUC nobody created yet)."""
        try:
            iq = await self.plugin["xep_0030"].get_info(
                jid=JID(jid), local=False, cached=False, timeout=timeout
            )
        except IqError as e:
            condition = error_condition(e.iq.xml)
            if condition == "item-not-found":
                raise Missing(jid) from None
            log.info("No disco#info from %s: %s", jid, condition)
            return None
        except IqTimeout:
            log.info("No disco#info from %s within %.0fs", jid, timeout)
            return None
        return frozenset(iq["disco_info"]["features"])

    async def accept_default_config(self, room: str, owner: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Unlock a MUC that ``owner`` just created by accepting its default configuration
        (an "instant room", XEP-0045 §10.1.2): until then Prosody (``muc_room_locking``, on by
        default) answers everyone else's join with item-not-found. False when it refused."""
        iq = self.make_iq_set(ito=JID(room), ifrom=JID(owner))
        query = ET.SubElement(iq.xml, f"{{{NS_MUC_OWNER}}}query")
        ET.SubElement(query, "{jabber:x:data}x", {"type": "submit"})
        try:
            await iq.send(timeout=timeout)
        except IqError as e:
            log.warning("%s refused its default configuration: %s", room,
                        error_condition(e.iq.xml))  # fmt: skip
            return False
        except IqTimeout:
            log.warning("%s did not answer its configuration within %.0fs", room, timeout)
            return False
        return True

    async def self_ping(self, occupant: str, sender: str, timeout: float) -> PingStatus:  # noqa: ASYNC109
        """XEP-0410: is ``sender`` still the occupant ``occupant`` (``room/nick``)?"""
        status: PingStatus = await self.plugin["xep_0410"].send_self_ping(
            JID(occupant), JID(sender), timeout=timeout
        )
        return status

    def _vcard(self, jid: JID | None, node: str | None, ifrom: JID | None, args: Any) -> Any:
        """slixmpp's XEP-0054 plugin asks this for the vCard of any JID on the component."""
        card = self.handlers.vcard(jid.bare) if jid is not None else None
        if card is None:
            return None
        vcard = VCardTemp()
        vcard["FN"] = card.name
        if card.photo is not None:
            vcard["PHOTO"]["TYPE"] = card.photo_type or "image/png"
            vcard["PHOTO"]["BINVAL"] = card.photo
        return vcard

    # -- HTTP upload (XEP-0363) --------------------------------------------------------------------

    async def find_upload_service(self, domain: str) -> str | None:
        """The JID of the upload service announced on ``domain`` (disco items), if any."""
        try:
            info = await self.plugin["xep_0363"].find_upload_service(
                domain=JID(domain), timeout=IQ_TIMEOUT
            )
        except (IqError, IqTimeout) as e:
            log.warning("Cannot look up the upload service on %s: %s", domain, e)
            return None
        return str(info["from"]) if info is not None else None

    async def upload_slot(
        self, service: str, name: str, size: int, mimetype: str
    ) -> tuple[str, str, dict[str, str]]:
        """An XEP-0363 slot for one file: (PUT URL, GET URL, headers to send with the PUT)."""
        if not self.online:
            raise NotConnected("not connected to the XMPP server")
        try:
            iq: Iq = await self.plugin["xep_0363"].request_slot(
                JID(service), name, size, mimetype, ifrom=self.boundjid, timeout=IQ_TIMEOUT
            )
        except IqError as e:
            condition = e.iq["error"]["condition"]
            permanent = condition in ("not-acceptable", "forbidden", "bad-request", "not-allowed")
            raise UploadError(f"upload slot refused: {condition}", permanent=permanent) from e
        except IqTimeout as e:
            raise UploadError("upload slot request timed out", permanent=False) from e
        slot = iq["http_upload_slot"]
        headers = {h["name"]: h["value"] for h in slot["put"]["headers"]}
        return slot["put"]["url"], slot["get"]["url"], headers
