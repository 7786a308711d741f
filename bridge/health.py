"""Whether each network answers: up, or down since when and why.

A network that is down is not a message that failed. The outbox reports here what its sends
found (`down` on an `Unavailable`, `up` on any success), waits here while a network is down, and
every queue to that network resumes the moment one send gets through again. A change of state
is logged once (not once per message); the status and the ``passerelle_network_up`` metric
show it (`bridge.status`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class State:
    up: bool = True
    since: float = 0.0
    """Wall-clock time of the last change."""
    reason: str = ""


class NetworkHealth:
    def __init__(self, networks: list[str]) -> None:
        self._states = {name: State(since=time.time()) for name in networks}
        self._up = {name: asyncio.Event() for name in networks}
        for name in networks:
            self._up[name].set()

    def add(self, network: str) -> None:
        """A network a reload added (up until a send finds otherwise)."""
        if network not in self._states:
            self._states[network] = State(since=time.time())
            self._up[network] = asyncio.Event()
            self._up[network].set()

    def state(self, network: str) -> State:
        return self._states[network]

    def is_up(self, network: str) -> bool:
        return self._states[network].up

    def down(self, network: str, reason: str) -> None:
        state = self._states[network]
        state.reason = reason
        if state.up:
            state.up, state.since = False, time.time()
            self._up[network].clear()
            log.warning("Network %s is down (%s); its messages wait until it answers", network,
                        reason)  # fmt: skip

    def up(self, network: str) -> None:
        state = self._states[network]
        if not state.up:
            log.info("Network %s answers again after %.0fs; delivering what waited", network,
                     time.time() - state.since)  # fmt: skip
            state.up, state.since, state.reason = True, time.time(), ""
            self._up[network].set()

    async def wait_up(self, network: str, timeout: float) -> None:  # noqa: ASYNC109
        """Until ``network`` is seen up again, or ``timeout`` seconds (whichever comes first)."""
        try:
            await asyncio.wait_for(self._up[network].wait(), timeout)
        except TimeoutError:
            pass
