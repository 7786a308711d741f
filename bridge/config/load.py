"""Loading and validating the admin's YAML into a `Config`.

The file is read with ruamel's round-trip loader so every node knows its line and column. The
checks walk the whole document and collect *every* problem, each pointing at the exact place in
the file (``FILE:LINE:COL: key.path: message``), so an admin fixes a config in one pass instead
of one error per restart. A `Config` is only built when nothing was wrong.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode

from bridge import kinds as registry  # a module: kinds import the config model in turn
from bridge.config.compliance import read_audit, read_retention
from bridge.config.fastread import FastReadFailed, fast_document
from bridge.config.federation_list import read_federation_list
from bridge.config.model import (
    Admin,
    Config,
    Delivery,
    FederationListSource,
    Link,
    LinkRoom,
    Listen,
    LogFormat,
    Logging,
    Network,
    Person,
    Retention,
)
from bridge.config.policy import (
    DEFAULT,
    Classification,
    Policy,
    RoomPolicy,
    read_classification,
    read_policy,
)
from bridge.config.reader import (
    NO_STRINGS,
    AccountFormat,
    Node,
    Problem,
    Reader,
    did_you_mean,
    every_one,
    quote,
)

if TYPE_CHECKING:
    from bridge.kinds import KindSchema

T = TypeVar("T")

DEFAULT_DATABASE = "sqlite:passerelle.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 29340
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
PERSON_KEYS = frozenset(("id", "name", "org", "accounts"))
LINK_KEYS = frozenset(("id", "people", "rooms"))
SECTIONS = ("database", "listen", "logging", "delivery", "admin", "audit", "retention",
            "classification", "networks", "people", "links")  # fmt: skip
MIN_ADMIN_TOKEN = 16
"""Characters an admin token needs at least: it guards the bridge's state from anyone who
reaches the listen address, and is guessed at as often as they like."""
FEDERATION_LIST = "federation_list"
"""The key every network may have, whatever its kind (`bridge.config.federation_list`)."""
POLICY = "policy"
"""The key every network and link may have (`bridge.config.policy`)."""


class ConfigError(Exception):
    """The configuration cannot be used; `errors` lists every problem, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# -- document ------------------------------------------------------------------------------------


class _Constructor(RoundTripConstructor):  # type: ignore[misc]
    """ruamel's round-trip constructor, with a value it cannot convert (``!!int`` on text, an
    integer of thousands of digits) reported at its place without repeating it: Python's own
    message quotes the value, and the value may be a token."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except YAMLError:
            if not isinstance(node, ScalarNode):
                raise
            reason = "not of that type"
        except Exception as exc:  # ruamel's converters raise whatever their input makes them
            reason = type(exc).__name__
        tag = node.tag if isinstance(node.tag, str) else getattr(node.tag, "value", "")
        tag = str(tag or "its type").replace("tag:yaml.org,2002:", "!!")
        raise MarkedYAMLError(
            problem=f"cannot read this value as {tag} ({reason})", problem_mark=node.start_mark
        ) from None


def round_trip_yaml() -> YAML:
    """The YAML instance used to read (and, for tokens, rewrite) the config file."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def read_text(path: Path) -> tuple[str, list[Problem]]:
    """The text of `path`, or the problem reading it."""
    try:
        return path.read_text(encoding="utf-8"), []
    except OSError as exc:
        return "", [Problem(None, None, "", f"cannot read config file: {exc.strerror}")]
    except UnicodeDecodeError:
        return "", [Problem(None, None, "", "config file is not UTF-8 text")]


def read_document(path: Path) -> tuple[Any, str, list[Problem]]:
    """The round-trip document and the raw text of `path`, or the problems reading it."""
    text, problems = read_text(path)
    if problems:
        return None, "", problems
    try:
        doc = round_trip_yaml().load(text)
    except MarkedYAMLError as exc:
        return None, text, [_syntax_problem(exc)]
    except YAMLError as exc:
        return None, text, [Problem(None, None, "", f"YAML error: {exc}")]
    except RecursionError:
        return None, text, [Problem(None, None, "", "YAML error: values nested too deeply")]
    return doc, text, []


