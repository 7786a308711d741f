"""The ``kind: matrix`` network configuration: homeserver, flavour (plain Matrix or Tchap), mode
(appservice or relay) and their settings; Matrix user IDs as accounts; room IDs, aliases or
``create:`` requests as a link's rooms. `MatrixSchema` reads and checks it into a
`MatrixNetwork`."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bridge.config.model import LinkRoom, Listen
from bridge.config.reader import (
    NO_STRINGS,
    SERVER_NAME_RE,
    AccountFormat,
    Key,
    Node,
    Reader,
    describe,
    quote,
)
from bridge.kinds import NetworkSchema

DEFAULT_RELAY_FORMAT = "**{name}**: {message}"
LOCALPART_RE = re.compile(r"[a-z0-9._=/-]+")
USER_ID_RE = re.compile(r"@[^\s:]+:" + SERVER_NAME_RE.pattern)
ROOM_ID_RE = re.compile(r"![^\s]+")
ALIAS_RE = re.compile(r"#[^\s:]+:" + SERVER_NAME_RE.pattern)


class Flavour(StrEnum):
    MATRIX = "matrix"
    TCHAP = "tchap"


class MatrixMode(StrEnum):
    APPSERVICE = "appservice"
    RELAY = "relay"


class Encryption(StrEnum):
    """What a Matrix network does with end-to-end encrypted rooms (end-to-bridge encryption)."""

    OFF = "off"
    """No crypto at all: an encrypted room is refused, since the bridge could neither read it
    nor write into it without leaking plaintext."""
    ALLOW = "allow"
    """Encrypted rooms are bridged encrypted, unencrypted rooms in the clear."""
    REQUIRE = "require"
    """Only encrypted rooms are bridged; an unencrypted one is refused until it turns
    encryption on. Rooms the bridge creates are encrypted."""


@dataclass(frozen=True)
class AppserviceSettings:
    """The bridge registered as an application service on this network's homeserver."""

    id: str
    as_token: str
    hs_token: str
    bot: str
    """Localpart of the bridge bot, e.g. ``passerelle``."""
    ghost_prefix: str
    """Localpart prefix of every ghost; the registration claims ``@{ghost_prefix}.*``
    exclusively."""
    url: str
    """Where the homeserver reaches the bridge (registration ``url``)."""
    catch_up_interval: float = 60.0
    """Seconds between two reads of a recently active room's timeline for events the
    homeserver did not push (`connectors.matrix.catch_up`)."""


@dataclass(frozen=True)
class RelaySettings:
    """Only one ordinary bot account on this network: it posts as itself with the sender's name."""

    user_id: str
    access_token: str | None
    password: str | None
    device_id: str | None
    format: str
    """How a relayed message reads; ``{name}`` and ``{message}`` are filled in, ``**…**`` is
    bold."""


@dataclass(frozen=True)
class MatrixNetwork:
    name: str
    flavour: Flavour
    homeserver: str
    """Client-server API base URL, e.g. ``https://matrix.bund.example``."""
    server_name: str
    mode: MatrixMode
    appservice: AppserviceSettings | None
    relay: RelaySettings | None
    org_label: str | None
    """Organisation shown for this network's people when they are not in ``people``."""
    name_suffix: str
    """Appended to the names of this network's people where they appear as ghosts elsewhere."""
    allowed_domains: tuple[str, ...]
    """Homeserver domains whose users are bridged out of this network; empty means all."""
    restricted_rooms_allow: tuple[str, ...]
    """Tchap only: domains of other networks whose people may enter ``restricted`` rooms."""

    kind: str = "matrix"
    label: str = ""
    language: str = "de"
    encryption: Encryption = Encryption.OFF
    room_key_wait: float = 60.0
    """Seconds an encrypted message whose room key has not arrived waits for it before the
    room is told that it could not be bridged."""
    read_markers: bool = True
    """Whether this network's people's read receipts cross (appservice mode) and remote
    people's read markers show here as their ghosts' receipts; off where admins count them
    as personal data."""

    @property
    def domains(self) -> tuple[str, ...]:
        return (self.server_name,)


@dataclass(frozen=True, slots=True)
class RoomCreate:
    """Ask the bridge to create the room itself (once; the created room ID is stored)."""

    name: str
    topic: str | None
    encrypted: bool | None = None
    """Turn end-to-end encryption on in the new room; None follows the network (encrypted when
    it requires encryption)."""
    room_version: str | None = None
    """The new room's version; None: the homeserver's default (Synapse's is 12, whose room IDs
    have no ``:server`` part, which some clients still refuse)."""


ROOM_VERSION_RE = re.compile(r"[0-9a-z.-]{1,32}")


def generate_hint(file: Path, what: str) -> str:
    return f"run 'passerelle generate-registration -c {file}' to {what}"


