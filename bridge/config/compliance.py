"""The ``audit`` and ``retention`` sections: the audit trail's key (`bridge.audit`) and how long
the bridge keeps what it stores (`bridge.retention`)."""

from __future__ import annotations

from bridge.config.model import DAY, Audit, Delivery, Retention
from bridge.config.reader import Key, Node, Reader

MIN_AUDIT_KEY = 32
"""Characters the audit key needs at least (``openssl rand -hex 32`` gives 64)."""
RETENTION_KEYS = ("id_map", "outbox", "audit", "spool")


def read_audit(r: Reader, node: Node) -> Audit | None:
    """``{key: SECRET, checkpoint_interval: 1h}``."""
    fields = r.fields(node, ("key", "checkpoint_interval"))
    if fields is None:
        return None
    values, ok = r.table(
        node,
        fields,
        (
            Key("key", _key),
            Key("checkpoint_interval", Reader.duration, Audit(b"").checkpoint_interval),
        ),
    )
    return Audit(**values) if ok else None


def _key(r: Reader, node: Node) -> bytes | None:
    value = r.secret(node)
    if value is None:
        return None
    if len(value.strip()) < MIN_AUDIT_KEY:
        # The value is not repeated: it is a secret, however short.
        r.error(
            node,
            f"must be at least {MIN_AUDIT_KEY} characters long "
            "(e.g. the output of: openssl rand -hex 32)",
        )
        return None
    return value.strip().encode()


def read_retention(r: Reader, node: Node, delivery: Delivery | None) -> Retention | None:
    """Days per kind of data (``id_map``, ``outbox``, ``audit``, ``spool``), each optional: a
    kind left out is kept."""
    fields = r.fields(node, RETENTION_KEYS)
    if fields is None:
        return None
    values, ok = r.table(node, fields, [Key(key, _days, None) for key in RETENTION_KEYS])
    if not ok:
        return None
    outbox = values["outbox"]
    if outbox is not None and delivery is not None and outbox < delivery.give_up_after:
        r.error(
            fields["outbox"],
            "must not be less than delivery.give_up_after "
            f"({delivery.give_up_after / DAY:g} days): queued messages are given up, and "
            "their senders told, before they are deleted",
        )
        return None
    return Retention(**values)


def _days(r: Reader, node: Node) -> float | None:
    days = r.positive_number(node)
    return None if days is None else days * DAY
