"""Network kinds: what the core knows of each, and how it finds them.

A kind (Matrix, XMPP, email…) is a package ``connectors/<kind>/`` that describes itself with one
`Kind` (its ``KIND``) and is listed once, as an entry point of the group ``passerelle.kinds``
in ``pyproject.toml``. The core never names a kind: it reads a network's ``kind`` key, looks the
kind up here, and from its descriptor gets everything else it needs: the config schema of its
networks and rooms, the format of its accounts, its connector, its own tables, its commands.
``connectors/README.md`` walks through adding one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from bridge.config.model import Config, LinkRoom, Listen, Network
from bridge.config.reader import PRESENTATION_KEYS, AccountFormat, Key, Node, Reader

if TYPE_CHECKING:
    from mautrix.util.async_db import UpgradeTable

    from bridge.connector import Connector, Host
    from bridge.personal import KindData

ENTRY_POINTS = "passerelle.kinds"


class KindSchema(Protocol):
    """Reads and checks the networks of one kind and their rooms in links; every problem is
    recorded on the `Reader`, located, never raised."""

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


class NetworkSchema:
    """What the kinds' schemas share: one `Reader` for the config file at `path`, and the
    keys of a network entry: those of the kind's `table` (read in its order by
    `read_table`), the `PRESENTATION_KEYS`, and the `other_keys` the kind reads itself."""

    table: ClassVar[tuple[Key, ...]] = ()
    other_keys: ClassVar[tuple[str, ...]] = ()
    keys: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.keys = (*(key.name for key in cls.table), *PRESENTATION_KEYS, *cls.other_keys)

    def __init__(self, reader: Reader, path: Path) -> None:
        self.r = reader
        self.path = path

    def read_table(self, node: Node, fields: dict[str, Node]) -> tuple[dict[str, Any], bool]:
        return self.r.table(node, fields, self.table)


Build = Callable[[Any, "Host"], "Connector"]
"""The connector of one network of a kind (its network settings, the core's host)."""


def connector(module: str, name: str) -> Build:
    """A `Kind.build` making the connector class `name` of `module`, imported on first use:
    the commands that connect to no network (``check-config``…) import no network library."""

    def build(network: Any, host: Host) -> Connector:
        made: Connector = getattr(import_module(module), name)(network, host)
        return made

    return build


Commands = Callable[["argparse._SubParsersAction[Any]"], None]


@dataclass(frozen=True)
class Kind:
    name: str
    schema: type[KindSchema]
    build: Build
    state: UpgradeTable | None = None
    """The kind's own tables, with their own version table: the core opens and migrates them
    in the bridge's database and hands them to its connectors (`Host.state`)."""
    commands: Commands | None = None
    """Adds the kind's subcommands to ``passerelle`` (each sets ``handler`` to a function of
    the parsed arguments returning an exit status)."""
    personal: KindData | None = None
    """What the kind keeps about people and on disk (`bridge.personal`): for the person
    commands and retention."""
    default: bool = False
    """The kind of a network entry without ``kind`` (one kind at most says so)."""
    account_format: AccountFormat = field(init=False)
    """The schema's: a person's account on a network of this kind."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "account_format", self.schema.account_format)


@cache
def kinds() -> Mapping[str, Kind]:
    """Every installed kind, by name."""
    found: dict[str, Kind] = {}
    for point in entry_points(group=ENTRY_POINTS):
        kind = point.load()
        if not isinstance(kind, Kind) or kind.name != point.name:
            raise RuntimeError(f"entry point {point.value} is not the Kind {point.name!r}")
        found[kind.name] = kind
    return found


def default_kind() -> str:
    """The kind a network entry without ``kind`` has."""
    return next((k.name for k in kinds().values() if k.default), "")


def account_format(config: Config, network: str) -> AccountFormat:
    """How accounts on ``network`` look, as its kind says."""
    return kinds()[config.networks[network].kind].account_format
