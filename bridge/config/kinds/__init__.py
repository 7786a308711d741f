"""One schema per network kind: the keys a network of that kind takes, what an account on it
looks like (in ``people``) and what a link's room on it looks like (in ``links``).

A new kind is a module here with a class following `KindSchema`, listed in `KINDS`; the core
schema (`bridge.config.load`) dispatches on ``kind`` and knows nothing else about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bridge.config.kinds.email import EmailSchema
from bridge.config.kinds.matrix import MatrixSchema
from bridge.config.kinds.xmpp import XmppSchema
from bridge.config.model import LinkRoom, Listen, Network
from bridge.config.reader import AccountFormat, Node, Reader


class KindSchema(Protocol):
    keys: tuple[str, ...]
    """The keys a network entry of this kind may have, besides ``kind``."""
    account_format: AccountFormat
    """A person's account on a network of this kind (``people[].accounts.<network>``)."""

    def __init__(self, reader: Reader, path: Path) -> None: ...

    def network(
        self, name: str, node: Node, fields: dict[str, Node], listen: Listen
    ) -> Network | None:
        """The network's settings, or None after recording every problem with them."""
        ...

    def room(self, network: str, node: Node) -> LinkRoom | None:
        """A link's room on a network of this kind (``links[].rooms.<network>``)."""
        ...


KINDS: dict[str, type[KindSchema]] = {
    "matrix": MatrixSchema,
    "email": EmailSchema,
    "xmpp": XmppSchema,
}
