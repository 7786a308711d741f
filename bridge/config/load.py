"""Loading and validating the admin's YAML into a `Config`.

The file is read with ruamel's round-trip loader so every node knows its line and column. The
checks walk the whole document and collect *every* problem, each pointing at the exact place in
the file (``FILE:LINE:COL: key.path: message``), so an admin fixes a config in one pass instead
of one error per restart. A `Config` is only built when nothing was wrong.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import string
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bridge.config.model import (
    AppserviceSettings,
    Config,
    Delivery,
    Flavour,
    Link,
    LinkRoom,
    Listen,
    MatrixMode,
    MatrixNetwork,
    Network,
    Person,
    RelaySettings,
    RoomCreate,
)
from bridge.config.secrets import SecretError, from_env, from_file

T = TypeVar("T")

DEFAULT_DATABASE = "sqlite:passerelle.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 29340
DEFAULT_RELAY_FORMAT = "**{name}**: {message}"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
NETWORK_KINDS = ("matrix",)
NO_STRINGS: tuple[str, ...] = ()

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
LOCALPART_RE = re.compile(r"[a-z0-9._=/-]+")
SERVER_NAME_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
USER_ID_RE = re.compile(r"@[^\s:]+:" + SERVER_NAME_RE.pattern)
ROOM_ID_RE = re.compile(r"![^\s]+")
ALIAS_RE = re.compile(r"#[^\s:]+:" + SERVER_NAME_RE.pattern)


def _generate_hint(file: Path, what: str) -> str:
    return f"run 'passerelle generate-registration -c {file}' to {what}"


class ConfigError(Exception):
    """The configuration cannot be used; `errors` lists every problem, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config, located in the file (0-based, as ruamel counts)."""

    line: int | None
    col: int | None
    path: str
    message: str

    def render(self, file: str) -> str:
        where = file if self.line is None else f"{file}:{self.line + 1}:{(self.col or 0) + 1}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True)
class Node:
    """A YAML value with its dotted key path and its position, for located error messages."""

    value: Any
    path: str
    line: int
    col: int

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


def _describe(value: object) -> str:
    """The YAML type name of `value`, for "expected X, got Y" messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Reader:
    """Typed accessors over located nodes that record a `Problem` instead of raising.

    Each accessor returns None when the value is unusable, so the schema functions keep going
    and later sections are still checked.
    """

    def __init__(self, base_dir: Path, env: Mapping[str, str]) -> None:
        self.base_dir = base_dir
        self.env = env
        self.problems: list[Problem] = []

    def error(self, node: Node, message: str, path: str | None = None) -> None:
        self.problems.append(
            Problem(node.line, node.col, node.path if path is None else path, message)
        )

    # -- structure ---------------------------------------------------------------------------

    def entries(self, node: Node) -> list[tuple[Node, Node]] | None:
        """(key, value) nodes of a mapping whose keys are admin-chosen names."""
        if not isinstance(node.value, CommentedMap):
            self.error(node, f"expected a mapping, got {_describe(node.value)}")
            return None
        result = []
        for key, value in node.value.items():
            key_pos = _position(node, node.value.lc.key, key)
            if not isinstance(key, str):
                self.error(Node(key, node.path, *key_pos), f"keys must be strings, got {key!r}")
                continue
            pos = key_pos if value is None else _position(node, node.value.lc.value, key)
            result.append(
                (Node(key, node.key_path(key), *key_pos), Node(value, node.key_path(key), *pos))
            )
        return result

    def fields(self, node: Node, allowed: Collection[str]) -> dict[str, Node] | None:
        """Value nodes of a mapping with a fixed set of keys; unknown keys are errors."""
        entries = self.entries(node)
        if entries is None:
            return None
        result = {}
        for key, value in entries:
            if key.value in allowed:
                result[key.value] = value
            else:
                hint = _did_you_mean(key.value, allowed)
                self.error(key, f"unknown key {key.value!r}{hint}")
        return result

    def items(self, node: Node) -> list[Node] | None:
        if not isinstance(node.value, CommentedSeq):
            self.error(node, f"expected a list, got {_describe(node.value)}")
            return None
        return [
            Node(item, f"{node.path}[{i}]", *_position(node, node.value.lc.item, i))
            for i, item in enumerate(node.value)
        ]

    def required(self, parent: Node, fields: Mapping[str, Node], key: str) -> Node | None:
        """The field `key`, or None after reporting it missing at the parent mapping."""
        if key in fields and fields[key].value is not None:
            return fields[key]
        self.error(parent, "is required", parent.key_path(key))
        return None

    def optional(
        self, fields: Mapping[str, Node], key: str, read: Callable[[Node], T | None], default: T
    ) -> T | None:
        """`read` applied to field `key`, or `default` when it is absent or null."""
        node = fields.get(key)
        if node is None or node.value is None:
            return default
        return read(node)

    # -- scalars -----------------------------------------------------------------------------

    def string(self, node: Node) -> str | None:
        if isinstance(node.value, str):
            return str(node.value)
        self.error(node, f"expected a string, got {_describe(node.value)}")
        return None

    def nonempty(self, node: Node) -> str | None:
        value = self.string(node)
        if value is not None and not value.strip():
            self.error(node, "must not be empty")
            return None
        return value

    def matching(self, node: Node, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.string(node)
        if value is not None and not pattern.fullmatch(value):
            self.error(node, f"{_quote(value)} is not {what}")
            return None
        return value

    def integer(self, node: Node, minimum: int, maximum: int | None = None) -> int | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, f"expected an integer, got {_describe(value)}")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            self.error(node, f"must be at least {minimum}{upper}")
            return None
        return int(value)

    def positive_number(self, node: Node) -> float | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(node, f"expected a number, got {_describe(value)}")
            return None
        if value <= 0:
            self.error(node, "must be a positive number")
            return None
        return float(value)

    def choice(self, node: Node, choices: Collection[str]) -> str | None:
        value = self.string(node)
        if value is not None and value not in choices:
            self.error(node, f"must be one of: {', '.join(choices)}")
            return None
        return value

    def string_list(self, node: Node) -> tuple[str, ...] | None:
        items = self.items(node)
        if items is None:
            return None
        values = [self.nonempty(item) for item in items]
        return tuple(v for v in values if v is not None)

    def url(self, node: Node) -> str | None:
        value = self.string(node)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.error(node, f"{_quote(value)} is not an http(s) URL")
            return None
        return value.rstrip("/")

    def secret(self, node: Node) -> str | None:
        """A plain string, ``{env: NAME}`` or ``{file: PATH}``; the value is never echoed."""
        if isinstance(node.value, str):
            return str(node.value)
        if not isinstance(node.value, CommentedMap):
            self.error(
                node,
                f"expected a string, {{env: NAME}} or {{file: PATH}}, got {_describe(node.value)}",
            )
            return None
        fields = self.fields(node, ("env", "file"))
        if fields is None:
            return None
        if len(fields) != 1:
            self.error(node, "give exactly one of 'env' or 'file'")
            return None
        ((source, ref_node),) = fields.items()
        ref = self.nonempty(ref_node)
        if ref is None:
            return None
        try:
            return from_env(ref, self.env) if source == "env" else from_file(ref, self.base_dir)
        except SecretError as exc:
            self.error(ref_node, str(exc))
            return None


