"""How people from other networks are addressed on XMPP: puppet JIDs and MUC nicknames.

Pure functions. A puppet JID is built from the person's network and ID alone, so it is the same
after every restart and the XMPP side can keep it in rosters; nicknames follow the display name
and only change when it does.
"""

from __future__ import annotations

import hashlib
import re

from slixmpp.jid import JID, InvalidJID

from bridge.events import Sender
from bridge.naming import clean, shown_name

MAX_LOCALPART = 200
"""Localparts may be 1023 bytes, but long JIDs are unwieldy in clients and logs; a longer one
keeps its start and ends in a hash of the whole (see `puppet_localpart`)."""
MAX_NICK = 64

# XEP-0106 §3.2: the characters nodeprep forbids and their escapes. Both directions are
# implemented here: slixmpp's `unescape_node` (Rust) panics on a trailing ``\\`` or ``\\5``,
# with an error that is not an `Exception`, and localparts come from strangers.
_ESCAPES = {" ": "\\20", '"': "\\22", "&": "\\26", "'": "\\27", "/": "\\2f", ":": "\\3a",
            "<": "\\3c", ">": "\\3e", "@": "\\40", "\\": "\\5c"}  # fmt: skip
_UNESCAPES = {code: char for char, code in _ESCAPES.items()}
_ESCAPE_SEQUENCE = re.compile("|".join(re.escape(code) for code in _UNESCAPES))
_ESCAPABLE = "".join(re.escape(c) for c in _ESCAPES if c != "\\")
_NEEDS_ESCAPE = re.compile(
    rf"[{_ESCAPABLE}]|\\(?=({'|'.join(re.escape(s[1:]) for s in _ESCAPES.values())}))",
    re.IGNORECASE,
)
_HASHED = re.compile(r"-[0-9a-f]{32}$")
_PREP_DOMAIN = "passerelle.invalid"
"""Any valid domain: `_prepared` only reads the localpart back."""


def escape_node(text: str) -> str:
    """XEP-0106 escaping of a localpart: the ten characters nodeprep forbids become ``\\xx``;
    a backslash is escaped only where it would otherwise read as an escape sequence."""
    return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], text)


def unescape_node(localpart: str) -> str:
    """XEP-0106 unescaping of a localpart (the inverse of `escape_node`): each of the ten
    escape sequences becomes its character, in one pass; anything else stays as it is."""
    return _ESCAPE_SEQUENCE.sub(lambda m: _UNESCAPES[m.group(0)], localpart)


def _prepared(localpart: str) -> str | None:
    """``localpart`` as the XMPP server compares it (nodeprep: case-folded, NFKC, some
    characters mapped to nothing), or None when nodeprep refuses it."""
    try:
        return str(JID(f"{localpart}@{_PREP_DOMAIN}").node)
    except InvalidJID:
        return None


def _cut(text: str, size: int) -> str:
    """The longest start of ``text`` that fits ``size`` UTF-8 bytes."""
    return text.encode()[:size].decode(errors="ignore")


def puppet_localpart(network: str, local: str) -> str:
    """The localpart of the puppet of a person of ``network``: ``<network>_<escaped ID>``,
    ``local`` being their account as its kind writes it into addresses
    (`AccountFormat.local_form`: a Matrix user ID without its ``@``).

    That is kept only when the XMPP server would compare it as it is: an ID that nodeprep would
    change (``@Alice:x``, which would otherwise be ``@alice:x``'s puppet; ``ß``, ``ﬁ``), one
    too long, or one whose text already ends like a hashed localpart gets its (prepared,
    shortened) start and a hash of the exact ID instead, ``-`` and 32 hex digits. So two
    people never share a puppet, and only hashed localparts end in a hash."""
    text = escape_node(f"{network}_{local}")
    if len(text.encode()) <= MAX_LOCALPART and not _HASHED.search(text):
        if _prepared(text) == text:
            return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    head = _prepared(_cut(text, MAX_LOCALPART - 33)) or f"{network}_"
    hashed = f"{_cut(head, MAX_LOCALPART - 33)}-{digest}"
    return hashed if _prepared(hashed) == hashed else f"{network}_-{digest}"


def puppet_jid(network: str, local: str, component: str) -> str:
    """The bare JID of a remote person on the component's domain (``local``: see
    `puppet_localpart`)."""
    return f"{puppet_localpart(network, local)}@{component}"


def describe_puppet(localpart: str) -> str:
    """The readable form of a puppet localpart, for logs (XEP-0106 unescaped)."""
    return unescape_node(localpart)


def nickname(sender: Sender) -> str:
    """A person's MUC nickname: their name as every network shows it (`bridge.naming`), e.g.
    ``Max Mustermann [BMI]`` or ``Jean Dupont [Intérieur] (Tchap)``, at most `MAX_NICK`
    characters."""
    return clean(shown_name(sender), MAX_NICK) or "?"


def nick_candidates(base: str, attempts: int = 20) -> list[str]:
    """Nicknames to try in order when ``base`` is taken in a room: ``base``, ``base (2)``, …"""
    return [base] + [f"{base} ({n})" for n in range(2, attempts + 1)]


def puppet_owner(localpart: str, networks: list[str]) -> tuple[str, str] | None:
    """The (network, account in its local form) a puppet localpart stands for: the inverse of
    `puppet_localpart`, or None when it is no puppet's, or a hashed one (whose ID cannot be
    read back)."""
    text = unescape_node(localpart)
    for network in sorted(networks, key=len, reverse=True):
        prefix = f"{network}_"
        remote = text[len(prefix) :]
        if text.startswith(prefix) and remote and puppet_localpart(network, remote) == localpart:
            return network, remote
    return None
