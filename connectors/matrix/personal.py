"""What the Matrix networks keep about a person (`bridge.personal.KindData`): the profile each of
their ghosts was last given (name, and the source avatar it shows), keyed by the ghost's ID."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mautrix.util.async_db import Database

from bridge.config.model import Config, Network
from bridge.kinds import account_format
from bridge.naming import PERSON
from bridge.personal import Subject
from connectors.matrix.config import MatrixNetwork
from connectors.matrix.translate import ghost_localpart


def ghosts(config: Config, who: Subject) -> Iterator[tuple[str, str]]:
    """(network, ghost user ID) of every ghost ``who`` may have on the appservice networks:
    the one of their ``people`` entry, and one per account (from before they were listed)."""
    parts = [
        (network, account_format(config, network).local_form(account))
        for network, account in sorted(who.accounts)
    ]
    if who.person is not None:
        parts.append((PERSON, who.person.id))
    for network in config.networks.values():
        if isinstance(network, MatrixNetwork) and network.appservice is not None:
            prefix = network.appservice.ghost_prefix
            for head, local in parts:
                if head != network.name:
                    yield (
                        network.name,
                        f"@{ghost_localpart(prefix, head, local)}:{network.server_name}",
                    )


class MatrixData:
    async def export(self, config: Config, state: Database | None, who: Subject) -> dict[str, Any]:
        profiles = []
        for network, ghost in ghosts(config, who) if state is not None else ():
            assert state is not None
            row = await state.fetchrow(
                "SELECT displayname, avatar FROM ghost_profile WHERE network=$1 AND user_id=$2",
                network,
                ghost,
            )
            if row is not None:
                profiles.append(
                    {
                        "network": network,
                        "ghost": ghost,
                        "name": row["displayname"],
                        "avatar": row["avatar"],
                    }
                )
        return {"ghost_profiles": profiles}

    async def forget(self, config: Config, state: Database | None, who: Subject) -> dict[str, int]:
        removed = 0
        for network, ghost in ghosts(config, who) if state is not None else ():
            assert state is not None
            if await state.fetchval(
                "SELECT 1 FROM ghost_profile WHERE network=$1 AND user_id=$2", network, ghost
            ):
                await state.execute(
                    "DELETE FROM ghost_profile WHERE network=$1 AND user_id=$2", network, ghost
                )
                removed += 1
        return {"ghost_profiles": removed}

    async def purge(self, config: Config, network: Network, before: float) -> int:
        return 0  # nothing on disk
