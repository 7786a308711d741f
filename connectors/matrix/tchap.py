"""Tchap conventions (see DESIGN.md, "Tchap facts"): user IDs, servers, display names, rooms'
access rules. Pure functions, used by the Matrix connector when a network is Tchap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from bridge.notices import Notice, notice

__all__ = [
    "ACCESS_RULES_EVENT",
    "EXTERNAL_SERVER",
    "AccessRule",
    "is_external_server",
    "may_transition",
    "parse_access_rule",
    "restricted_room_refusal",
    "server_name_for",
    "split_display_name",
    "user_id_from_email",
]

#: Homeserver of external (non-government) Tchap users.
EXTERNAL_SERVER = "agent.externe.tchap.gouv.fr"

#: State event type carrying a Tchap room's access rule (state key "").
ACCESS_RULES_EVENT = "im.vector.room.access_rules"

_SUBADDRESS = re.compile(r"\+[^@]*(?=@[^@]*$)")
_NOT_LOCALPART = re.compile(r"[^a-z0-9_.=/-]")


def user_id_from_email(email: str, server_name: str) -> str:
    """The Tchap user ID an agent with this email gets on ``server_name``.

    Used to predict or look up the account of an agent known by email (mapping file). The
    address is lower-cased, a ``+tag`` subaddress is removed whole (DESIGN: "+tags vanish"; we
    read that as the tag disappearing, not as ``jean+x`` turning into ``jeanx``), the last ``@``
    becomes ``-`` and characters outside ``[a-z0-9_.=/-]`` are dropped. Tchap may append a
    counter for reused addresses, which cannot be predicted here: treat the result as a
    candidate, and never rebuild an email from a user ID.

    Raises ValueError when ``email`` has no ``@`` or leaves an empty local part.
    """
    address = email.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {email!r}")
    local = _SUBADDRESS.sub("", address).rpartition("@")[0]
    localpart = _NOT_LOCALPART.sub("", f"{local}-{domain}")
    if localpart.startswith("-") or not localpart:
        raise ValueError(f"email {email!r} gives no usable Tchap localpart")
    return f"@{localpart}:{server_name.strip().lower()}"


def server_name_for(user_id: str) -> str:
    """The server part of a Matrix user ID (``@local:server`` → ``server``, port kept).

    Raises ValueError for anything that is not ``@localpart:server``.
    """
    if not user_id.startswith("@"):
        raise ValueError(f"not a Matrix user ID: {user_id!r}")
    local, colon, server = user_id[1:].partition(":")
    if not colon or not local or not server:
        raise ValueError(f"not a Matrix user ID: {user_id!r}")
    return server


def is_external_server(server_name: str) -> bool:
    """Whether users of ``server_name`` are Tchap externals (barred from restricted rooms)."""
    return server_name.strip().lower() == EXTERNAL_SERVER


def split_display_name(display: str) -> tuple[str, str | None]:
    """Split ``Jean Dupont [Intérieur]`` into ``("Jean Dupont", "Intérieur")``.

    Used on incoming Tchap profiles: the homeserver puts the agent's organisation in their
    name, and the bridge shows it as the organisation (`bridge.naming`). Without a trailing
    ``[org]`` (or with nothing before it) the whole, trimmed, name is returned with ``None``.
    Plain string operations, no regular expression: names come from other servers too, and a
    backtracking pattern over a long one would be slow.
    """
    text = display.strip()
    opening = text.rfind("[")
    if text.endswith("]") and opening > 0:
        name, org = text[:opening].strip(), text[opening + 1 : -1].strip()
        if name and org and "]" not in org:
            return name, org
    return text, None


class AccessRule(StrEnum):
    """Values of ``rule`` in the ``im.vector.room.access_rules`` state event."""

    RESTRICTED = "restricted"  # no external users may join or be invited
    UNRESTRICTED = "unrestricted"  # externals allowed
    DIRECT = "direct"  # a two-member direct chat


def parse_access_rule(content: dict[str, Any] | None) -> AccessRule:
    """The access rule of a room from its state event content (``None`` if there is none).

    Tchap makes ``restricted`` the default for group rooms, so a missing event, a missing or
    unknown ``rule`` all count as restricted: when in doubt, keep outsiders out.
    """
    if not content:
        return AccessRule.RESTRICTED
    rule = content.get("rule")
    try:
        return AccessRule(rule) if isinstance(rule, str) else AccessRule.RESTRICTED
    except ValueError:
        return AccessRule.RESTRICTED


def access_rules_state(rule: AccessRule) -> dict[str, Any]:
    """The initial state event that gives a room being created its access rule."""
    return {"type": ACCESS_RULES_EVENT, "state_key": "", "content": {"rule": rule.value}}


def restricted_room_refusal(
    rule: AccessRule, foreign_domains: Iterable[str], allowed: Iterable[str]
) -> Notice | None:
    """Why a Tchap room may not be bridged with these foreign domains, or None if it may.

    Called before linking a room and whenever a link would bring in people from new domains.
    ``foreign_domains`` are the domains of the people the bridge would put into the room;
    ``allowed`` the domains the operator declares acceptable in restricted rooms. Restricted
    and direct rooms refuse any domain not allowed; unrestricted rooms accept everyone.
    Domains compare case-insensitively.
    """
    if rule == AccessRule.UNRESTRICTED:
        return None
    permitted = {d.strip().lower() for d in allowed}
    refused = sorted({d.strip().lower() for d in foreign_domains} - permitted)
    if not refused:
        return None
    key = "room_off.direct" if rule == AccessRule.DIRECT else "room_off.restricted"
    return notice(key, domains=", ".join(refused))


def may_transition(old: AccessRule, new: AccessRule) -> bool:
    """Whether a room's access rule may change from ``old`` to ``new``.

    Tchap only ever opens a room (restricted → unrestricted); anything else seen in a state
    change is to be rejected or flagged.
    """
    return old == new or (old == AccessRule.RESTRICTED and new == AccessRule.UNRESTRICTED)