def _position(parent: Node, lookup: Callable[[Any], Any], key: object) -> tuple[int, int]:
    """Where `key` of `parent` sits; nodes added in memory (no position) fall back to the parent."""
    try:
        line, col = lookup(key)
    except (KeyError, IndexError, TypeError):
        return parent.line, parent.col
    return int(line), int(col)


# -- document ------------------------------------------------------------------------------------


def round_trip_yaml() -> YAML:
    """The YAML instance used to read (and, for tokens, rewrite) the config file."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def read_document(path: Path) -> tuple[Any, str, list[Problem]]:
    """The round-trip document and the raw text of `path`, or the problems reading it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, "", [Problem(None, None, "", f"cannot read config file: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, "", [Problem(None, None, "", "config file is not UTF-8 text")]
    try:
        doc = round_trip_yaml().load(text)
    except MarkedYAMLError as exc:
        return None, text, [_syntax_problem(exc)]
    except YAMLError as exc:
        return None, text, [Problem(None, None, "", f"YAML error: {exc}")]
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


def check_config(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Config | None, list[str]]:
    """Load and validate `path`: the Config, or None and every error as a located line."""
    path = Path(path)
    doc, _, problems = read_document(path)
    config = None
    if not problems:
        config, problems = validate(doc, path, os.environ if env is None else env)
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
    """Check a loaded round-trip document; the Config is built only when there is no problem."""
    if doc is None:
        return None, [Problem(0, 0, "", "config file is empty")]
    root = Node(doc, "", getattr(getattr(doc, "lc", None), "line", 0) or 0, 0)
    reader = Reader(path.absolute().parent, env)
    config = _Schema(reader, path).config(root)
    if reader.problems:
        return None, reader.problems
    return config, []


# -- schema --------------------------------------------------------------------------------------


class _Schema:
    """The config's structure, one method per section; problems go to the `Reader`."""

    def __init__(self, reader: Reader, path: Path) -> None:
        self.r = reader
        self.path = path

    def config(self, root: Node) -> Config | None:
        fields = self.r.fields(
            root, ("database", "listen", "logging", "delivery", "networks", "people", "links")
        )
        if fields is None:
            return None
        database = self.r.optional(fields, "database", self.database, self.database_default())
        listen = self.r.optional(fields, "listen", self.listen, Listen(DEFAULT_HOST, DEFAULT_PORT))
        log_level = self.r.optional(fields, "logging", self.logging, "INFO")
        delivery = self.r.optional(fields, "delivery", self.delivery, Delivery())
        networks_node = self.r.required(root, fields, "networks")
        networks = (
            self.networks(networks_node, listen or Listen(DEFAULT_HOST, DEFAULT_PORT))
            if networks_node
            else {}
        )
        person_ids: dict[str, Node] = {}
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
            or log_level is None
            or delivery is None
            or people is None
            or links is None
            or len(valid_networks) != len(networks)
        ):
            return None
        return Config(
            path=self.path.absolute(),
            database=database,
            listen=listen,
            log_level=log_level,
            delivery=delivery,
            networks=valid_networks,
            people=people,
            links=links,
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

    def logging(self, node: Node) -> str | None:
        fields = self.r.fields(node, ("level",))
        if fields is None:
            return None
        level_node = fields.get("level")
        if level_node is None or level_node.value is None:
            return "INFO"
        if isinstance(level_node.value, str):
            level_node = Node(
                level_node.value.upper(), level_node.path, level_node.line, level_node.col
            )
        return self.r.choice(level_node, LOG_LEVELS)

    def delivery(self, node: Node) -> Delivery | None:
        fields = self.r.fields(node, ("max_attempts", "initial_backoff", "max_backoff"))
        if fields is None:
            return None
        default = Delivery()
        attempts = self.r.optional(
            fields, "max_attempts", lambda n: self.r.integer(n, 1), default.max_attempts
        )
        initial = self.r.optional(
            fields, "initial_backoff", self.r.positive_number, default.initial_backoff
        )
        maximum = self.r.optional(
            fields, "max_backoff", self.r.positive_number, default.max_backoff
        )
        if attempts is None or initial is None or maximum is None:
            return None
        if initial > maximum:
            self.r.error(
                fields.get("max_backoff", node),
                "must not be less than initial_backoff",
                node.key_path("max_backoff"),
            )
            return None
        return Delivery(attempts, initial, maximum)

    # -- networks ----------------------------------------------------------------------------

    def networks(self, node: Node, listen: Listen) -> dict[str, Network | None]:
        """Every network by name; None for a broken one, so references to it stay quiet."""
        entries = self.r.entries(node)
        if entries is None:
            return {}
        if not entries:
            self.r.error(node, "define at least one network")
        result: dict[str, Network | None] = {}
        for key, value in entries:
            if not NAME_RE.fullmatch(key.value):
                self.r.error(
                    key,
                    f"{_quote(key.value)} is not a valid network name "
                    "(lower-case letters, digits, '_' and '-')",
                )
            result[key.value] = self.network(key.value, value, listen)
        return result

    def network(self, name: str, node: Node, listen: Listen) -> Network | None:
        fields = self.r.fields(
            node,
            (
                "kind",
                "flavour",
                "homeserver",
                "server_name",
                "mode",
                "org_label",
                "name_suffix",
                "allowed_domains",
                "restricted_rooms_allow",
                "appservice",
                "relay",
            ),
        )
        if fields is None:
            return None
        kind = self.r.optional(fields, "kind", lambda n: self.r.choice(n, NETWORK_KINDS), "matrix")
        if kind is None:
            return None
        return self.matrix_network(name, node, fields, listen)

    def matrix_network(
        self, name: str, node: Node, fields: dict[str, Node], listen: Listen
    ) -> MatrixNetwork | None:
        r = self.r
        flavour = r.optional(fields, "flavour", lambda n: r.choice(n, list(Flavour)), "matrix")
        homeserver_node = r.required(node, fields, "homeserver")
        homeserver = r.url(homeserver_node) if homeserver_node else None
        server_node = r.required(node, fields, "server_name")
        server_name = (
            r.matching(server_node, SERVER_NAME_RE, "a server name (host or host:port)")
            if server_node
            else None
        )
        mode = r.optional(fields, "mode", lambda n: r.choice(n, list(MatrixMode)), "appservice")
        org_label = r.optional(fields, "org_label", r.nonempty, None)
        name_suffix = r.optional(fields, "name_suffix", r.string, "")
        allowed = r.optional(fields, "allowed_domains", r.string_list, NO_STRINGS)
        restricted = self.restricted_rooms_allow(fields, flavour)
        appservice, relay = self.mode_settings(name, node, fields, mode, listen)
        if (
            flavour is None
            or homeserver is None
            or server_name is None
            or mode is None
            or name_suffix is None
            or allowed is None
            or restricted is None
            or (appservice is None and relay is None)
        ):
            return None
        return MatrixNetwork(
            name=name,
            flavour=Flavour(flavour),
            homeserver=homeserver,
            server_name=server_name,
            mode=MatrixMode(mode),
            appservice=appservice,
            relay=relay,
            org_label=org_label,
            name_suffix=name_suffix,
            allowed_domains=allowed,
            restricted_rooms_allow=restricted,
        )

    def restricted_rooms_allow(
        self, fields: dict[str, Node], flavour: str | None
    ) -> tuple[str, ...] | None:
        node = fields.get("restricted_rooms_allow")
        if node is None or node.value is None:
            return ()
        if flavour is not None and flavour != Flavour.TCHAP:
            self.r.error(node, "only allowed when flavour is tchap")
            return None
        return self.r.string_list(node)

    def mode_settings(
        self, name: str, node: Node, fields: dict[str, Node], mode: str | None, listen: Listen
    ) -> tuple[AppserviceSettings | None, RelaySettings | None]:
        """The settings block matching `mode`; the other block must be absent."""
        for key in ("appservice", "relay"):
            if key in fields and mode is not None and mode != key:
                self.r.error(fields[key], f"only allowed when mode is {key}")
        if mode == MatrixMode.APPSERVICE:
            as_node = fields.get("appservice")
            if as_node is None or as_node.value is None:
                hint = _generate_hint(self.path, "create it with fresh tokens")
                self.r.error(
                    node,
                    f"is required when mode is appservice; {hint}",
                    node.key_path("appservice"),
                )
                return None, None
            return self.appservice(name, as_node, listen), None
        if mode == MatrixMode.RELAY:
            relay_node = self.r.required(node, fields, "relay")
            return None, self.relay(relay_node) if relay_node else None
        return None, None

    def appservice(self, network: str, node: Node, listen: Listen) -> AppserviceSettings | None:
        r = self.r
        fields = r.fields(node, ("id", "bot", "ghost_prefix", "url", "as_token", "hs_token"))
        if fields is None:
            return None
        localpart = "a Matrix localpart (a-z, 0-9, ._=/-)"
        as_id = r.optional(fields, "id", r.nonempty, f"passerelle-{network}")
        bot = r.optional(
            fields, "bot", lambda n: r.matching(n, LOCALPART_RE, localpart), "passerelle"
        )
        prefix = r.optional(
            fields, "ghost_prefix", lambda n: r.matching(n, LOCALPART_RE, localpart), "passerelle_"
        )
        host = f"[{listen.host}]" if ":" in listen.host else listen.host
        url = r.optional(fields, "url", r.url, f"http://{host}:{listen.port}/as/{network}")
        as_token = self.token(node, fields, "as_token")
        hs_token = self.token(node, fields, "hs_token")
        if (
            as_id is None
            or bot is None
            or prefix is None
            or url is None
            or as_token is None
            or hs_token is None
        ):
            return None
        return AppserviceSettings(as_id, as_token, hs_token, bot, prefix, url)

    def token(self, parent: Node, fields: dict[str, Node], key: str) -> str | None:
        node = fields.get(key)
        if node is None or node.value is None or node.value == "":
            hint = _generate_hint(self.path, "generate it")
            self.r.error(node or parent, f"is missing; {hint}", parent.key_path(key))
            return None
        return self.r.secret(node)

    def relay(self, node: Node) -> RelaySettings | None:
        r = self.r
        fields = r.fields(node, ("user_id", "access_token", "password", "device_id", "format"))
        if fields is None:
            return None
        user_node = r.required(node, fields, "user_id")
        user_id = (
            r.matching(user_node, USER_ID_RE, "a Matrix user ID (@user:server)")
            if user_node
            else None
        )
        access_token = r.optional(fields, "access_token", r.secret, None)
        password = r.optional(fields, "password", r.secret, None)
        if all(
            fields.get(k) is None or fields[k].value is None for k in ("access_token", "password")
        ):
            r.error(node, "one of access_token or password is required")
        device_id = r.optional(fields, "device_id", r.nonempty, None)
        fmt = r.optional(fields, "format", self.relay_format, DEFAULT_RELAY_FORMAT)
        if user_id is None or fmt is None or (access_token is None and password is None):
            return None
        return RelaySettings(user_id, access_token, password, device_id, fmt)

    def relay_format(self, node: Node) -> str | None:
        value = self.r.string(node)
        if value is None:
            return None
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
            value.format(name="", message="")
        except (KeyError, IndexError, ValueError, AttributeError):
            self.r.error(node, "may only use the placeholders {name} and {message}")
            return None
        if "message" not in fields:
            self.r.error(node, "must contain {message}")
            return None
        return value

    # -- people and links --------------------------------------------------------------------

    def people(
        self, node: Node, networks: Mapping[str, Network | None], seen_ids: dict[str, Node]
    ) -> tuple[Person, ...] | None:
        """The people; `seen_ids` collects every well-formed id, even of broken entries."""
        items = self.r.items(node)
        if items is None:
            return None
        owners: dict[tuple[str, str], str] = {}
        people = [self.person(item, networks, seen_ids, owners) for item in items]
        if any(p is None for p in people):
            return None
        return tuple(p for p in people if p is not None)

    def person(
        self,
        node: Node,
        networks: Mapping[str, Network | None],
        seen_ids: dict[str, Node],
        owners: dict[tuple[str, str], str],
    ) -> Person | None:
        r = self.r
        fields = r.fields(node, ("id", "name", "org", "accounts"))
        if fields is None:
            return None
        person_id = self.unique_id(node, fields, seen_ids, "person")
        name_node = r.required(node, fields, "name")
        name = r.nonempty(name_node) if name_node else None
        org = r.optional(fields, "org", r.nonempty, None)
        accounts_node = r.required(node, fields, "accounts")
        accounts = (
            self.accounts(accounts_node, networks, owners, person_id or "?")
            if accounts_node
            else None
        )
        if person_id is None or name is None or accounts is None:
            return None
        return Person(person_id, name, org, accounts)

    def unique_id(
        self, node: Node, fields: dict[str, Node], seen: dict[str, Node], what: str
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
                f"duplicate {what} id {value!r} (first defined at line {seen[value].line + 1})",
            )
            return None
        seen[value] = id_node
        return value

    def network_key(self, key: Node, networks: Mapping[str, Network | None]) -> bool:
        """Whether the network a key names is defined; an undefined one is reported at the key."""
        if key.value in networks:
            return True
        defined = ", ".join(networks) or "none"
        hint = _did_you_mean(key.value, networks)
        self.r.error(key, f"unknown network {key.value!r}{hint}; defined networks: {defined}")
        return False

    def accounts(
        self,
        node: Node,
        networks: Mapping[str, Network | None],
        owners: dict[tuple[str, str], str],
        person_id: str,
    ) -> dict[str, str] | None:
        entries = self.r.entries(node)
        if entries is None:
            return None
        if not entries:
            self.r.error(node, "list at least one account")
            return None
        result: dict[str, str] = {}
        ok = True
        for key, value in entries:
            known = self.network_key(key, networks)
            account = self.r.matching(value, USER_ID_RE, "a Matrix user ID (@user:server)")
            if not known or account is None:
                ok = False
                continue
            owner = owners.setdefault((key.value, account), person_id)
            if owner != person_id:
                self.r.error(value, f"{_quote(account)} is already listed for person {owner!r}")
                ok = False
                continue
            result[key.value] = account
        return result if ok else None

    def links(
        self, node: Node, networks: Mapping[str, Network | None], person_ids: Collection[str]
    ) -> tuple[Link, ...] | None:
        items = self.r.items(node)
        if items is None:
            return None
        seen_ids: dict[str, Node] = {}
        rooms_used: dict[tuple[str, str], str] = {}
        links = [self.link(item, networks, person_ids, seen_ids, rooms_used) for item in items]
        if any(link is None for link in links):
            return None
        return tuple(link for link in links if link is not None)

    def link(
        self,
        node: Node,
        networks: Mapping[str, Network | None],
        person_ids: Collection[str],
        seen_ids: dict[str, Node],
        rooms_used: dict[tuple[str, str], str],
    ) -> Link | None:
        r = self.r
        fields = r.fields(node, ("id", "people", "rooms"))
        if fields is None:
            return None
        link_id = self.unique_id(node, fields, seen_ids, "link")
        people = r.optional(fields, "people", lambda n: self.link_people(n, person_ids), NO_STRINGS)
        rooms_node = r.required(node, fields, "rooms")
        rooms = (
            self.link_rooms(rooms_node, networks, rooms_used, link_id or "?")
            if rooms_node
            else None
        )
        if link_id is None or people is None or rooms is None:
            return None
        return Link(link_id, rooms, people)

    def link_people(self, node: Node, person_ids: Collection[str]) -> tuple[str, ...] | None:
        items = self.r.items(node)
        if items is None:
            return None
        result = []
        ok = True
        for item in items:
            person = self.r.string(item)
            if person is not None and person not in person_ids:
                hint = _did_you_mean(person, person_ids)
                self.r.error(item, f"unknown person {person!r}{hint}")
                person = None
            ok = ok and person is not None
            result.append(person)
        return tuple(p for p in result if p is not None) if ok else None

    def link_rooms(
        self,
        node: Node,
        networks: Mapping[str, Network | None],
        rooms_used: dict[tuple[str, str], str],
        link_id: str,
    ) -> dict[str, LinkRoom] | None:
        entries = self.r.entries(node)
        if entries is None:
            return None
        result: dict[str, LinkRoom] = {}
        ok = True
        for key, value in entries:
            known = self.network_key(key, networks)
            room = self.link_room(key.value, value)
            if not known or room is None:
                ok = False
                continue
            if room.room is not None:
                user = rooms_used.setdefault((key.value, room.room), link_id)
                if user != link_id:
                    self.r.error(value, f"{_quote(room.room)} is already used by link {user!r}")
                    ok = False
                    continue
            result[key.value] = room
        if len(entries) < 2:
            self.r.error(node, "a link needs rooms on at least two networks")
            return None
        return result if ok else None

    def link_room(self, network: str, node: Node) -> LinkRoom | None:
        """A room reference: ``"!id"``, ``"#alias"``, ``{room: …}`` or ``{create: {…}}``."""
        if isinstance(node.value, str):
            room = self.room_reference(node)
            return LinkRoom(network, room, None) if room else None
        if not isinstance(node.value, CommentedMap):
            self.r.error(
                node,
                "expected a room ID, an alias, {room: …} or {create: {name: …}}, "
                f"got {_describe(node.value)}",
            )
            return None
        fields = self.r.fields(node, ("room", "create"))
        if fields is None:
            return None
        if len(fields) != 1:
            self.r.error(node, "give exactly one of 'room' or 'create'")
            return None
        if "room" in fields:
            room = self.room_reference(fields["room"])
            return LinkRoom(network, room, None) if room else None
        create = self.room_create(fields["create"])
        return LinkRoom(network, None, create) if create else None

    def room_reference(self, node: Node) -> str | None:
        value = self.r.string(node)
        if value is None:
            return None
        if value.startswith("!"):
            ok, what = bool(ROOM_ID_RE.fullmatch(value)), "a valid room ID (!id:server)"
        elif value.startswith("#"):
            ok, what = bool(ALIAS_RE.fullmatch(value)), "a valid alias (#name:server)"
        else:
            self.r.error(node, f"{_quote(value)} is neither a room ID (!…) nor an alias (#…)")
            return None
        if not ok:
            self.r.error(node, f"{_quote(value)} is not {what}")
            return None
        return value

    def room_create(self, node: Node) -> RoomCreate | None:
        fields = self.r.fields(node, ("name", "topic"))
        if fields is None:
            return None
        name_node = self.r.required(node, fields, "name")
        name = self.r.nonempty(name_node) if name_node else None
        topic = self.r.optional(fields, "topic", self.r.string, None)
        return RoomCreate(name, topic) if name is not None else None
