"""Who may be bridged where: pure decisions, no I/O."""

from __future__ import annotations

from bridge.config.model import Config, Link, Network


def account_domain(account: str) -> str:
    """The domain part of a Matrix user ID (``@u:domain``), JID or email address."""
    if account.startswith("@") and ":" in account:
        return account.split(":", 1)[1]
    return account.rpartition("@")[2].split("/", 1)[0]


def sender_allowed(network: Network, user_id: str) -> bool:
    """A network with ``allowed_domains`` bridges out only its users from those domains."""
    return not network.allowed_domains or account_domain(user_id) in network.allowed_domains


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
