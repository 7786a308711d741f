"""Where the bridge may fetch a file an XMPP message points to: pure functions.

An out-of-band URL is chosen by whoever sent the message. Fetched blindly, it would make the
bridge request anything it can reach (its own ``/metrics``, the homeserver's API, an internal
web server) and post the answer into the Matrix rooms. So a file is fetched only when

- the URL is http(s) and its host is one of the network's ``file_hosts`` (by default its
  ``domain`` and the subdomains, where the upload service lives), and
- every address the bridge connects to is public, or inside ``file_private_networks``.

`url_refusal` is checked when a message arrives (a refused URL is not bridged) and again before
each request, redirects included; `address_refusal` on the very addresses a name resolved to,
where the connection is made (`connectors.xmpp.files`), and on IP-literal hosts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from yarl import URL

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")


@dataclass(frozen=True)
class FilePolicy:
    hosts: tuple[tuple[str, int | None], ...]
    """(host, port or None for any) pairs; a host ``*.example.org`` stands for every
    subdomain of example.org, an IP address for itself."""
    private_networks: tuple[Network, ...] = ()
    """Non-public addresses the allowed hosts may resolve to all the same."""


def _ip(text: str) -> Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, IPv4-compatible, NAT64 or
    6to4), which is what a connection to it reaches; any other address as it is."""
    if isinstance(address, IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_refusal(address: str | Address, policy: FilePolicy) -> str | None:
    """Why the bridge must not connect to ``address`` for a file, or None if it may: only
    public addresses, and those in ``private_networks``; never an unspecified or multicast
    one."""
    ip = _ip(address) if isinstance(address, str) else address
    if ip is None:
        return f"{address} is not an IP address"
    ip = _embedded_ipv4(ip)
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is {'unspecified' if ip.is_unspecified else 'multicast'}"
    if any(ip in network for network in policy.private_networks):
        return None
    for kind, refused in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                          ("private", ip.is_private), ("reserved", ip.is_reserved)):  # fmt: skip
        if refused:
            return f"{ip} is a {kind} address"
    return None if ip.is_global else f"{ip} is not a public address"


def host_allowed(host: str, port: int, policy: FilePolicy) -> bool:
    """Whether ``host`` (lower-case, no trailing dot; an IP address in its usual form) and
    ``port`` are among the policy's hosts."""
    for rule, rule_port in policy.hosts:
        if rule_port is not None and rule_port != port:
            continue
        if rule.startswith("*."):
            if host.endswith(rule[1:]):
                return True
        elif host == rule:
            return True
    return False


def url_refusal(url: str | URL, policy: FilePolicy) -> str | None:
    """Why the file at ``url`` must not be fetched, or None if it may be (as far as the URL
    tells: a host name's addresses are checked when it is resolved)."""
    try:
        parsed = URL(url) if isinstance(url, str) else url
        host, port = parsed.raw_host, parsed.port
    except (ValueError, TypeError) as e:
        return f"malformed URL ({e})"
    if parsed.scheme not in ("http", "https"):
        return "not an http(s) URL"
    if not host or port is None:
        return "no host in the URL"
    ip = _ip(host)
    host = str(ip) if ip is not None else host.lower().removesuffix(".")
    if ip is None and not _HOSTNAME.fullmatch(host):
        return f"{host!r} is not a host name"
    if not host_allowed(host, port, policy):
        return f"{host} port {port} is not among the network's file_hosts"
    return address_refusal(ip, policy) if ip is not None else None
