"""Who may be bridged where: pure decisions, no I/O."""

from __future__ import annotations

from bridge.config.model import Config, Link
from bridge.kinds import account_format


def account_domain(config: Config, network: str, account: str) -> str:
    """The domain of an account on ``network``, as its kind reads accounts."""
    return account_format(config, network).domain(account)


def sender_allowed(config: Config, network: str, user_id: str) -> bool:
    """A network with ``allowed_domains`` bridges out only its users from those domains."""
    allowed = config.networks[network].allowed_domains
    return not allowed or account_domain(config, network, user_id) in allowed


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