class MatrixSchema(NetworkSchema):
    account_format = AccountFormat(
        USER_ID_RE,
        "a Matrix user ID (@user:server)",
        domain=lambda user_id: user_id.partition(":")[2],
        local_form=lambda user_id: user_id.removeprefix("@"),
        from_local_form=lambda local: f"@{local}",
        home_domains=lambda network: (network.server_name,),
    )
    table = (
        Key("flavour", lambda r, n: r.choice(n, list(Flavour)), Flavour.MATRIX.value),
        Key("homeserver", Reader.url),
        Key("server_name",
            lambda r, n: r.matching(n, SERVER_NAME_RE, "a server name (host or host:port)")),
        Key("mode", lambda r, n: r.choice(n, list(MatrixMode)), MatrixMode.APPSERVICE.value),
        Key("allowed_domains", Reader.string_list, NO_STRINGS),
        Key("encryption", lambda r, n: r.choice(n, list(Encryption)), Encryption.OFF.value),
        Key("read_markers", Reader.boolean, True),
    )  # fmt: skip
    other_keys = ("restricted_rooms_allow", "room_key_wait", "appservice", "relay")

    def network(
        self, name: str, node: Node, fields: dict[str, Node], listen: Listen
    ) -> MatrixNetwork | None:
        r = self.r
        values, ok = self.read_table(node, fields)
        flavour, mode, encryption = values["flavour"], values["mode"], values["encryption"]
        shown = r.presentation(name, fields, "fr" if flavour == Flavour.TCHAP else "de")
        restricted = self.restricted_rooms_allow(fields, flavour)
        room_key_wait = self.room_key_wait(fields, encryption)
        appservice, relay = self.mode_settings(name, node, fields, mode, listen)
        if (
            not ok
            or shown is None
            or restricted is None
            or room_key_wait is None
            or (appservice is None and relay is None)
        ):
            return None
        return MatrixNetwork(
            name=name,
            flavour=Flavour(flavour),
            homeserver=values["homeserver"],
            server_name=values["server_name"],
            mode=MatrixMode(mode),
            appservice=appservice,
            relay=relay,
            allowed_domains=values["allowed_domains"],
            restricted_rooms_allow=restricted,
            encryption=Encryption(encryption),
            room_key_wait=room_key_wait,
            read_markers=values["read_markers"],
            **vars(shown),
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

    def room_key_wait(self, fields: dict[str, Node], encryption: str | None) -> float | None:
        node = fields.get("room_key_wait")
        if node is None or node.value is None:
            return 60.0
        if encryption == Encryption.OFF:
            self.r.error(node, "only allowed when encryption is allow or require")
            return None
        return self.r.positive_number(node)

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
                hint = generate_hint(self.path, "create it with fresh tokens")
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
        fields = r.fields(
            node, ("id", "bot", "ghost_prefix", "url", "as_token", "hs_token", "catch_up_interval")
        )
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
        interval = r.optional(fields, "catch_up_interval", r.duration, 60.0)
        if (
            as_id is None
            or bot is None
            or prefix is None
            or url is None
            or as_token is None
            or hs_token is None
            or interval is None
        ):
            return None
        return AppserviceSettings(as_id, as_token, hs_token, bot, prefix, url, interval)

    def token(self, parent: Node, fields: dict[str, Node], key: str) -> str | None:
        node = fields.get(key)
        if node is None or node.value is None or node.value == "":
            hint = generate_hint(self.path, "generate it")
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
        """The relay template: text with ``{name}`` and ``{message}`` exactly as written (no
        format specs or conversions: the template is filled in by `render_relay`, never by
        ``str.format``, so ``{name:>9}`` would show literally)."""
        value = self.r.string(node)
        if value is None:
            return None
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(value)
                      if f is not None]  # fmt: skip
        except ValueError:
            fields = [("", None, None)]
        if any(f not in ("name", "message") or spec or conv for f, spec, conv in fields):
            self.r.error(node, "may only use the placeholders {name} and {message}, as written")
            return None
        if "message" not in (f for f, _, _ in fields):
            self.r.error(node, "must contain {message}")
            return None
        return value

    def room(self, network: str, node: Node) -> LinkRoom | None:
        """A room reference: ``"!id"``, ``"#alias"``, ``{room: …}`` or ``{create: {…}}``."""
        if isinstance(node.value, str):
            room = self.room_reference(node)
            return LinkRoom(network, room, None) if room else None
        if not isinstance(node.value, dict):
            self.r.error(
                node,
                "expected a room ID, an alias, {room: …} or {create: {name: …}}, "
                f"got {describe(node.value)}",
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
            self.r.error(node, f"{quote(value)} is neither a room ID (!…) nor an alias (#…)")
            return None
        if not ok:
            self.r.error(node, f"{quote(value)} is not {what}")
            return None
        return value

    def room_create(self, node: Node) -> RoomCreate | None:
        fields = self.r.fields(node, ("name", "topic", "encrypted", "room_version"))
        if fields is None:
            return None
        name_node = self.r.required(node, fields, "name")
        name = self.r.nonempty(name_node) if name_node else None
        topic = self.r.optional(fields, "topic", self.r.string, None)
        encrypted = self.r.optional(fields, "encrypted", self.r.boolean, None)
        version = self.r.optional(fields, "room_version", self.room_version, None)
        if (
            name is None
            or ("encrypted" in fields and encrypted is None)
            or ("room_version" in fields and version is None)
        ):
            return None
        return RoomCreate(name, topic, encrypted, version)

    def room_version(self, node: Node) -> str | None:
        """A room version as the spec writes them (``10``, ``org.example.custom``); a number
        is taken as written."""
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and ROOM_VERSION_RE.fullmatch(value):
            return value
        self.r.error(node, "expected a room version (e.g. \"11\": digits, a-z, '.' and '-')")
        return None
