"""The ``kind: xmpp`` network schema: the bridge as an XMPP component (XEP-0114) on an agency's
server; bare JIDs as accounts; MUC JIDs as a link's rooms."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bridge.config.model import LinkRoom, Listen
from bridge.config.reader import NO_STRINGS, AccountFormat, Node, Reader, describe, quote

DEFAULT_SERVER_HOST = "127.0.0.1"
DEFAULT_COMPONENT_PORT = 5347
DEFAULT_NICK = "Passerelle"
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
DEFAULT_SELF_PING_SECONDS = 300.0

DOMAIN_RE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
# A bare JID: a localpart without the characters XMPP forbids there, then a domain.
BARE_JID_RE = re.compile(r"[^@/\s\"&'<>:]+@" + DOMAIN_RE.pattern)


@dataclass(frozen=True)
class XmppNetwork:
    """An agency's XMPP server, to which the bridge connects as a component."""

    name: str
    server_host: str
    """Where the XMPP server accepts components (XEP-0114)."""
    server_port: int
    component: str
    """The component's domain: every remote person gets a JID on it."""
    secret: str = field(repr=False)
    """The component secret shared with the XMPP server."""
    domain: str
    """The users' XMPP domain (where the HTTP upload service is looked up)."""
    allowed_domains: tuple[str, ...]
    """Domains whose users are bridged out of this network and may write to puppets."""
    org_label: str | None
    name_suffix: str
    nick: str
    """The bridge's own nickname in every MUC it joins."""
    upload_service: str | None
    """JID of the XEP-0363 upload service; None: looked up on ``domain``."""
    max_file_bytes: int
    """Largest file fetched from an XMPP message's URL for the other networks."""
    self_ping_interval: float
    """Seconds between two XEP-0410 self-pings of each MUC (a silently lost presence)."""

    kind: str = "xmpp"

    @property
    def domains(self) -> tuple[str, ...]:
        return self.allowed_domains


class XmppSchema:
    account_format = AccountFormat(BARE_JID_RE, "a bare JID (user@domain)", str.lower)
    keys: tuple[str, ...] = (
        "server",
        "component",
        "secret",
        "domain",
        "allowed_domains",
        "org_label",
        "name_suffix",
        "nick",
        "upload_service",
        "max_file_bytes",
        "self_ping_interval",
    )

    def __init__(self, reader: Reader, path: Path) -> None:
        self.r = reader
        self.path = path

    def room(self, network: str, node: Node) -> LinkRoom | None:
        """A MUC JID: ``"room@conference.example"`` or ``{room: …}``."""
        if isinstance(node.value, dict):
            fields = self.r.fields(node, ("room",))
            if fields is None:
                return None
            room_node = self.r.required(node, fields, "room")
            if room_node is None:
                return None
            node = room_node
        elif not isinstance(node.value, str):
            self.r.error(node, f"expected a MUC JID (room@service), got {describe(node.value)}")
            return None
        value = self.r.matching(node, BARE_JID_RE, "a MUC JID (room@service)")
        return LinkRoom(network, value.lower(), None) if value is not None else None

    def network(
        self, name: str, node: Node, fields: dict[str, Node], listen: Listen
    ) -> XmppNetwork | None:
        r = self.r
        server = r.optional(
            fields, "server", self.server, (DEFAULT_SERVER_HOST, DEFAULT_COMPONENT_PORT)
        )
        component = self.domain(node, fields, "component")
        secret_node = r.required(node, fields, "secret")
        secret = r.secret(secret_node) if secret_node else None
        domain = self.domain(node, fields, "domain")
        allowed = r.optional(fields, "allowed_domains", r.string_list, NO_STRINGS)
        org_label = r.optional(fields, "org_label", r.nonempty, None)
        name_suffix = r.optional(fields, "name_suffix", r.string, "")
        nick = r.optional(fields, "nick", r.nonempty, DEFAULT_NICK)
        upload = r.optional(
            fields, "upload_service", lambda n: r.matching(n, DOMAIN_RE, "a domain JID"), None
        )
        max_file = r.optional(
            fields, "max_file_bytes", lambda n: r.integer(n, 1), DEFAULT_MAX_FILE_BYTES
        )
        ping = r.optional(
            fields, "self_ping_interval", r.positive_number, DEFAULT_SELF_PING_SECONDS
        )
        if component is not None and domain is not None and component == domain:
            r.error(fields["component"], "must differ from domain (the users' domain)")
            component = None
        if (
            server is None
            or component is None
            or secret is None
            or domain is None
            or allowed is None
            or name_suffix is None
            or nick is None
            or max_file is None
            or ping is None
        ):
            return None
        return XmppNetwork(
            name=name,
            server_host=server[0],
            server_port=server[1],
            component=component,
            secret=secret,
            domain=domain,
            allowed_domains=allowed or (domain,),
            org_label=org_label,
            name_suffix=name_suffix,
            nick=nick,
            upload_service=upload.lower() if upload else None,
            max_file_bytes=max_file,
            self_ping_interval=ping,
        )

    def domain(self, parent: Node, fields: dict[str, Node], key: str) -> str | None:
        node = self.r.required(parent, fields, key)
        if node is None:
            return None
        value = self.r.matching(node, DOMAIN_RE, "a domain (e.g. xmpp.example.org)")
        return value.lower() if value is not None else None

    def server(self, node: Node) -> tuple[str, int] | None:
        fields = self.r.fields(node, ("host", "port"))
        if fields is None:
            return None
        host = self.r.optional(fields, "host", self.r.nonempty, DEFAULT_SERVER_HOST)
        port = self.r.optional(
            fields, "port", lambda n: self.r.integer(n, 1, 65535), DEFAULT_COMPONENT_PORT
        )
        if host is None or port is None:
            return None
        if any(c.isspace() for c in host):
            self.r.error(fields["host"], f"{quote(host)} is not a host name or address")
            return None
        return host, port
