"""Who may be bridged where: pure decisions, no I/O.

A network's people are bridged out of it when their domain passes both its ``allowed_domains``
(as its kind reads them) and, for a network that takes its domains from a signed federation
list (`bridge.federation`), the list in force. The list constrains who leaves its own network,
as TI-Messenger's list says which homeservers belong to a federation; who may be shown *into* a
network is what the other networks' lists (and Tchap's room access rules) say about their own
people. A refusal is a named `SenderRefusal`, for the log and the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from bridge.config.model import Config, Link
from bridge.kinds import account_format
from bridge.naming import PERSON

Listed = Mapping[str, frozenset[str] | None]
"""Network → the domains its federation list in force names (None while none is in force);
networks that take no federation list are not in it (`Host.federation`)."""


class SenderRefusal(StrEnum):
    """Why someone's messages are not bridged out of their network."""

    DOMAIN_NOT_ALLOWED = "domain_not_allowed"
    """Their domain is not in the network's ``allowed_domains``."""
    NOT_ON_FEDERATION_LIST = "not_on_federation_list"
    """The network's federation list in force does not name their domain."""
    NO_FEDERATION_LIST = "no_federation_list"
    """The network takes its domains from a federation list and none is in force (none valid
    was ever read, or the one in force expired)."""

    def explain(self, domain: str) -> str:
        """The refusal as a log line's reason."""
        return {
            SenderRefusal.DOMAIN_NOT_ALLOWED: f"{domain} is not an allowed domain",
            SenderRefusal.NOT_ON_FEDERATION_LIST: f"{domain} is not on the federation list",
            SenderRefusal.NO_FEDERATION_LIST: "no valid federation list is in force",
        }[self]


def account_domain(config: Config, network: str, account: str) -> str:
    """The domain of an account on ``network``, as its kind reads accounts."""
    return account_format(config, network).domain(account)


def listed_refusal(listed: Listed, network: str, domain: str) -> SenderRefusal | None:
    """Why the federation list of ``network`` refuses ``domain``, if it does."""
    if network not in listed:
        return None
    domains = listed[network]
    if domains is None:
        return SenderRefusal.NO_FEDERATION_LIST
    return None if domain.lower() in domains else SenderRefusal.NOT_ON_FEDERATION_LIST


def federation_refusal(
    config: Config, listed: Listed, network: str, account: str
) -> SenderRefusal | None:
    """Why the federation list of ``network`` refuses one of its accounts, if it does."""
    return listed_refusal(listed, network, account_domain(config, network, account))


def sender_refusal(
    config: Config, listed: Listed, network: str, user_id: str
) -> SenderRefusal | None:
    """Why ``user_id`` of ``network`` is not bridged out of it, if they are not, where
    ``allowed_domains`` lists the only domains bridged out (empty: all), as on Matrix: their
    domain is not among them, or not on the network's federation list."""
    allowed = config.networks[network].allowed_domains
    if allowed and account_domain(config, network, user_id) not in allowed:
        return SenderRefusal.DOMAIN_NOT_ALLOWED
    return federation_refusal(config, listed, network, user_id)


def ghost_refused(
    config: Config, listed: Listed, link: Link, head: str, local: str, here: str
) -> bool:
    """Whether the ghost or puppet made of the address parts ``(head, local)``
    (`bridge.naming.address_parts`) in ``here``'s room of ``link`` stands for someone whose
    network's federation list no longer lets them out: an account of a domain the list lacks,
    or a listed person none of whose accounts on the link's other networks is let out. A ghost
    whose owner is not known (a person no longer listed, a network no longer configured) is
    left alone, and so is one that ``allowed_domains`` alone would refuse (the connectors
    apply those as each kind reads them, when a message arrives)."""
    if head == PERSON:
        person = config.person(local)
        if person is None:
            return False
        accounts = [(network, account) for network, account in person.accounts.items()
                    if network != here and network in link.rooms]  # fmt: skip
        return bool(accounts) and all(
            federation_refusal(config, listed, network, account) is not None
            for network, account in accounts
        )
    if head not in config.networks or head == here:
        return False
    account = account_format(config, head).from_local_form(local)
    return federation_refusal(config, listed, head, account) is not None


def foreign_domains(config: Config, link: Link, network: str) -> list[str]:
    """The domains whose people would appear in ``network``'s room of this link."""
    return sorted(
        {
            domain
            for other in link.rooms
            if other != network
            for domain in config.networks[other].domains
        }  # fmt: skip
    )
