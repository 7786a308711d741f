"""Puppets' vCards (XEP-0054) and the avatar hash their presence announces (XEP-0153).

Kept in memory: a puppet's card is made when it joins a room, from the sender's name and the
avatar their source network knows, and served to anyone who asks the component for it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from connectors.xmpp.component import VCard

MAX_AVATAR_BYTES = 1024 * 1024

log = logging.getLogger(__name__)


def photo_type(data: bytes) -> str | None:
    """The image type of an avatar, from its first bytes; None for anything else."""
    for magic, mimetype in ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"),
                            (b"GIF8", "image/gif"), (b"RIFF", "image/webp")):  # fmt: skip
        if data.startswith(magic):
            return mimetype
    return None


@dataclass(frozen=True)
class _Card:
    vcard: VCard
    source: str | None
    """The avatar reference it was made from (so an unchanged one is not fetched again)."""
    photo_hash: str | None


class VCards:
    def __init__(self) -> None:
        self._cards: dict[str, _Card] = {}

    async def prepare(
        self,
        jid: str,
        name: str,
        avatar: str | None,
        fetch: Callable[[str], Awaitable[bytes]],
    ) -> str | None:
        """Make (or keep) the card of ``jid``; the SHA-1 of its photo, for XEP-0153."""
        card = self._cards.get(jid)
        if card is not None and card.source == avatar and card.vcard.name == name:
            return card.photo_hash
        photo = None
        if avatar is not None:
            try:
                photo = await fetch(avatar)
            except Exception as e:
                log.warning("No avatar for %s: %s", name, e)
        mimetype = photo_type(photo) if photo is not None else None
        if photo is not None and (len(photo) > MAX_AVATAR_BYTES or mimetype is None):
            photo = None
        photo_hash = hashlib.sha1(photo).hexdigest() if photo is not None else None
        self._cards[jid] = _Card(VCard(name, photo, mimetype), avatar, photo_hash)
        return photo_hash

    def get(self, jid: str) -> VCard | None:
        card = self._cards.get(jid)
        return card.vcard if card is not None else None
