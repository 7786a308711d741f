"""The ``kind: email`` network schema: the bridge's own mail domain, the inbound SMTP listener,
the outbound relay, DKIM signing, the sender-authentication policy, DNS and the spool; email
addresses as accounts; a link's address on the mail domain as a link's room."""

from __future__ import annotations

import ipaddress
import re
import ssl
import weakref
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from bridge.config.model import LinkRoom, Listen
from bridge.config.reader import (
    NO_STRINGS,
    AccountFormat,
    Key,
    Node,
    Reader,
    quote,
)
from bridge.kinds import NetworkSchema

DEFAULT_INBOUND_HOST = "127.0.0.1"
DEFAULT_INBOUND_PORT = 2525
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_HEADERS = 500
DEFAULT_MAX_HEADER_FIELD_BYTES = 16 * 1024
DEFAULT_PARSE_TIMEOUT = 10.0
MAX_PARSE_TIMEOUT = 20.0
"""A mail is read in three steps, each with this budget, and the answer to DATA must come before
the bridge's SMTP server drops the quiet connection (after 120 s)."""
DEFAULT_SPOOL_DAYS = 7.0
DEFAULT_DNS_TIMEOUT = 5.0
MAX_DNS_TIMEOUT = 30.0
"""The sender check waits for DNS once per mail, besides the three reading steps, and the
answer to DATA must come before the bridge's SMTP server drops the quiet connection."""
ADDRESS_RE = re.compile(r"[^@\s<>()\[\],;:\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
DOMAIN_RE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
SELECTOR_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
SELECTOR_WHAT = "a DKIM selector (letters, digits, '-', '_')"
NAMESERVER_RE = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([0-9.]+)(?::(\d+))?|([0-9A-Fa-f:]+)")


class AuthPolicy(StrEnum):
    """What happens to a mail whose sender DKIM and SPF do not vouch for, and to one whose
    sender could not be checked because DNS did not answer within ``dns_timeout``."""

    REJECT = "reject"
    """Refused during the SMTP dialogue (550): the sending server tells its user. Unchecked:
    451, and the sending server tries again later."""
    QUARANTINE = "quarantine"
    """Accepted but kept out of the rooms, in the spool's quarantine for admins to look at;
    unchecked mail too."""
    MARK = "mark"
    """Bridged, with "unverified sender" in the name and the text; unchecked mail with "sender
    could not be verified"."""


class RelaySecurity(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


@dataclass(frozen=True)
class InboundSettings:
    """The bridge's own SMTP server, which receives the mail sent to link addresses."""

    host: str
    port: int
    tls_cert: Path | None
    """Certificate chain offered with STARTTLS; no STARTTLS without it."""
    tls_key: Path | None
    max_message_bytes: int
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    """A received mail's header block, measured before anything reads it."""
    max_headers: int = DEFAULT_MAX_HEADERS
    """Header fields of a received mail."""
    max_header_field_bytes: int = DEFAULT_MAX_HEADER_FIELD_BYTES
    """One header field of a received mail, with its continuation lines."""
    parse_timeout: float = DEFAULT_PARSE_TIMEOUT
    """Seconds the mail worker may spend on each step of reading one mail (its header, its
    DKIM signatures, its MIME structure) before the mail is refused and the worker replaced."""


@dataclass(frozen=True)
class SmtpRelay:
    """The server the bridge hands outgoing mail to."""

    host: str
    port: int
    security: RelaySecurity
    username: str | None
    password: str | None = field(repr=False)


@dataclass(frozen=True)
class DkimKey:
    selector: str
    private_key: bytes = field(repr=False)
    """RSA private key, PEM (PKCS#1, as ``openssl genrsa`` or dkimpy's ``dknewkey`` write it)."""


@dataclass(frozen=True)
class EmailNetwork:
    name: str
    domain: str
    """The bridge's mail domain: every link address is on it, and mail from it is a loop."""
    inbound: InboundSettings
    relay: SmtpRelay
    dkim: DkimKey | None
    """Signs outgoing mail; None when the relay signs instead."""
    auth_policy: AuthPolicy
    dns: tuple[tuple[str, int], ...]
    """Nameservers (address, port) for DKIM and SPF lookups; empty: the system's resolver."""
    dns_timeout: float
    """Seconds one mail's DKIM and SPF checks may wait for DNS in all."""
    spool: Path
    """Where received attachments wait for delivery, and where quarantined mail is kept."""
    spool_days: float
    """Age after which a spooled attachment is removed even if something still waits for it."""
    org_label: str | None
    name_suffix: str
    label: str
    language: str
    allowed_domains: tuple[str, ...]
    """Mail domains whose senders may post to any link even when not listed in its people."""

    kind: str = "email"

    @property
    def domains(self) -> tuple[str, ...]:
        """Where senders come from: the allowed domains, or any domain at all (``*``), since a
        link's people may have addresses anywhere."""
        return self.allowed_domains or ("*",)

    def address(self, local_part: str) -> str:
        return f"{local_part}@{self.domain}"


# The loader passes `room` only the network's name; the mail domain a link address must be on
# was read by `network` of the same load, which shares the Reader.
_domains: weakref.WeakKeyDictionary[Reader, dict[str, str]] = weakref.WeakKeyDictionary()


def normalize_address(value: str) -> str:
    """Addresses compare case-insensitively throughout the bridge: they are kept lower-case."""
    return value.strip().lower()


INBOUND_KEYS = (
    Key("host", Reader.nonempty, DEFAULT_INBOUND_HOST),
    Key("port", lambda r, n: r.integer(n, 1, 65535), DEFAULT_INBOUND_PORT),
    Key("max_message_bytes", lambda r, n: r.integer(n, 1024), DEFAULT_MAX_MESSAGE_BYTES),
    Key("max_header_bytes", lambda r, n: r.integer(n, 1024), DEFAULT_MAX_HEADER_BYTES),
    Key("max_headers", lambda r, n: r.integer(n, 10), DEFAULT_MAX_HEADERS),
    Key("max_header_field_bytes", lambda r, n: r.integer(n, 1000), DEFAULT_MAX_HEADER_FIELD_BYTES),
    Key("parse_timeout", lambda r, n: _parse_timeout(r, n), DEFAULT_PARSE_TIMEOUT),
    Key("tls_cert", lambda r, n: _file(r, n), None),
    Key("tls_key", lambda r, n: _file(r, n), None),
)
"""The ``inbound`` block, its keys named as the fields of `InboundSettings`."""
DEFAULT_INBOUND = InboundSettings(**{key.name: key.default for key in INBOUND_KEYS})


class EmailSchema(NetworkSchema):
    account_format = AccountFormat(ADDRESS_RE, "an email address (name@domain)", normalize_address)
    table = (
        Key("domain", lambda r, n: _mail_domain(r, n)),
        Key("inbound", lambda r, n: _inbound(r, n), DEFAULT_INBOUND),
        Key("relay", lambda r, n: _relay(r, n)),
        Key("dkim", lambda r, n: _dkim(r, n), None),
        Key("auth_policy", lambda r, n: r.choice(n, list(AuthPolicy)), AuthPolicy.REJECT.value),
        Key("dns", lambda r, n: _nameservers(r, n), ()),
        Key("dns_timeout", lambda r, n: _dns_timeout(r, n), DEFAULT_DNS_TIMEOUT),
        Key("spool", lambda r, n: _directory(r, n), None),
        Key("spool_days", Reader.positive_number, DEFAULT_SPOOL_DAYS),
        Key("allowed_domains", lambda r, n: _domain_list(r, n), NO_STRINGS),
    )  # fmt: skip

    def room(self, network: str, node: Node) -> LinkRoom | None:
        """A link's address: ``name@<the network's domain>``."""
        value = self.r.matching(node, ADDRESS_RE, "an email address (name@domain)")
        if value is None:
            return None
        address = normalize_address(value)
        domain = _domains.get(self.r, {}).get(network)
        if domain is not None and address.rpartition("@")[2] != domain:
            self.r.error(node, f"{quote(value)} is not on the network's mail domain {domain}")
            return None
        return LinkRoom(network, address, None)

    def network(
        self, name: str, node: Node, fields: dict[str, Node], listen: Listen
    ) -> EmailNetwork | None:
        r = self.r
        values, ok = self.read_table(node, fields)
        if values["domain"] is not None:
            _domains.setdefault(r, {})[name] = values["domain"]
        shown = r.presentation(name, fields, "en")
        if not ok or shown is None:
            return None
        return EmailNetwork(
            name=name,
            **{
                **values,
                "auth_policy": AuthPolicy(values["auth_policy"]),
                "spool": values["spool"] or r.base_dir / "mail-spool" / name,
            },
            **vars(shown),
        )


def _mail_domain(r: Reader, node: Node) -> str | None:
    value = r.matching(node, DOMAIN_RE, "a mail domain (e.g. passerelle.example)")
    return value.lower() if value is not None else None


def _inbound(r: Reader, node: Node) -> InboundSettings | None:
    read = r.block(node, INBOUND_KEYS)
    if read is None:
        return None
    values = read.values
    tls_ok = _tls_pair(r, node, read.fields, values["tls_cert"], values["tls_key"])
    return InboundSettings(**values) if read.ok and tls_ok else None


def _parse_timeout(r: Reader, node: Node) -> float | None:
    return _at_most(r, node, r.positive_number(node), MAX_PARSE_TIMEOUT)


def _dns_timeout(r: Reader, node: Node) -> float | None:
    return _at_most(r, node, r.duration(node), MAX_DNS_TIMEOUT)


def _tls_pair(
    r: Reader, node: Node, fields: dict[str, Node], cert: Path | None, key: Path | None
) -> bool:
    """Both or neither of ``tls_cert``/``tls_key``, and a pair that loads."""
    given = [k for k in ("tls_cert", "tls_key") if k in fields and fields[k].value is not None]
    if len(given) == 1:
        missing = "tls_key" if given == ["tls_cert"] else "tls_cert"
        r.error(node, f"is required with {given[0]}", node.key_path(missing))
        return False
    if cert is None or key is None:
        return not given
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        r.error(fields["tls_cert"], f"cannot load the certificate and key: {exc}")
        return False
    return True


def _relay(r: Reader, node: Node) -> SmtpRelay | None:
    fields = r.fields(node, ("host", "port", "security", "username", "password"))
    if fields is None:
        return None
    host_node = r.required(node, fields, "host")
    host = r.nonempty(host_node) if host_node else None
    security = r.optional(
        fields,
        "security",
        lambda n: r.choice(n, list(RelaySecurity)),
        RelaySecurity.STARTTLS.value,
    )
    default_port = {"starttls": 587, "tls": 465, "none": 25}.get(security or "", 587)
    port = r.optional(fields, "port", lambda n: r.integer(n, 1, 65535), default_port)
    username = r.optional(fields, "username", r.nonempty, None)
    password = r.optional(fields, "password", r.secret, None)
    has_password = "password" in fields and fields["password"].value is not None
    if (username is None) != (not has_password):
        given = "username" if username is not None else "password"
        missing = "password" if given == "username" else "username"
        r.error(node, f"is required with {given}", node.key_path(missing))
        return None
    if host is None or security is None or port is None or (has_password and not password):
        return None
    return SmtpRelay(host, port, RelaySecurity(security), username, password)


DKIM_KEYS = (
    Key("selector", lambda r, n: r.matching(n, SELECTOR_RE, SELECTOR_WHAT)),
    Key("key", lambda r, n: _private_key(r, n), field="private_key"),
)


def _dkim(r: Reader, node: Node) -> DkimKey | None:
    read = r.block(node, DKIM_KEYS)
    return DkimKey(**read.values) if read is not None and read.ok else None


def _private_key(r: Reader, node: Node) -> bytes | None:
    key = r.secret(node)
    if key is None:
        return None
    try:
        parse_pem_private_key(key.encode() + b"\n")
    except (UnparsableKeyError, ValueError, IndexError):
        r.error(node, "is not a PEM RSA private key (BEGIN RSA PRIVATE KEY)")
        return None
    return key.encode() + b"\n"


def _nameservers(r: Reader, node: Node) -> tuple[tuple[str, int], ...] | None:
    """``["127.0.0.1", "192.0.2.53:5353", "[::1]:53"]``: IP addresses, optional port."""
    return r.parsed_list(node, _nameserver, "a nameserver IP address[:port]")


def _domain_list(r: Reader, node: Node) -> tuple[str, ...] | None:
    values = r.string_list(node)
    if values is None:
        return None
    for item, value in zip(r.items(node) or [], values, strict=False):
        if not DOMAIN_RE.fullmatch(value):
            r.error(item, f"{quote(value)} is not a mail domain")
            return None
    return tuple(v.lower() for v in values)


def _file(r: Reader, node: Node) -> Path | None:
    value = r.nonempty(node)
    if value is None:
        return None
    path = r.base_dir / Path(value).expanduser()
    if not path.is_file():
        r.error(node, f"no such file: {path}")
        return None
    return path


def _directory(r: Reader, node: Node) -> Path | None:
    value = r.nonempty(node)
    return r.base_dir / Path(value).expanduser() if value is not None else None


def _nameserver(value: str) -> tuple[str, int]:
    match = NAMESERVER_RE.fullmatch(value)
    if match is None:
        raise ValueError(value)
    host = match.group(1) or match.group(3) or match.group(5)
    port = int(match.group(2) or match.group(4) or 53)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(value)
    return host, port


def _at_most(r: Reader, node: Node, seconds: float | None, maximum: float) -> float | None:
    """The seconds read at `node`, unless more than `maximum` (an error then)."""
    if seconds is not None and not seconds <= maximum:
        r.error(node, f"must be at most {maximum:g} seconds")
        return None
    return seconds
