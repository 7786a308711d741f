"""Located access to the YAML document: every value knows its line, column and key path, and
every accessor records a `Problem` instead of raising, so a whole file is checked in one pass.

Shared by the core schema (`bridge.config.load`) and the per-kind network schemas
(`bridge.config.kinds`).
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import SplitResult, urlsplit

from bridge.config.secrets import SecretError, from_env, from_file
from bridge.notices import LANGUAGES

T = TypeVar("T")

NO_STRINGS: tuple[str, ...] = ()
DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([dhms])")
DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
SERVER_NAME_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config, located in the file (0-based, as ruamel counts)."""

    line: int | None
    col: int | None
    path: str
    message: str
    warning: bool = False
    """Not wrong, but probably not what the admin meant: the config is used all the same."""

    def render(self, file: str) -> str:
        where = file if self.line is None else f"{file}:{self.line + 1}:{(self.col or 0) + 1}"
        if self.warning:
            where = f"{where}: warning"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def domain_after_at(account: str) -> str:
    """The domain of ``user@domain`` (a JID's resource left out)."""
    return account.rpartition("@")[2].split("/", 1)[0]


@dataclass(frozen=True)
class AccountFormat:
    """What an account on a network kind looks like (``people[].accounts.<network>``), how it
    is stored (addresses and JIDs compare case-insensitively, so they are kept lower-case),
    and how the rest of the bridge reads it."""

    pattern: re.Pattern[str]
    what: str
    """How an error names it: "a Matrix user ID (@user:server)"."""
    normalize: Callable[[str], str] = str
    domain: Callable[[str], str] = domain_after_at
    """The domain an account belongs to, for policy (allowed domains, Tchap's restricted
    rooms)."""
    local_form: Callable[[str], str] = str
    """The account as written into another network's addresses (a ghost's localpart, a
    puppet's JID): a Matrix user ID without its ``@``."""
    from_local_form: Callable[[str], str] = str
    """The account again from its `local_form`."""
    home_domains: Callable[[Any], tuple[str, ...]] | None = None
    """The domains a network's own accounts are on (its homeserver, its XMPP domain): an
    account elsewhere gets a warning, since it is more often a mistake than a federated user.
    None: accounts are anywhere (email addresses)."""

    def parse(self, value: str) -> str | None:
        """The account as stored, or None when ``value`` is not one (nothing is reported)."""
        return self.normalize(value) if self.pattern.fullmatch(value) else None


class Node(NamedTuple):
    """A YAML value with its dotted key path and its position, for located error messages.

    A named tuple rather than a dataclass: a large mapping makes millions of them, and a tuple
    is the cheapest immutable object to build."""

    value: Any
    path: str
    line: int
    col: int

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


_new_node = tuple.__new__
"""Builds a `Node` from a tuple without the named tuple's Python-level ``__new__``: the hot
loops of a large config make a million of them."""


class LazyItems:
    """A long list of the fast reader (`bridge.config.fastread`), parsed piece by piece as it
    is iterated, each item dropped once handed out. Only `Reader.drain` reads it; any other
    accessor sees a value of the wrong type and the config goes to the round-trip loader."""

    def __init__(self, pieces: Iterator[list[Any]]) -> None:
        self._pieces = pieces

    def __iter__(self) -> Iterator[Any]:
        for piece in self._pieces:
            yield from _emptying(piece)


def _emptying(items: list[Any]) -> Iterator[Any]:
    """The items of a list, each slot cleared as it is handed out."""
    for i, item in enumerate(items):
        items[i] = None
        yield item


_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int too
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (Mapping, "a mapping"),
    (list, "a list"),
    (AbstractSet, "a set"),
    (bytes, "binary data"),
    (date, "a date"),
)


def every_one(values: list[T | None]) -> tuple[T, ...] | None:
    """All of `values` when each was read right, else None (each problem is recorded)."""
    if any(value is None for value in values):
        return None
    return tuple(value for value in values if value is not None)


