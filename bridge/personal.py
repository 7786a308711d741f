"""People's rights (GDPR Art. 15 and 17): all the bridge holds about one person, and forgetting it.

What the core holds: the person's entry in the config (the admin's, not the bridge's to forget),
messages of theirs still queued (the only content the bridge stores, until delivered), direct chats
opened with them, and their audit records (`bridge.audit`). The ID map holds message IDs, not who
sent them. Every kind adds what it keeps in its own tables or files (ghost profiles and avatars,
occupant identities, quarantined mail) through its `Kind.personal` hook (`KindData`): the core
never reads another kind's tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mautrix.util.async_db import Database

from bridge.audit import AuditTrail
from bridge.config.model import Config, Network, Person
from bridge.kinds import account_format, kinds
from bridge.store import Store


@dataclass(frozen=True)
class Subject:
    """The person asked about: a person of the ``people`` mapping (with all their accounts), or
    an account (on every network whose accounts look like it)."""

    id: str
    person: Person | None
    accounts: frozenset[tuple[str, str]]
    """(network, account) pairs."""

    @property
    def addresses(self) -> set[str]:
        """The accounts alone, whatever their network."""
        return {account for _, account in self.accounts}


def subject(config: Config, ident: str) -> Subject | None:
    """The person ``ident`` names: a person ID, else an account (a listed person's account
    names that person); None when it is neither."""
    person = config.person(ident)
    if person is not None:
        return Subject(ident, person, frozenset(person.accounts.items()))
    accounts = set()
    for network in config.networks:
        account = account_format(config, network).parse(ident)
        if account is not None:
            listed = config.person_by_account(network, account)
            if listed is not None:  # one of a listed person's accounts: the whole person
                return Subject(listed.id, listed, frozenset(listed.accounts.items()))
            accounts.add((network, account))
    return Subject(ident, None, frozenset(accounts)) if accounts else None


class KindData(Protocol):
    """What a network kind keeps about people, in its own tables (``state``, None for a kind
    without any) or files, for the person commands and retention. Each method handles every
    network of its kind in ``config``."""

    async def export(self, config: Config, state: Database | None, who: Subject) -> dict[str, Any]:
        """Everything kept about ``who``, by what it is (JSON-serialisable)."""
        ...

    async def forget(self, config: Config, state: Database | None, who: Subject) -> dict[str, int]:
        """Delete what is kept about ``who``: how many of each thing were deleted."""
        ...

    async def purge(self, config: Config, network: Network, before: float) -> int:
        """Delete the files ``network`` keeps (spooled mail) from before ``before`` (wall
        clock): how many."""
        ...


async def open_states(config: Config, store: Store) -> dict[str, Database]:
    """The tables of every kind in use, migrated."""
    states = {}
    for name in sorted({network.kind for network in config.networks.values()}):
        table = kinds()[name].state
        if table is not None:
            states[name] = await store.open_state(table)
    return states


@dataclass(frozen=True)
class Holdings:
    """Everywhere the bridge keeps something about people: the store, the audit trail (None
    where it keeps none) and the tables of every kind in use (`open_states`)."""

    config: Config
    store: Store
    audit: AuditTrail | None
    states: Mapping[str, Database]

    @classmethod
    async def open(cls, config: Config, store: Store, audit: AuditTrail | None) -> Holdings:
        return cls(config, store, audit, await open_states(config, store))


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def _kinds_in_use(config: Config) -> list[str]:
    return sorted({network.kind for network in config.networks.values()})


async def export(held: Holdings, who: Subject) -> dict[str, Any]:
    """All the bridge holds about ``who`` (Art. 15), as JSON-serialisable data."""
    queued = await held.store.queued_from(who.accounts)
    chats = await held.store.direct_chats_with(who.accounts)
    audit = held.audit
    records = await audit.records_of(who.addresses) if audit is not None else []
    data: dict[str, Any] = {
        "subject": who.id,
        "accounts": [{"network": n, "account": a} for n, a in sorted(who.accounts)],
        "people_entry": None
        if who.person is None
        else {
            "id": who.person.id,
            "name": who.person.name,
            "org": who.person.org,
            "accounts": dict(who.person.accounts),
        },
        "queued_messages": [
            {
                "link": item.link_id,
                "target": item.target,
                "kind": item.event.kind.value,
                "queued": _iso(item.queued),
                "sender": vars(item.event.sender),
                "text": item.event.text,
                "attachment": item.event.attachment.name if item.event.attachment else None,
            }
            for item in queued
        ],
        "direct_chats": [vars(chat) for chat in chats],
        "audit_records": records,
    }
    for name in _kinds_in_use(held.config):
        hook = kinds()[name].personal
        if hook is not None:
            data[name] = await hook.export(held.config, held.states.get(name), who)
    return data


async def forget(held: Holdings, who: Subject) -> dict[str, Any]:
    """Forget ``who`` (Art. 17): their direct chats and what every kind keeps about them go,
    their audit records keep their place in the chain under a pseudonym. What was done."""
    chats = await held.store.direct_chats_with(who.accounts)
    await held.store.forget_direct_chats([chat.link_id for chat in chats])
    done: dict[str, Any] = {"direct_chats": len(chats)}
    if held.audit is not None:
        done["audit_pseudonym"], done["audit_records"] = await held.audit.pseudonymise(
            who.addresses
        )
    for name in _kinds_in_use(held.config):
        hook = kinds()[name].personal
        if hook is not None:
            for what, count in (await hook.forget(held.config, held.states.get(name), who)).items():
                done[f"{name}.{what}"] = count
    return done
