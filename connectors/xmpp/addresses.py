"""How people from other networks are addressed on XMPP: puppet JIDs and MUC nicknames.

Pure functions. A puppet JID is built from the person's network and ID alone, so it is the same
after every restart and the XMPP side can keep it in rosters; nicknames follow the display name
and only change when it does.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from slixmpp.jid import JID, InvalidJID, unescape_node

from bridge.events import Sender

MAX_LOCALPART = 200
"""Localparts may be 1023 bytes, but long JIDs are unwieldy in clients and logs; a longer one
keeps its start and ends in a hash of the whole."""
MAX_NICK = 64

# XEP-0106 §3.2: the characters nodeprep forbids and their escapes. slixmpp ships only the
# unescaping (`unescape_node`).
_ESCAPES = {" ": "\\20", '"': "\\22", "&": "\\26", "'": "\\27", "/": "\\2f", ":": "\\3a",
            "<": "\\3c", ">": "\\3e", "@": "\\40", "\\": "\\5c"}  # fmt: skip
_ESCAPABLE = "".join(re.escape(c) for c in _ESCAPES if c != "\\")
_NEEDS_ESCAPE = re.compile(
    rf"[{_ESCAPABLE}]|\\(?=({'|'.join(re.escape(s[1:]) for s in _ESCAPES.values())}))",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_BRACKETED = re.compile(r"\[[^\]]+\]$")


def escape_node(text: str) -> str:
    """XEP-0106 escaping of a localpart: the ten characters nodeprep forbids become ``\\xx``;
    a backslash is escaped only where it would otherwise read as an escape sequence."""
    return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], text)


def puppet_localpart(network: str, user_id: str) -> str:
    """The localpart of the puppet of ``user_id`` from ``network``: ``<network>_<escaped ID>``
    (a Matrix ID loses its leading ``@``), lower-cased as XMPP compares localparts."""
    escaped = escape_node(f"{network}_{user_id.removeprefix('@')}").lower()
    if len(escaped.encode()) > MAX_LOCALPART:
        digest = hashlib.sha256(escaped.encode()).hexdigest()[:32]
        escaped = f"{escaped.encode()[: MAX_LOCALPART - 33].decode(errors='ignore')}-{digest}"
    return escaped


def puppet_jid(network: str, user_id: str, component: str) -> str:
    """The bare JID of a remote person on the component's domain."""
    localpart = puppet_localpart(network, user_id)
    try:
        return JID(f"{localpart}@{component}").bare
    except InvalidJID:
        # An ID with characters nodeprep refuses even escaped (e.g. unassigned code points).
        digest = hashlib.sha256(f"{network}\0{user_id}".encode()).hexdigest()[:32]
        return JID(f"{network}_{digest}@{component}").bare


def describe_puppet(localpart: str) -> str:
    """The readable form of a puppet localpart, for logs (XEP-0106 unescaped)."""
    return unescape_node(localpart)


def nickname(sender: Sender) -> str:
    """A person's MUC nickname: the display name, the organisation in brackets unless the name
    already ends in one (Tchap names do), then the source network's suffix, e.g.
    ``Max Mustermann [BMI]`` or ``Jean Dupont [Intérieur] (Tchap)``."""
    name = _CONTROL.sub("", _SPACES.sub(" ", sender.display_name)).strip() or sender.user_id
    if sender.org and not _BRACKETED.search(name):
        name = f"{name} [{sender.org}]"
    name = f"{name}{sender.suffix}".strip()
    return clean_nick(name)


def clean_nick(nick: str) -> str:
    """A nickname a MUC accepts: NFC, no control characters, at most `MAX_NICK` characters."""
    nick = unicodedata.normalize("NFC", _CONTROL.sub("", _SPACES.sub(" ", nick))).strip()
    if len(nick) > MAX_NICK:
        nick = nick[: MAX_NICK - 1].rstrip() + "…"
    return nick or "?"


def nick_candidates(base: str, attempts: int = 20) -> list[str]:
    """Nicknames to try in order when ``base`` is taken in a room: ``base``, ``base (2)``, …"""
    return [base] + [f"{base} ({n})" for n in range(2, attempts + 1)]


def puppet_owner(localpart: str, networks: list[str]) -> tuple[str, str] | None:
    """The (network, remote ID) a puppet localpart stands for: the inverse of
    `puppet_localpart` (a Matrix ID comes back without its ``@``, and lower-cased), or None
    when no network matches or the localpart was shortened with a hash."""
    text = unescape_node(localpart)
    for network in sorted(networks, key=len, reverse=True):
        prefix = f"{network}_".lower()
        if text.startswith(prefix) and len(text) > len(prefix):
            if len(localpart.encode()) >= MAX_LOCALPART - 33 and re.search(
                r"-[0-9a-f]{32}$", localpart
            ):
                return None
            return network, text[len(prefix) :]
    return None