def describe(value: object) -> str:
    """The YAML type name of `value`, for "expected X, got Y" messages."""
    if value is None:
        return "nothing (null)"
    return next(
        (name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__
    )


REQUIRED: Any = object()
"""The default of a `Key` that must be given."""


@dataclass(frozen=True)
class Key:
    """One key of a mapping in the config: how its value is read (a `Reader` method, or a
    function of the reader and the node; it records every problem and returns None), its
    default (`REQUIRED` when it must be given), and the field of the result it fills (the
    key's own name unless said)."""

    name: str
    read: Callable[[Reader, Node], Any]
    default: Any = REQUIRED
    field: str = ""


class Block(NamedTuple):
    """A mapping read by `Reader.block`."""

    fields: dict[str, Node]
    values: dict[str, Any]
    """By field; None for a key with a problem."""
    ok: bool
    """Whether every key was right."""


PRESENTATION_KEYS = ("org_label", "name_suffix", "label", "language")
"""The keys of every network kind that say how its people and its notices are shown."""


@dataclass(frozen=True)
class Presentation:
    org_label: str | None
    name_suffix: str
    label: str
    """How notices name the network; by default its ``name_suffix`` without the brackets
    (" (Tchap)" → "Tchap"), else its name."""
    language: str


def quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def close_match(word: str, choices: Collection[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def did_you_mean(word: str, choices: Collection[str]) -> str:
    close = close_match(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


class Reader:
    """Typed accessors over located nodes that record a `Problem` instead of raising.

    Each accessor returns None when the value is unusable, so the schema functions keep going
    and later sections are still checked.
    """

    def __init__(self, base_dir: Path, env: Mapping[str, str]) -> None:
        self.base_dir = base_dir
        self.env = env
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.misspelt: set[str] = set()
        """Key paths an unknown key was taken for ("did you mean 'networks'?"): that they are
        missing, and what refers into them, is not reported again."""

    def error(self, node: Node, message: str, path: str | None = None) -> None:
        self.problems.append(
            Problem(node.line, node.col, node.path if path is None else path, message)
        )

    def warn(self, node: Node, message: str) -> None:
        """Something that works but is probably not what the admin meant."""
        self.warnings.append(Problem(node.line, node.col, node.path, message, warning=True))

    # -- structure ---------------------------------------------------------------------------

    def entries(self, node: Node) -> list[tuple[Node, Node]] | None:
        """(key, value) nodes of a mapping whose keys are admin-chosen names."""
        mapping = node.value
        if not isinstance(mapping, dict):  # a round-trip CommentedMap is a dict too
            self.error(node, f"expected a mapping, got {describe(mapping)}")
            return None
        lc = getattr(mapping, "lc", None)
        result = []
        for key, value in mapping.items():
            key_pos = position(node, lc.key, key) if lc else (node.line, node.col)
            if not isinstance(key, str):
                self.error(Node(key, node.path, *key_pos), f"keys must be strings, got {key!r}")
                continue
            pos = key_pos if value is None or not lc else position(node, lc.value, key)
            path = f"{node.path}.{key}" if node.path else key
            result.append((Node(key, path, *key_pos), Node(value, path, *pos)))
        return result

    def fields(self, node: Node, allowed: Collection[str]) -> dict[str, Node] | None:
        """Value nodes of a mapping with a fixed set of keys; unknown keys are errors."""
        mapping = node.value
        if isinstance(mapping, dict) and not hasattr(mapping, "lc"):
            if all(key in allowed for key in mapping):
                # A plain mapping (no positions) with only known keys: the common case of a
                # large config, built without the key nodes that only an error would need.
                prefix = f"{node.path}." if node.path else ""
                line, col = node.line, node.col
                return {
                    key: _new_node(Node, (value, prefix + key, line, col))
                    for key, value in mapping.items()
                }
        entries = self.entries(node)
        if entries is None:
            return None
        result = {}
        for key, value in entries:
            if key.value in allowed:
                result[key.value] = value
                continue
            meant = close_match(key.value, allowed)
            if meant is None:
                self.error(key, f"unknown key {key.value!r}")
            else:
                self.error(key, f"unknown key {key.value!r} (did you mean {meant!r}?)")
                self.misspelt.add(node.key_path(meant))
        return result

    def items(self, node: Node) -> list[Node] | None:
        sequence = node.value
        if not isinstance(sequence, list):  # a round-trip CommentedSeq is a list too
            self.error(node, f"expected a list, got {describe(sequence)}")
            return None
        lc = getattr(sequence, "lc", None)
        if lc is None:
            path, line, col = node.path, node.line, node.col
            return [_new_node(Node, (item, f"{path}[{i}]", line, col))
                    for i, item in enumerate(sequence)]  # fmt: skip
        return [
            Node(item, f"{node.path}[{i}]", *position(node, lc.item, i))
            for i, item in enumerate(sequence)
        ]

    def drain(self, node: Node) -> Iterator[Node] | None:
        """`items`, one at a time. The fast reader's lists (`LazyItems`, and plain lists: its
        document is read only once) are emptied as they go, so a large section is never held
        in memory both as YAML values and as the config objects made of them."""
        sequence = node.value
        if isinstance(sequence, LazyItems):
            return self._drain_plain(node, sequence)
        if not isinstance(sequence, list) or hasattr(sequence, "lc"):
            items = self.items(node)
            return None if items is None else iter(items)
        return self._drain_plain(node, sequence)

    @staticmethod
    def _drain_plain(node: Node, sequence: list[Any] | LazyItems) -> Iterator[Node]:
        path, line, col = node.path, node.line, node.col
        items = sequence if isinstance(sequence, LazyItems) else _emptying(sequence)
        for i, item in enumerate(items):
            yield _new_node(Node, (item, f"{path}[{i}]", line, col))

    def required(self, parent: Node, fields: Mapping[str, Node], key: str) -> Node | None:
        """The field `key`, or None after reporting it missing at the parent mapping."""
        if key in fields and fields[key].value is not None:
            return fields[key]
        if parent.key_path(key) not in self.misspelt:
            self.error(parent, "is required", parent.key_path(key))
        return None

    def sole(self, node: Node, key: str) -> Node | None:
        """The value of a mapping whose one key, required, is `key`."""
        fields = self.fields(node, (key,))
        return None if fields is None else self.required(node, fields, key)

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
        self.error(node, f"expected a string, got {describe(node.value)}")
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
            self.error(node, f"{quote(value)} is not {what}")
            return None
        return value

    def account(self, node: Node, account_format: AccountFormat) -> str | None:
        value = self.matching(node, account_format.pattern, account_format.what)
        return None if value is None else account_format.normalize(value)

    def boolean(self, node: Node) -> bool | None:
        if isinstance(node.value, bool):
            return node.value
        self.error(node, f"expected true or false, got {describe(node.value)}")
        return None

    def integer(self, node: Node, minimum: int, maximum: int | None = None) -> int | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, f"expected an integer, got {describe(value)}")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            self.error(node, f"must be at least {minimum}{upper}")
            return None
        return int(value)

    def positive_number(self, node: Node) -> float | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(node, f"expected a number, got {describe(value)}")
            return None
        if not math.isfinite(value):
            self.error(node, "must be a finite number")
            return None
        if value <= 0:
            self.error(node, "must be a positive number")
            return None
        return float(value)

    def duration(self, node: Node) -> float | None:
        """Seconds, given as a number of seconds or as text with a unit: ``5d``, ``12h``,
        ``30m``, ``90s``."""
        seconds = self.with_unit(
            node,
            DURATION_RE,
            lambda match: float(match.group(1)) * DURATION_UNITS[match.group(2)],
            "a duration (e.g. 5d, 12h, 30m, 90s)",
        )
        return None if seconds is None else self.positive_number(seconds)

    def with_unit(
        self,
        node: Node,
        pattern: re.Pattern[str],
        amount: Callable[[re.Match[str]], float],
        what: str,
    ) -> Node | None:
        """`node` with text that `pattern` matches (a number and its unit) made the number
        `amount` says; any other value is left for the caller's number check."""
        value = node.value
        if not isinstance(value, str):
            return node
        match = pattern.fullmatch(value.strip())
        if match is None:
            self.error(node, f"{quote(value)} is not {what}")
            return None
        return Node(amount(match), node.path, node.line, node.col)

    def table(
        self, parent: Node, fields: Mapping[str, Node], keys: Iterable[Key]
    ) -> tuple[dict[str, Any], bool]:
        """The values of a mapping's ``keys`` by field, read in order (None for one with a
        problem, every problem recorded and located), and whether all of them were right."""
        before = len(self.problems)
        values = {}
        missing = False
        for key in keys:
            if key.default is REQUIRED:
                node = self.required(parent, fields, key.name)
                missing = missing or node is None  # unreported when a misspelt key meant it
                value = key.read(self, node) if node is not None else None
            else:
                value = self.optional(fields, key.name, functools.partial(key.read, self),
                                      key.default)  # fmt: skip
            values[key.field or key.name] = value
        return values, len(self.problems) == before and not missing

    def block(self, node: Node, keys: tuple[Key, ...]) -> Block | None:
        """A mapping of the given `keys` only, read by `table`; None when it is not a
        mapping."""
        fields = self.fields(node, [key.name for key in keys])
        return None if fields is None else Block(fields, *self.table(node, fields, keys))

    def presentation(
        self, name: str, fields: Mapping[str, Node], default_language: str
    ) -> Presentation | None:
        """A network's `PRESENTATION_KEYS`."""
        org_label = self.optional(fields, "org_label", self.nonempty, None)
        name_suffix = self.optional(fields, "name_suffix", self.string, "")
        default = (name_suffix or "").strip(" ()[]") or name
        label = self.optional(fields, "label", self.nonempty, default)
        language = self.optional(fields, "language", lambda n: self.choice(n, LANGUAGES),
                                 default_language)  # fmt: skip
        if name_suffix is None or label is None or language is None:
            return None
        return Presentation(org_label, name_suffix, label, language)

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

    def each(self, node: Node, read: Callable[[Node], T | None]) -> tuple[T, ...] | None:
        """`read` applied to each item of the list at `node`, up to the first it finds wrong
        (None then)."""
        items = self.items(node)
        if items is None:
            return None
        result = []
        for item in items:
            value = read(item)
            if value is None:
                return None
            result.append(value)
        return tuple(result)

    def parsed_list(self, node: Node, parse: Callable[[str], T], what: str) -> tuple[T, ...] | None:
        """The strings of the list at `node`, each as `parse` makes it (it raises ValueError
        for one that is not `what`); None when any is wrong, each wrong one reported."""
        items = self.items(node)
        if items is None:
            return None
        result: list[T] = []
        ok = True
        for item in items:
            value = self.string(item)
            if value is None:
                ok = False
                continue
            try:
                result.append(parse(value.strip()))
            except ValueError:
                self.error(item, f"{quote(value)} is not {what}")
                ok = False
        return tuple(result) if ok else None

    def url(self, node: Node) -> str | None:
        value = self.url_where(
            node,
            lambda parts: parts.scheme in ("http", "https") and bool(parts.netloc),
            "an http(s) URL",
        )
        return value.rstrip("/") if value is not None else None

    def url_where(self, node: Node, accept: Callable[[SplitResult], bool], what: str) -> str | None:
        """The URL at `node`, as written, when it parses (its port included) and `accept`
        takes its parts; else the error "… is not `what`"."""
        value = self.string(node)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (reading it checks the port)
            accepted = accept(parts)
        except ValueError:
            accepted = False
        if not accepted:
            self.error(node, f"{quote(value)} is not {what}")
            return None
        return value

    def secret(self, node: Node) -> str | None:
        """A plain string, ``{env: NAME}`` or ``{file: PATH}``; the value is never echoed."""
        if isinstance(node.value, str):
            return str(node.value)
        if not isinstance(node.value, dict):
            self.error(
                node,
                f"expected a string, {{env: NAME}} or {{file: PATH}}, got {describe(node.value)}",
            )
            return None
        keys = list(node.value)
        if len(keys) != 1 or keys[0] not in ("env", "file"):
            # The keys are not repeated: a token pasted as a key would be printed.
            self.error(node, "expected a string, {env: NAME} or {file: PATH}")
            return None
        fields = self.fields(node, ("env", "file"))
        if fields is None:
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


def position(parent: Node, lookup: Callable[[Any], Any], key: object) -> tuple[int, int]:
    """Where `key` of `parent` sits; nodes added in memory (no position) fall back to the parent."""
    try:
        line, col = lookup(key)
    except (KeyError, IndexError, TypeError):
        return parent.line, parent.col
    return int(line), int(col)
