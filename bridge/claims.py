"""Which instance works which outbox queue.

One instance (SQLite) works every queue and leads every network: `LocalClaims`. Several
instances on one PostgreSQL database share the queues (`bridge.pg_claims`): a queue is worked by
the instance holding its claim, a network that allows one connection only is run by the
instance leading it, and another instance takes over within seconds when one dies. The outbox
and the gateway ask the same questions either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

Queue = tuple[str, str]


class Claims(ABC):
    @abstractmethod
    async def claim(self, queue: Queue) -> bool:
        """Take ``queue`` for this instance; False when another instance holds it (and will
        deliver what is in it)."""

    @abstractmethod
    async def release(self, queue: Queue) -> None:
        """This instance stopped working ``queue`` (it is empty, or the bridge stops)."""

    @abstractmethod
    async def lead(self, network: str) -> bool:
        """Become the instance that leads ``network`` (runs it where only one may, creates its
        rooms); False while another instance does."""

    @abstractmethod
    def leads(self, network: str) -> bool:
        """Whether this instance leads ``network`` right now."""

    @abstractmethod
    async def announce(self, queue: Queue) -> None:
        """Items were committed to ``queue`` here: tell the instance holding it."""

    @abstractmethod
    def on_work(self, wake: Callable[[str, str], None]) -> None:
        """``wake(link, target)`` is called when another instance announced work."""

    @abstractmethod
    def on_lost(self, lost: Callable[[], None]) -> None:
        """``lost()`` is called when this instance lost every claim at once (its database
        connection dropped): it must stop working its queues right away."""


class LocalClaims(Claims):
    """The only instance: it holds every queue."""

    async def claim(self, queue: Queue) -> bool:
        return True

    async def release(self, queue: Queue) -> None:
        return None

    async def lead(self, network: str) -> bool:
        return True

    def leads(self, network: str) -> bool:
        return True

    async def announce(self, queue: Queue) -> None:
        return None

    def on_work(self, wake: Callable[[str, str], None]) -> None:
        return None

    def on_lost(self, lost: Callable[[], None]) -> None:
        return None