def _syntax_problem(exc: MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    # ruamel quotes both values of a duplicate key; they may be secrets, so keep only the key.
    problem = problem.split(" with value ", 1)[0]
    message = f"YAML syntax error: {problem}"
    if mark is None:
        return Problem(None, None, "", message)
    return Problem(mark.line, mark.column, "", message)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a document becomes a Config: that builds
    millions of objects without cycles, and each collection pass would walk the growing heap
    again for nothing (a third of the load time of a large mapping)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check_config(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Config | None, list[str]]:
    """Load and validate `path`: the Config, or None and every error as a located line.

    A valid config is read once, fast (`fast_document`); only a config with problems or
    warnings (or one the fast reader leaves alone) is read again with ruamel's round-trip
    loader, whose nodes know their line and column, and checked again to locate every problem.
    """
    path = Path(path)
    env = os.environ if env is None else env
    text, problems = read_text(path)
    if problems:
        return None, render(problems, path)
    with _collector_paused():
        plain = fast_document(text)
        del text
        if plain is not None:
            try:
                config, problems = validate(plain, path, env)
            except FastReadFailed:
                config = None
            if config is not None and not config.warnings:
                return config, []
        del plain
    doc, _, problems = read_document(path)
    config = None
    if not problems:
        config, problems = validate(doc, path, env)
    return config, render(problems, path)


def render(problems: list[Problem], path: Path) -> list[str]:
    """Problems as ``FILE:LINE:COL: path: message`` lines, in file order."""
    ordered = sorted(problems, key=lambda p: (p.line or 0, p.col or 0))
    return [p.render(str(path)) for p in ordered]


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """The validated configuration at `path`; raises `ConfigError` listing every problem."""
    config, errors = check_config(path, env)
    if config is None:
        raise ConfigError(errors)
    return config


def validate(doc: Any, path: Path, env: Mapping[str, str]) -> tuple[Config | None, list[Problem]]:
    """Check a loaded document (round-trip, or plain from `fast_document`); the Config is built
    only when there is no problem."""
    if doc is None:
        return None, [Problem(0, 0, "", "config file is empty")]
    root = Node(doc, "", getattr(getattr(doc, "lc", None), "line", 0) or 0, 0)
    reader = Reader(path.absolute().parent, env)
    config = _Schema(reader, path).config(root)
    if reader.problems:
        return None, reader.problems
    return config, []


# -- schema --------------------------------------------------------------------------------------


def foreign(formats: AccountFormat, network: Network, account: str) -> bool:
    """An account that is not on its network's own servers (`AccountFormat.home_domains`)."""
    if formats.home_domains is None:
        return False
    home = formats.home_domains(network)
    return bool(home) and formats.domain(account) not in home


def account_reader(formats: AccountFormat, network: Network) -> Callable[[str], str | None]:
    """The account a string stands for on ``network``, or None when it is not well-formed or
    is `foreign`: one per network for the people fast path, with the network's home domains
    and the format's functions looked up once instead of once per account."""
    match, normalize, domain = formats.pattern.fullmatch, formats.normalize, formats.domain
    home = frozenset(formats.home_domains(network)) if formats.home_domains else frozenset()

    def read(value: str) -> str | None:
        if not match(value):
            return None
        account = normalize(value)
        return None if home and domain(account) not in home else account

    return read


@dataclass(frozen=True)
class Section:
    """What the entries of the ``people`` or the ``links`` section are read against, and
    what reading them records, so that the second of two entries is reported: each id with
    its line, and who took which account or room on each network."""

    networks: Mapping[str, Network | None]
    seen_ids: dict[str, int]
    person_ids: Collection[str] = ()
    """The people a link may list."""
    taken: dict[str, dict[str, str]] = field(default_factory=dict)
    """Network → account or room → the id of the entry that took it."""
    readers: dict[str, Callable[[str], str | None]] = field(default_factory=dict)
    """Network → its `account_reader`, made on the first account seen on it."""


class _Schema:
    """The config's structure, one method per section; problems go to the `Reader`."""

    def __init__(self, reader: Reader, path: Path) -> None:
        self.r = reader
        self.path = path
        self._kinds: dict[str, KindSchema] = {}
        self.unread: set[str] = set()
        """Sections that could not be read (misspelled, not a mapping…): already reported,
        so what refers into them is not reported again."""
        self.federation_lists: dict[str, FederationListSource] = {}
        self.classification: Classification | None = None
        self.network_policies: dict[str, RoomPolicy] = {}
        self.link_policies: dict[str, dict[str, RoomPolicy]] = {}

    def config(self, root: Node) -> Config | None:
        fields = self.r.fields(root, SECTIONS)
        if fields is None:
            return None
        self.unread = {s for s in SECTIONS if s in self.r.misspelt and s not in fields}
        database = self.r.optional(fields, "database", self.database, self.database_default())
        listen = self.r.optional(fields, "listen", self.listen, Listen(DEFAULT_HOST, DEFAULT_PORT))
        logging = self.r.optional(fields, "logging", self.logging, Logging())
        delivery = self.r.optional(fields, "delivery", self.delivery, Delivery())
        admin = self.r.optional(fields, "admin", self.admin, None)
        if fields.get("classification") is not None and fields["classification"].value is not None:
            self.classification = read_classification(self.r, fields["classification"])
            if self.classification is None:
                self.unread.add("classification")
        audit = self.r.optional(fields, "audit", lambda n: read_audit(self.r, n), None)
        retention = self.r.optional(
            fields, "retention", lambda n: read_retention(self.r, n, delivery), Retention()
        )
        networks_node = self.r.required(root, fields, "networks")
        networks = (
            self.networks(networks_node, listen or Listen(DEFAULT_HOST, DEFAULT_PORT))
            if networks_node
            else {}
        )
        if networks_node is None:
            self.unread.add("networks")
        person_ids: dict[str, int] = {}
        no_people: tuple[Person, ...] = ()
        no_links: tuple[Link, ...] = ()
        people = self.r.optional(
            fields, "people", lambda n: self.people(n, networks, person_ids), no_people
        )
        links = self.r.optional(
            fields, "links", lambda n: self.links(n, networks, person_ids), no_links
        )
        valid_networks = {name: net for name, net in networks.items() if net is not None}
        if (
            database is None
            or listen is None
            or logging is None
            or delivery is None
            or retention is None
            or people is None
            or links is None
            or len(valid_networks) != len(networks)
        ):
            return None
        return Config(
            path=self.path.absolute(),
            database=database,
            listen=listen,
            logging=logging,
            delivery=delivery,
            networks=valid_networks,
            people=people,
            links=links,
            admin=admin,
            federation_lists=self.federation_lists,
            policy=Policy(self.network_policies, self.link_policies, self.classification),
            audit=audit,
            retention=retention,
            warnings=tuple(self.r.warnings),
        )

    # -- top-level sections ------------------------------------------------------------------

    def database_default(self) -> str:
        return self.normalize_sqlite(DEFAULT_DATABASE)

    def database(self, node: Node) -> str | None:
        value = self.r.secret(node)
        if value is None:
            return None
        if value.startswith("sqlite:") and len(value) > len("sqlite:"):
            return self.normalize_sqlite(value)
        if value.startswith(("postgres://", "postgresql://")):
            return value
        self.r.error(node, "must be sqlite:PATH or postgres://user:password@host:port/dbname")
        return None

    def normalize_sqlite(self, value: str) -> str:
        """Relative SQLite paths are relative to the config file, not the working directory."""
        if value.startswith("sqlite:///"):
            return value
        file = Path(value.removeprefix("sqlite:")).expanduser()
        return f"sqlite:{self.r.base_dir / file}"

    def listen(self, node: Node) -> Listen | None:
        fields = self.r.fields(node, ("host", "port"))
        if fields is None:
            return None
        host = self.r.optional(fields, "host", self.r.nonempty, DEFAULT_HOST)
        port = self.r.optional(fields, "port", lambda n: self.r.integer(n, 1, 65535), DEFAULT_PORT)
        return Listen(host, port) if host is not None and port is not None else None

    def logging(self, node: Node) -> Logging | None:
        fields = self.r.fields(node, ("level", "file", "format"))
        if fields is None:
            return None
        before = len(self.r.problems)
        level = self.r.optional(fields, "level", self.log_level, Logging.level)
        file = self.r.optional(fields, "file", self.log_file, None)
        choices = [f.value for f in LogFormat]
        form = self.r.optional(fields, "format", lambda n: self.r.choice(n, choices), "text")
        if level is None or form is None or len(self.r.problems) != before:
            return None
        return Logging(level, file, LogFormat(form))

    def log_level(self, node: Node) -> str | None:
        if isinstance(node.value, str):
            node = Node(node.value.upper(), node.path, node.line, node.col)
        return self.r.choice(node, LOG_LEVELS)

    def log_file(self, node: Node) -> Path | None:
        """A log file path; a relative one is relative to the config file, like the others."""
        value = self.r.nonempty(node)
        return None if value is None else self.r.base_dir / Path(value).expanduser()

    def delivery(self, node: Node) -> Delivery | None:
        fields = self.r.fields(
            node, ("max_attempts", "initial_backoff", "max_backoff", "give_up_after")
        )
        if fields is None:
            return None
        default = Delivery()
        lifetime = self.r.optional(fields, "give_up_after", self.r.duration, default.give_up_after)
        attempts = self.r.optional(
            fields, "max_attempts", lambda n: self.r.integer(n, 1), default.max_attempts
        )
        initial = self.r.optional(
            fields, "initial_backoff", self.r.positive_number, default.initial_backoff
        )
        maximum = self.r.optional(
            fields, "max_backoff", self.r.positive_number, default.max_backoff
        )
        if attempts is None or initial is None or maximum is None or lifetime is None:
            return None
        if initial > maximum:
            self.r.error(
                fields.get("max_backoff", node),
                "must not be less than initial_backoff",
                node.key_path("max_backoff"),
            )
            return None
        return Delivery(attempts, initial, maximum, lifetime)

    def admin(self, node: Node) -> Admin | None:
        token_node = self.r.sole(node, "token")
        if token_node is None:
            return None
        token = self.r.secret(token_node)
        if token is None:
            return None
        if len(token.strip()) < MIN_ADMIN_TOKEN:
            # The value is not repeated: it is a secret, however short.
            self.r.error(token_node, f"must be at least {MIN_ADMIN_TOKEN} characters long "
                         "(e.g. the output of: openssl rand -hex 32)")  # fmt: skip
            return None
        return Admin(token.strip())

    # -- networks ----------------------------------------------------------------------------

    def networks(self, node: Node, listen: Listen) -> dict[str, Network | None]:
        """Every network by name; None for a broken one, so references to it stay quiet."""
        entries = self.r.entries(node)
        if entries is None:
            self.unread.add("networks")
            return {}
        if not entries:
            self.r.error(node, "define at least one network")
        result: dict[str, Network | None] = {}
        for key, value in entries:
            if not NAME_RE.fullmatch(key.value):
                self.r.error(
                    key,
                    f"{quote(key.value)} is not a valid network name "
                    "(lower-case letters, digits, '_' and '-')",
                )
            result[key.value] = self.network(key.value, value, listen)
        self.puppet_prefixes(entries)
        return result

    def puppet_prefixes(self, entries: list[tuple[Node, Node]]) -> None:
        """People of other networks get addresses ``<network>_<ID>`` (an XMPP puppet, say): with
        networks ``bund`` and ``bund_2``, ``bund``'s user ``2_x`` and ``bund_2``'s user ``x``
        would share one."""
        names = [key.value for key, _ in entries]
        for key, _ in entries:
            shorter = next((n for n in names if key.value.startswith(f"{n}_")), None)
            if shorter is not None:
                self.r.error(
                    key,
                    f"network name {quote(key.value)} starts with the network name "
                    f"{quote(shorter)} and '_': addresses of their people on other networks "
                    "could be the same (use '-' instead of '_')",
                )

    def network(self, name: str, node: Node, listen: Listen) -> Network | None:
        """A network entry: ``kind`` picks the schema that checks the rest of its keys; every
        kind may take its domains from a ``federation_list``."""
        if not isinstance(node.value, Mapping):
            self.r.fields(node, ())
            return None
        kind_node = next((v for k, v in (self.r.entries(node) or []) if k.value == "kind"), None)
        known = registry.kinds()
        kind = registry.default_kind() if kind_node is None else self.r.choice(kind_node, known)
        if kind is None:
            return None
        schema = self.kind(kind)
        fields = self.r.fields(node, ("kind", FEDERATION_LIST, POLICY, *schema.keys))
        if fields is None:
            return None
        network = schema.network(name, node, fields, listen)
        if not self.policy(fields, name, self.network_policies, DEFAULT):
            return None
        listed = fields.get(FEDERATION_LIST)
        if listed is None or listed.value is None:
            return network
        source = read_federation_list(self.r, listed)
        if source is None:
            return None
        self.federation_lists[name] = source
        return network

    def kind(self, kind: str) -> KindSchema:
        """The schema of a network kind, made once (every account and room asks for it)."""
        schema = self._kinds.get(kind)
        if schema is None:
            schema = self._kinds[kind] = registry.kinds()[kind].schema(self.r, self.path)
        return schema

    # -- people and links --------------------------------------------------------------------

    def people(
        self, node: Node, networks: Mapping[str, Network | None], seen_ids: dict[str, int]
    ) -> tuple[Person, ...] | None:
        """The people; `seen_ids` collects every well-formed id, even of broken entries."""
        items = self.r.drain(node)
        if items is None:
            self.unread.add("people")
            return None
        section = Section(networks, seen_ids)
        return every_one([self.plain_person(item, section) or self.person(item, section)
                          for item in items])  # fmt: skip

    def plain_person(self, node: Node, section: Section) -> Person | None:
        """A person entry that is right as it stands, read without making a `Node` of every
        field: the bulk of a large config (`person` took most of its load time). None for
        anything else, which `person` then reads and reports on; what this sets in ``owners``
        is then the same person's, so it raises no false duplicate."""
        networks, seen_ids, owners = section.networks, section.seen_ids, section.taken
        raw = node.value
        if type(raw) is not dict or not raw.keys() <= PERSON_KEYS:
            return None
        person_id, name = raw.get("id"), raw.get("name")
        org, accounts = raw.get("org"), raw.get("accounts")
        if (
            type(person_id) is not str
            or person_id in seen_ids
            or not ID_RE.fullmatch(person_id)
            or type(name) is not str
            or not name.strip()
            or (org is not None and (type(org) is not str or not org.strip()))
            or type(accounts) is not dict
            or not accounts
        ):
            return None
        readers = section.readers
        result: dict[str, str] = {}
        for network_name, value in accounts.items():
            read = readers.get(network_name) if type(network_name) is str else None
            if read is None:
                network = networks.get(network_name) if type(network_name) is str else None
                if network is None:
                    return None
                formats = registry.kinds()[network.kind].account_format
                read = readers[network_name] = account_reader(formats, network)
            account = read(value) if type(value) is str else None
            if account is None:
                return None
            if owners.setdefault(network_name, {}).setdefault(account, person_id) != person_id:
                return None
            result[network_name] = account
        seen_ids[person_id] = node.line
        return Person(person_id, name, org, result)

    def person(self, node: Node, section: Section) -> Person | None:
        r = self.r
        fields = r.fields(node, ("id", "name", "org", "accounts"))
        if fields is None:
            return None
        person_id = self.unique_id(node, fields, section.seen_ids, "person")
        name_node = r.required(node, fields, "name")
        name = r.nonempty(name_node) if name_node else None
        org = r.optional(fields, "org", r.nonempty, None)
        accounts_node = r.required(node, fields, "accounts")
        accounts = (
            self.accounts(accounts_node, section, person_id or "?") if accounts_node else None
        )
        if person_id is None or name is None or accounts is None:
            return None
        return Person(person_id, name, org, accounts)

    def unique_id(
        self, node: Node, fields: dict[str, Node], seen: dict[str, int], what: str
    ) -> str | None:
        """The ``id`` field, which must be well-formed and not used by an earlier entry."""
        id_node = self.r.required(node, fields, "id")
        if id_node is None:
            return None
        value = self.r.matching(id_node, ID_RE, "a valid id (letters, digits, '_', '.', '-')")
        if value is None:
            return None
        if value in seen:
            self.r.error(
                id_node,
                f"duplicate {what} id {value!r} (first defined at line {seen[value] + 1})",
            )
            return None
        seen[value] = id_node.line
        return value

    def network_key(self, key: Node, networks: Mapping[str, Network | None]) -> bool:
        """Whether the network a key names is defined; an undefined one is reported at the key
        (unless the networks could not be read at all: that is reported once, already)."""
        if key.value in networks:
            return True
        if "networks" in self.unread:
            return False
        defined = ", ".join(networks) or "none"
        hint = did_you_mean(key.value, networks)
        self.r.error(key, f"unknown network {key.value!r}{hint}; defined networks: {defined}")
        return False

    def accounts(self, node: Node, section: Section, person_id: str) -> dict[str, str] | None:
        entries = self.r.entries(node)
        if entries is None:
            return None
        if not entries:
            self.r.error(node, "list at least one account")
            return None
        return self.per_network(
            entries,
            section,
            person_id,
            self.account,
            lambda account: account,
            "listed for person",
            partial(self.foreign_account, networks=section.networks),
        )

    def account(self, _: str, node: Node, network: Network) -> str | None:
        return self.r.account(node, registry.kinds()[network.kind].account_format)

    def per_network(
        self,
        entries: list[tuple[Node, Node]],
        section: Section,
        owner: str,
        read: Callable[[str, Node, Network], T | None],
        claimed: Callable[[T], str | None],
        taken_by: str,
        accepted: Callable[[Node, T, Network], None] | None = None,
    ) -> dict[str, T] | None:
        """A person's accounts or a link's rooms, by network: each network defined, its
        value as `read` makes it, and what `claimed` names (an account, a room) not taken by
        an earlier entry (else "… is already `taken_by` …"). `accepted` sees each value
        taken."""
        result: dict[str, T] = {}
        ok = True
        for key, value in entries:
            known = self.network_key(key, section.networks)
            network = section.networks.get(key.value)
            item = read(key.value, value, network) if network else None
            if not known or item is None:
                ok = False
                continue
            name = claimed(item)
            if name is not None:
                taker = section.taken.setdefault(key.value, {}).setdefault(name, owner)
                if taker != owner:
                    self.r.error(value, f"{quote(name)} is already {taken_by} {taker!r}")
                    ok = False
                    continue
            assert network is not None
            if accepted is not None:
                accepted(value, item, network)
            result[key.value] = item
        return result if ok else None

    def foreign_account(
        self, node: Node, account: str, network: Network, networks: Mapping[str, Network | None]
    ) -> None:
        """Warn of an account that is not on its network's servers (a user of a federated
        server, or more often an account listed under the wrong network)."""
        formats = registry.kinds()[network.kind].account_format
        if not foreign(formats, network, account):
            return
        assert formats.home_domains is not None
        domain = formats.domain(account)
        home = " or ".join(formats.home_domains(network))
        owner = next(
            (
                other.name
                for other in networks.values()
                if other is not None
                and other.kind == network.kind
                and other is not network
                and domain in formats.home_domains(other)
            ),
            None,
        )
        hint = (
            f"; it is an account of network {owner!r}: list it there"
            if owner
            else "; right for a user of a federated server, else a typo"
        )
        self.r.warn(node, f"{quote(account)} is on {domain}, not on {home}{hint}")

    def links(
        self, node: Node, networks: Mapping[str, Network | None], person_ids: Collection[str]
    ) -> tuple[Link, ...] | None:
        items = self.r.drain(node)
        if items is None:
            return None
        section = Section(networks, {}, person_ids)
        return every_one([self.plain_link(item, section) or self.link(item, section)
                          for item in items])  # fmt: skip

    def plain_link(self, node: Node, section: Section) -> Link | None:
        """A link entry that is right as it stands, its id and people read without a `Node`
        each (as `plain_person` does for people; its rooms are read by their kinds as always).
        None for anything else, which `link` then reads and reports on; the rooms this
        records in ``rooms_used`` are then the same link's, so they raise no false conflict."""
        networks, person_ids, seen_ids = section.networks, section.person_ids, section.seen_ids
        used = section.taken
        raw = node.value
        if type(raw) is not dict or not raw.keys() <= LINK_KEYS:
            return None
        link_id, people, rooms = raw.get("id"), raw.get("people", []), raw.get("rooms")
        if (
            type(link_id) is not str
            or link_id in seen_ids
            or not ID_RE.fullmatch(link_id)
            or type(people) is not list
            or any(type(person) is not str or person not in person_ids for person in people)
            or type(rooms) is not dict
            or len(rooms) < 2
        ):
            return None
        result: dict[str, LinkRoom] = {}
        for network_name, value in rooms.items():
            network = networks.get(network_name) if type(network_name) is str else None
            if network is None:
                return None
            where = Node(value, f"{node.path}.rooms.{network_name}", node.line, 0)
            room = self.kind(network.kind).room(network_name, where)
            if room is None:
                return None
            if room.room is not None:
                if used.setdefault(network_name, {}).setdefault(room.room, link_id) != link_id:
                    return None
            result[network_name] = room
        seen_ids[link_id] = node.line
        return Link(link_id, result, tuple(people))

    def link(self, node: Node, section: Section) -> Link | None:
        r = self.r
        fields = r.fields(node, ("id", "people", "mirror_members", "rooms", POLICY))
        if fields is None:
            return None
        link_id = self.unique_id(node, fields, section.seen_ids, "link")
        people = r.optional(
            fields, "people", lambda n: self.link_people(n, section.person_ids), NO_STRINGS
        )
        before = len(r.problems)
        mirror = r.optional(fields, "mirror_members", r.boolean, None)
        rooms_node = r.required(node, fields, "rooms")
        rooms = self.link_rooms(rooms_node, section, link_id or "?") if rooms_node else None
        if link_id is None or people is None or rooms is None or len(r.problems) > before:
            return None
        if fields.get(POLICY) is not None and not self.link_policy(fields[POLICY], link_id, rooms):
            return None
        return Link(link_id, rooms, people, mirror)

    def policy(
        self, fields: Mapping[str, Node], name: str, into: dict[str, RoomPolicy], base: RoomPolicy
    ) -> bool:
        """Read a ``policy`` key, if given, over ``base`` into ``into[name]``; False when it
        is wrong (reported)."""
        node = fields.get(POLICY)
        if node is None or node.value is None:
            return True
        if "classification" in self.unread:
            return False
        policy = read_policy(self.r, node, self.classification, base)
        if policy is None:
            return False
        into[name] = policy
        return True

    def link_policy(self, node: Node, link_id: str, rooms: Mapping[str, LinkRoom]) -> bool:
        """A link's ``policy``: per network of the link, what its room there does otherwise
        than the network's defaults."""
        entries = self.r.entries(node)
        if entries is None:
            return False
        own: dict[str, RoomPolicy] = {}
        ok = True
        for key, value in entries:
            if key.value not in rooms:
                self.r.error(key, f"the link has no room on {quote(key.value)}; its rooms are on: "
                             f"{', '.join(rooms)}")  # fmt: skip
                ok = False
                continue
            base = self.network_policies.get(key.value, DEFAULT)
            ok = self.policy({POLICY: value}, key.value, own, base) and ok
        if ok and own:
            self.link_policies[link_id] = own
        return ok

    def link_people(self, node: Node, person_ids: Collection[str]) -> tuple[str, ...] | None:
        items = self.r.items(node)
        if items is None:
            return None
        result = []
        ok = True
        for item in items:
            person = self.r.string(item)
            if person is not None and person not in person_ids:
                if "people" not in self.unread:
                    hint = did_you_mean(person, person_ids)
                    self.r.error(item, f"unknown person {person!r}{hint}")
                person = None
            ok = ok and person is not None
            result.append(person)
        return tuple(p for p in result if p is not None) if ok else None

    def link_rooms(self, node: Node, section: Section, link_id: str) -> dict[str, LinkRoom] | None:
        entries = self.r.entries(node)
        if entries is None:
            return None
        rooms = self.per_network(
            entries,
            section,
            link_id,
            lambda name, value, network: self.kind(network.kind).room(name, value),
            lambda room: room.room,
            "used by link",
        )
        if len(entries) < 2:
            self.r.error(node, "a link needs rooms on at least two networks")
            return None
        return rooms
