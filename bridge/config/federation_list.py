"""The ``federation_list`` key of any network: where its signed federation list comes from
(`bridge.federation`) and the key it must be signed with."""

from __future__ import annotations

from pathlib import Path

from bridge.config.model import FederationListSource
from bridge.config.reader import Key, Node, Reader, quote
from bridge.federation.document import BadKey, public_key

KEYS = ("url", "file", "public_key", "refresh", "timeout", "max_bytes", "ca_file")
MIN_BYTES = 1024


def read_federation_list(r: Reader, node: Node) -> FederationListSource | None:
    """``{url: https://…, public_key: …}`` or ``{file: PATH, public_key: …}``, with the
    optional ``refresh``, ``timeout``, ``max_bytes`` and ``ca_file``."""
    fields = r.fields(node, KEYS)
    if fields is None:
        return None
    default = FederationListSource(public_key="")
    values, ok = r.table(node, fields, (
        Key("url", lambda r, n: _https_url(r, n), None),
        Key("file", lambda r, n: _path(r, n), None),
        Key("public_key", lambda r, n: _public_key(r, n)),
        Key("refresh", Reader.duration, default.refresh),
        Key("timeout", Reader.duration, default.timeout),
        Key("max_bytes", lambda r, n: r.integer(n, MIN_BYTES), default.max_bytes),
        Key("ca_file", lambda r, n: _ca_file(r, n), None),
    ))  # fmt: skip
    given = {key for key, value in fields.items() if value.value is not None}
    if {"url", "file"} <= given:
        r.error(fields["file"], "give either url or file, not both")
        return None
    if not {"url", "file"} & given:
        r.error(node, "give either url (HTTPS) or file: where the list is read from")
        return None
    if "ca_file" in given and "url" not in given:
        r.error(fields["ca_file"], "only allowed with url")
        return None
    return FederationListSource(**values) if ok else None


def _https_url(r: Reader, node: Node) -> str | None:
    return r.url_where(
        node,
        lambda parts: parts.scheme == "https" and bool(parts.hostname),
        "an https:// URL (lists are read over HTTPS only)",
    )


def _path(r: Reader, node: Node) -> Path | None:
    value = r.nonempty(node)
    return r.base_dir / Path(value).expanduser() if value is not None else None


def _ca_file(r: Reader, node: Node) -> Path | None:
    path = _path(r, node)
    if path is not None and not path.is_file():
        r.error(node, f"{quote(str(path))} is not a file")
        return None
    return path


def _public_key(r: Reader, node: Node) -> str | None:
    """PEM or JWK text, literally, ``{env: NAME}`` or ``{file: PATH}``; checked now, so a
    wrong key is a config error rather than every list refused."""
    value = r.secret(node)
    if value is None:
        return None
    try:
        public_key(value)
    except BadKey as e:
        r.error(node, str(e))
        return None
    return value
