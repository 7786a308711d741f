"""The ``kind: xmpp`` network schema: the bridge as an XMPP component (XEP-0114) on an agency's
server; bare JIDs as accounts; MUC JIDs as a link's rooms."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from bridge.config.model import LinkRoom, Listen
from bridge.config.reader import (
    NO_STRINGS,
    AccountFormat,
    Key,
    Node,
    Reader,
    describe,
    quote,
)
from bridge.kinds import NetworkSchema

DEFAULT_SERVER_HOST = "127.0.0.1"
DEFAULT_COMPONENT_PORT = 5347
DEFAULT_NICK = "Passerelle"
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
DEFAULT_SELF_PING_SECONDS = 300.0

DOMAIN_RE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
# A bare JID: a localpart without the characters XMPP forbids there, then a domain.
BARE_JID_RE = re.compile(r"[^@/\s\"&'<>:]+@" + DOMAIN_RE.pattern)
# A file host: a domain (``*.`` for its subdomains), an IPv4 address or a bracketed IPv6
# address, then an optional port.
FILE_HOST_RE = re.compile(
    r"(?:(?P<name>(?:\*\.)?" + DOMAIN_RE.pattern + r")|\[(?P<v6>[0-9A-Fa-f:.]+)\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
FileHosts = tuple[tuple[str, int | None], ...]
"""(host, port or None for any port) pairs: see `XmppNetwork.file_hosts`."""
FILE_HOST_WHAT = (
    'a host[:port] (e.g. upload.example.org, "*.example.org", "192.0.2.7:5281", '
    '"[2001:db8::7]:443")'
)


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
    label: str
    language: str
    nick: str
    """The bridge's own nickname in every MUC it joins."""
    upload_service: str | None
    """JID of the XEP-0363 upload service; None: looked up on ``domain``."""
    max_file_bytes: int
    """Largest file fetched from an XMPP message's URL for the other networks."""
    self_ping_interval: float
    """Seconds between two XEP-0410 self-pings of each MUC (a silently lost presence)."""
    file_hosts: FileHosts
    """Hosts (and ports; None: any) the bridge fetches files from: an XMPP message's URL
    elsewhere is not bridged. ``*.example.org`` is every subdomain; IP addresses in their
    usual form. Default: ``domain`` and its subdomains; empty: no file is fetched."""
    file_private_networks: tuple[IPv4Network | IPv6Network, ...]
    """Loopback, private or link-local networks the file hosts may resolve to all the same
    (by default none: only public addresses are connected to)."""
    read_markers: bool = True
    """Whether XEP-0333 displayed markers cross, both ways (in one-to-one chats, and in MUCs
    that advertise them); off where admins count them as personal data."""

    kind: str = "xmpp"

    @property
    def domains(self) -> tuple[str, ...]:
        return self.allowed_domains


def _valid_domain(fields: dict[str, Node], key: str) -> str | None:
    """The domain at ``key`` when it is one (lower-cased), without reporting anything."""
    value = fields[key].value if key in fields else None
    return value.lower() if isinstance(value, str) and DOMAIN_RE.fullmatch(value) else None


def _domain(r: Reader, node: Node) -> str | None:
    value = r.matching(node, DOMAIN_RE, "a domain (e.g. xmpp.example.org)")
    return value.lower() if value is not None else None


class XmppSchema(NetworkSchema):
    account_format = AccountFormat(
        BARE_JID_RE,
        "a bare JID (user@domain)",
        str.lower,
        home_domains=lambda network: (network.domain, *network.allowed_domains),
    )
    table = (
        Key("server", lambda r, n: _server(r, n), (DEFAULT_SERVER_HOST, DEFAULT_COMPONENT_PORT)),
        Key("component", _domain),
        Key("secret", Reader.secret),
        Key("domain", _domain),
        Key("allowed_domains", Reader.string_list, NO_STRINGS),
        Key("nick", Reader.nonempty, DEFAULT_NICK),
        Key("upload_service", lambda r, n: r.matching(n, DOMAIN_RE, "a domain JID"), None),
        Key("max_file_bytes", lambda r, n: r.integer(n, 1), DEFAULT_MAX_FILE_BYTES),
        Key("self_ping_interval", Reader.positive_number, DEFAULT_SELF_PING_SECONDS),
        Key("file_private_networks", lambda r, n: _networks(r, n), ()),
        Key("read_markers", Reader.boolean, True),
    )
    other_keys = ("file_hosts",)

    def room(self, network: str, node: Node) -> LinkRoom | None:
        """A MUC JID: ``"room@conference.example"`` or ``{room: …}``."""
        if isinstance(node.value, dict):
            room_node = self.r.sole(node, "room")
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
        values, ok = self.read_table(node, fields)
        shown = r.presentation(name, fields, "en")
        domain, component = _valid_domain(fields, "domain"), _valid_domain(fields, "component")
        default_hosts: FileHosts = ((domain, None), (f"*.{domain}", None)) if domain else ()
        file_hosts = r.optional(fields, "file_hosts", lambda n: _file_hosts(r, n), default_hosts)
        if component is not None and component == domain:
            r.error(fields["component"], "must differ from domain (the users' domain)")
            return None
        if not ok or shown is None or file_hosts is None:
            return None
        host, port = values.pop("server")
        upload = values.pop("upload_service")
        return XmppNetwork(
            name=name,
            server_host=host,
            server_port=port,
            upload_service=upload.lower() if upload else None,
            file_hosts=file_hosts,
            **{**values, "allowed_domains": values["allowed_domains"] or (domain,)},
            **vars(shown),
        )


def _server(r: Reader, node: Node) -> tuple[str, int] | None:
    fields = r.fields(node, ("host", "port"))
    if fields is None:
        return None
    host = r.optional(fields, "host", r.nonempty, DEFAULT_SERVER_HOST)
    port = r.optional(fields, "port", lambda n: r.integer(n, 1, 65535), DEFAULT_COMPONENT_PORT)
    if host is None or port is None:
        return None
    if any(c.isspace() for c in host):
        r.error(fields["host"], f"{quote(host)} is not a host name or address")
        return None
    return host, port


def _networks(r: Reader, node: Node) -> tuple[IPv4Network | IPv6Network, ...] | None:
    """``[127.0.0.1/32, 10.0.0.0/8, "fd00::/8"]``: IP networks (an address is a /32)."""
    return r.parsed_list(
        node, lambda value: ip_network(value, strict=False), "an IP network (e.g. 10.0.0.0/8)"
    )


def _file_hosts(r: Reader, node: Node) -> FileHosts | None:
    """``[upload.example.org, "*.example.org", "192.0.2.7:5281", "[2001:db8::7]:443"]``."""
    return r.parsed_list(node, _file_host, FILE_HOST_WHAT)


def _file_host(value: str) -> tuple[str, int | None]:
    match = FILE_HOST_RE.fullmatch(value)
    if match is None:
        raise ValueError(value)
    port = int(match.group("port")) if match.group("port") else None
    host = (match.group("name") or match.group("v6")).lower()
    if port is not None and not 0 < port < 65536:
        raise ValueError(value)
    if match.group("v6") or host.replace(".", "").isdigit():
        host = str(ip_address(host))
    return host, port
