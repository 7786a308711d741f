"""The validated configuration: what the rest of the bridge reads.

The loader (`bridge.config.load`) turns the admin's YAML into these frozen objects only after
every check passed, so nothing downstream has to re-validate or guess at defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from bridge.config.policy import Policy
from bridge.config.reader import Problem


class Network(Protocol):
    """What the core needs of any network, whatever its kind (each kind adds its settings)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str:
        """The connector package that serves it (``connectors.<kind>``)."""
        ...

    @property
    def org_label(self) -> str | None: ...

    @property
    def name_suffix(self) -> str: ...

    @property
    def label(self) -> str:
        """How notices name this network for people ("Tchap", "BundesMessenger")."""
        ...

    @property
    def language(self) -> str:
        """The language of the notices posted on this network (``de``, ``fr`` or ``en``)."""
        ...

    @property
    def allowed_domains(self) -> tuple[str, ...]: ...

    @property
    def domains(self) -> tuple[str, ...]:
        """Where this network's people come from: checked against Tchap's restricted rooms."""
        ...


@dataclass(frozen=True, slots=True)
class Person:
    """One human, with an account on some of the networks (slotted, like the links: a large
    mapping holds a hundred thousand of them)."""

    id: str
    name: str
    org: str | None
    accounts: Mapping[str, str]
    """Network name → account on it (a Matrix user ID, a JID, an email address)."""


@dataclass(frozen=True, slots=True)
class LinkRoom:
    network: str
    room: str | None
    """The room's address on its network, or None when the network creates it (``create``)."""
    create: object | None
    """What the network's kind needs to create the room (e.g. a Matrix room's name)."""


@dataclass(frozen=True, slots=True)
class Link:
    """One conversation that exists once on each of several networks."""

    id: str
    rooms: Mapping[str, LinkRoom]
    people: tuple[str, ...]
    """Person IDs invited to the rooms the bridge creates for this link."""
    mirror_members: bool | None = None
    """Whether the people of each room appear as members of the link's other rooms (ghosts
    join and leave, puppets take seats): always, never, or (None) while the room they join or
    leave has fewer than `bridge.members.MIRROR_MEMBERS_LIMIT` members."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int


class LogFormat(StrEnum):
    TEXT = "text"
    """One readable line per record: time, level, logger, message."""
    JSON = "json"
    """One JSON object per line, for admins who ship logs to a collector."""


@dataclass(frozen=True)
class Logging:
    level: str = "INFO"
    file: Path | None = None
    """Where the log goes (reopened when log rotation moves it away); None: standard error."""
    format: LogFormat = LogFormat.TEXT


@dataclass(frozen=True)
class Delivery:
    """How long the outbox keeps trying. A network that is down never uses up a message's
    attempts: messages wait for it up to ``give_up_after`` (like a mail server's queue
    lifetime); ``max_attempts`` counts only failures this very message causes."""

    max_attempts: int = 8
    initial_backoff: float = 1.0
    max_backoff: float = 300.0
    give_up_after: float = 5 * 86400.0
    """Seconds a message waits for a network that is down before the sender is told."""


@dataclass(frozen=True)
class Admin:
    """Who may read the bridge's state: the admin API and the status page (`bridge.admin`)."""

    token: str = field(repr=False)
    """Presented as ``Authorization: Bearer …`` to the API, or typed into the page's form."""


@dataclass(frozen=True)
class FederationListSource:
    """Where a network's signed federation list comes from (`bridge.federation`), and how it
    is checked: one of ``url`` (HTTPS) and ``file``."""

    public_key: str = field(repr=False)
    """The key the list must be signed with: PEM or JWK text (checked when the config is)."""
    url: str | None = None
    file: Path | None = None
    refresh: float = 3600.0
    """Seconds between two reads of the list."""
    timeout: float = 30.0
    """Seconds one read of the URL may take, answer included."""
    max_bytes: int = 1024 * 1024
    ca_file: Path | None = None
    """CA certificates the URL's server is checked against instead of the system's."""


@dataclass(frozen=True)
class Audit:
    """The audit trail (`bridge.audit`): its records are chained by HMACs under ``key``."""

    key: bytes = field(repr=False)
    """Makes every hash of the trail: without it no record can be forged, and no content
    confirmed from its hash. Changing it makes the records written before fail to verify."""
    checkpoint_interval: float = 3600.0
    """Seconds between two log lines with the last record's number and hash."""


DAY = 86400.0


@dataclass(frozen=True)
class Retention:
    """How long the bridge keeps what it stores, in seconds; None keeps it (`bridge.retention`)."""

    id_map: float | None = None
    """Which message is which on every network (replies, edits and reactions to older
    messages then no longer find their target)."""
    outbox: float | None = None
    """Messages still queued (normally given up after ``delivery.give_up_after`` already)."""
    audit: float | None = None
    spool: float | None = None
    """Files a network keeps on disk (a mail network's attachments and quarantined mail)."""


@dataclass(frozen=True)
class Config:
    path: Path
    database: str
    listen: Listen
    logging: Logging
    delivery: Delivery
    networks: Mapping[str, Network]
    people: tuple[Person, ...]
    links: tuple[Link, ...]
    admin: Admin | None = None
    """None: the admin API and the status page are off (they answer 404)."""
    federation_lists: Mapping[str, FederationListSource] = field(default_factory=dict)
    """Network → where its federation list comes from (networks that take their domains
    from one)."""
    policy: Policy = field(default_factory=Policy)
    """What may cross from one room of a link to another (`bridge.config.policy`)."""
    audit: Audit | None = None
    """None: no audit trail is written."""
    retention: Retention = Retention()
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    """What the admin should look at although it works (`Problem.warning`), in file order."""
    _by_account: dict[str, dict[str, Person]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Network → account → person (nested rather than keyed by pairs: a pair per account is
    the larger part of the index's memory with a hundred thousand people)."""
    _links: dict[str, Link] = field(default_factory=dict, compare=False, repr=False)
    _by_id: dict[str, Person] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for person in self.people:
            self._by_id[person.id] = person
            for network, account in person.accounts.items():
                self._by_account.setdefault(network, {})[account] = person
        self._links.update((link.id, link) for link in self.links)

    def person_by_account(self, network: str, account: str) -> Person | None:
        accounts = self._by_account.get(network)
        return accounts.get(account) if accounts is not None else None

    def link(self, link_id: str) -> Link:
        return self._links[link_id]

    def person(self, person_id: str) -> Person | None:
        return self._by_id.get(person_id)
