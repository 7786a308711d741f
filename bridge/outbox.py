"""Durable, ordered delivery.

Every (link, target network) pair is one queue in the store. A worker per non-empty queue sends
its oldest item, and only then the next, so order within a link holds on every target. A failed
send is retried with exponential backoff (the item stays at the head of its queue, holding back
the ones behind it) until the configured number of attempts; then the sender is told and the
queue moves on. Workers exist only while their queue has items, so ten thousand idle links cost
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bridge import metrics
from bridge.config.model import Delivery
from bridge.connector import DeliveryError
from bridge.store import OutboxItem, Store

log = logging.getLogger(__name__)

Queue = tuple[str, str]
BATCH = 32
"""Items read from a queue at once."""


class Outbox:
    def __init__(
        self,
        store: Store,
        policy: Delivery,
        deliver: Callable[[OutboxItem], Awaitable[None]],
        give_up: Callable[[OutboxItem, str], Awaitable[None]],
    ) -> None:
        self._store = store
        self._policy = policy
        self._deliver = deliver
        self._give_up = give_up
        self._workers: dict[Queue, asyncio.Task[None]] = {}
        self._dirty: set[Queue] = set()
        self._running = False

    async def start(self) -> None:
        """Resume every queue left non-empty by an earlier run."""
        self._running = True
        for queue in await self._store.queues():
            self.wake(*queue)

    async def stop(self) -> None:
        self._running = False
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()

    def wake(self, link_id: str, target: str) -> None:
        """Called after items were committed to a queue."""
        if not self._running:
            return
        queue = (link_id, target)
        self._dirty.add(queue)
        if queue not in self._workers:
            self._workers[queue] = asyncio.create_task(
                self._work(queue), name=f"outbox:{link_id}->{target}"
            )
            metrics.OUTBOX.set(len(self._workers))

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        doublings = min(max(attempts - 1, 0), 32)
        return min(self._policy.initial_backoff * 2**doublings, self._policy.max_backoff)

    async def _work(self, queue: Queue) -> None:
        """Send the queue's items in order, reading them a batch at a time; stop once the
        queue is empty. A queue is known to be empty without asking the store when the last
        read came back short and nothing was added since (`wake` marks it dirty)."""
        try:
            while True:
                self._dirty.discard(queue)
                items = await self._store.queue_head(*queue, BATCH)
                for item in items:
                    wait = item.next_attempt - time.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not await self._attempt(item):
                        break  # it stays at the head, holding back the rest until its retry
                else:
                    if len(items) < BATCH and queue not in self._dirty:
                        return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Outbox worker for %s → %s stopped; restarts on the next event", *queue)
        finally:
            self._workers.pop(queue, None)
            metrics.OUTBOX.set(len(self._workers))

    async def _attempt(self, item: OutboxItem) -> bool:
        """One try at an item; True when it left the queue (sent, or given up on)."""
        try:
            await self._deliver(item)
            metrics.DELIVERED.labels(item.target).inc()
            return True
        except DeliveryError as e:
            error, permanent = str(e), e.permanent
        except Exception as e:  # any failure of a network is retried
            error, permanent = f"{type(e).__name__}: {e}", False
        attempts = item.attempts + 1
        metrics.RETRIED.labels(item.target).inc()
        if permanent or attempts >= self._policy.max_attempts:
            log.error(
                "Giving up on %s %s for %s after %d attempt(s): %s",
                item.event.kind,
                item.event.remote_id,
                item.target,
                attempts,
                error,
            )
            metrics.FAILED.labels(item.target).inc()
            await self._give_up(item, error)
            await self._store.give_up(item)
            return True
        delay = self.backoff(attempts)
        log.warning(
            "Delivery of %s to %s failed (attempt %d/%d), retrying in %.1fs: %s",
            item.event.remote_id,
            item.target,
            attempts,
            self._policy.max_attempts,
            delay,
            error,
        )
        await self._store.retry_later(item, delay, error)
        return False
