"""Durable, ordered delivery.

Every (link, target network) pair is one queue in the store. A worker per non-empty queue sends
its oldest item, and only then the next, so order within a link holds on every target. Workers
exist only while their queue has items, so ten thousand idle links cost nothing.

What a failed send means decides what happens next:

- the target is **unavailable** (`Unavailable`: refused connections, time-outs, 5xx answers,
  rate limits; or one room not ready yet): the item waits at the head of its queue and no
  attempt is counted. While a whole network is down, one queue probes it with backoff (capped
  at `DOWN_RETRY_MAX`) and the others wait; the moment a send gets through, every queue to that
  network resumes (`bridge.health`).
- the message itself failed (`DeliveryError`, or an unexpected exception): an attempt is
  counted and the item retried with backoff, until ``delivery.max_attempts``; a permanent
  refusal is given up at once.
- an item older than ``delivery.give_up_after`` is given up, whatever the reason it waited.

Giving up tells the sender, in their room's language (`Router.report_undeliverable`). The last
refusals and give-ups are kept in memory for admins (`Outbox.failures`, `bridge.status`).

With several instances on one PostgreSQL database, `bridge.claims` decides which instance works
which queue: a worker runs only while its instance holds the queue's claim.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from bridge import metrics
from bridge.audit import Decision
from bridge.claims import Claims
from bridge.config.model import Delivery
from bridge.connector import DeliveryError, Refusal, Unavailable
from bridge.database import unreachable
from bridge.health import NetworkHealth
from bridge.naming import clean
from bridge.store import Note, OutboxItem, Store

log = logging.getLogger(__name__)

Queue = tuple[str, str]
BATCH = 32
"""Items read from a queue at once."""
DOWN_RETRY_MAX = 60.0
"""Longest wait between two probes of a network that is down."""
STORE_RETRY_MAX = 30.0
FAILURES_KEPT = 20
"""Refusals and give-ups kept for the status (the log keeps them all)."""
FAILURE_DETAIL = 300
"""Characters of a failure's details kept (the error as logged)."""

GiveUp = Callable[[OutboxItem, Refusal, str], Awaitable[None]]
AuditNote = Callable[[OutboxItem, Decision, str], Note | None]


class Outcome(Enum):
    DONE = "done"
    """The item left the queue: delivered, or given up."""
    LATER = "later"
    """An attempt failed; the item stays at the head until its ``next_attempt``."""
    AGAIN = "again"
    """The target was unavailable and has been waited for: try the same item again."""


@dataclass(frozen=True)
class Failure:
    """A delivery that failed because of the message or its room (a network that is down is
    no failure), or an item given up: what an admin needs to look into it (the log line has the
    rest), never what the message said."""

    at: float
    """Wall clock."""
    link_id: str
    source: str
    """The network the event came from."""
    target: str
    kind: str
    """The event's kind: message, edit, redaction, reaction."""
    reason: Refusal
    detail: str
    """The error, as the log has it (cut to `FAILURE_DETAIL`)."""
    given_up: bool
    """Given up (the sender was told), or to be retried."""


@dataclass(eq=False)
class Outbox:
    store: Store
    policy: Delivery
    health: NetworkHealth
    claims: Claims
    deliver: Callable[[OutboxItem], Awaitable[None]]
    give_up: GiveUp
    serves: Callable[[str], bool] = lambda network: True
    audit: AuditNote = lambda item, decision, reason: None
    _workers: dict[Queue, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _dirty: set[Queue] = field(default_factory=set, init=False)
    _probing: dict[str, Queue] = field(default_factory=dict, init=False)
    """Network that is down → the queue probing it (the others wait for its result)."""
    _probe_vacant: dict[str, asyncio.Event] = field(default_factory=dict, init=False)
    _waits: dict[Queue, int] = field(default_factory=dict, init=False)
    """Queue → how many times in a row its head found the target unavailable."""
    _running: bool = field(default=False, init=False)
    failures: deque[Failure] = field(
        default_factory=lambda: deque(maxlen=FAILURES_KEPT), init=False
    )
    """The last refusals and give-ups on this instance, oldest first."""

    async def start(self) -> None:
        """Resume every queue left non-empty by an earlier run (or by an instance that died)."""
        self._running = True
        self.claims.on_work(self.wake)
        self.claims.on_lost(self._claims_lost)
        await self.resume()

    async def resume(self) -> None:
        """Start a worker for every non-empty queue this instance may claim: at start, and
        regularly with several instances (an instance that died leaves its queues unclaimed)."""
        for queue in await self.store.queues():
            self.wake(*queue)

    async def stop(self) -> None:
        self._running = False
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()

    def _claims_lost(self) -> None:
        """This instance lost its claims (its database connection dropped): another instance
        may take the queues over at any moment, so this one stops working them now."""
        for task in list(self._workers.values()):
            task.cancel()

    def use(self, policy: Delivery) -> None:
        """The delivery settings of a reloaded config, from the next attempt on."""
        self.policy = policy

    async def forget(self, link_id: str, target: str) -> None:
        """Stop working a queue whose room a reload removed (its items are dropped next)."""
        task = self._workers.get((link_id, target))
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def wake(self, link_id: str, target: str) -> None:
        """Called after items were committed to a queue (here, or by another instance)."""
        if not self._running:
            return
        queue = (link_id, target)
        self._dirty.add(queue)
        if queue not in self._workers:
            self._workers[queue] = asyncio.create_task(
                self._work(queue), name=f"outbox:{link_id}->{target}"
            )
            metrics.OUTBOX.set(len(self._workers))

    def working(self, link_id: str, target: str) -> bool:
        """Whether this instance has a worker on the queue right now."""
        return (link_id, target) in self._workers

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        doublings = min(max(attempts - 1, 0), 32)
        return min(self.policy.initial_backoff * 2**doublings, self.policy.max_backoff)

    async def _work(self, queue: Queue) -> None:
        """Send the queue's items in order, reading them a batch at a time; stop once the
        queue is empty. A queue is known to be empty without asking the store when the last
        read came back short and nothing was added since (`wake` marks it dirty)."""
        try:
            if not self.serves(queue[1]) or not await self.claims.claim(queue):
                return  # another instance works it
            delay = 1.0
            while True:
                try:
                    if await self._drain(queue):
                        return
                    delay = 1.0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("Outbox worker for %s → %s failed; retrying in %.0fs", *queue,
                                  delay)  # fmt: skip
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, STORE_RETRY_MAX)
        finally:
            self._leave_probe(queue)
            self._workers.pop(queue, None)
            metrics.OUTBOX.set(len(self._workers))
            await self.claims.release(queue)

    async def _drain(self, queue: Queue) -> bool:
        """Deliver what the queue holds; True once it is empty."""
        while True:
            self._dirty.discard(queue)
            items = await self.store.queue_head(*queue, BATCH)
            for item in items:
                wait = item.next_attempt - time.time()
                if wait > 0:
                    await asyncio.sleep(min(wait, self._expiry(item) - time.time()))
                outcome = await self._attempt(item)
                while outcome is Outcome.AGAIN:
                    outcome = await self._attempt(item)
                if outcome is Outcome.LATER:
                    break  # it stays at the head, holding back the rest until its retry
            else:
                if len(items) < BATCH and queue not in self._dirty:
                    return True

    def _expiry(self, item: OutboxItem) -> float:
        return item.queued + self.policy.give_up_after

    async def _attempt(self, item: OutboxItem) -> Outcome:
        """One try at an item."""
        if time.time() >= self._expiry(item):
            state = self.health.state(item.target)
            why = state.reason if not state.up else "waited too long"
            await self._abandon(item, Refusal.EXPIRED, f"queued too long ({why})")
            metrics.EXPIRED.labels(item.target).inc()
            return Outcome.DONE
        try:
            await self.deliver(item)
        except Unavailable as e:
            await self._wait_for_target(item, e)
            return Outcome.AGAIN
        except DeliveryError as e:
            return await self._failed(item, e.reason, str(e), permanent=e.permanent)
        except Exception as e:
            if unreachable(e):  # our own database, not the message
                await self._wait_for_target(item, Unavailable(str(e), network_down=False))
                return Outcome.AGAIN
            log.exception("Delivery of %s to %s failed unexpectedly", item.event.remote_id,
                          item.target)  # fmt: skip
            return await self._failed(item, Refusal.REFUSED, f"{type(e).__name__}: {e}")
        metrics.DELIVERED.labels(item.target).inc()
        self.health.up(item.target)
        self._waits.pop((item.link_id, item.target), None)
        if self._probing.get(item.target) == (item.link_id, item.target):
            del self._probing[item.target]
        return Outcome.DONE

    async def _failed(
        self, item: OutboxItem, reason: Refusal, error: str, *, permanent: bool = False
    ) -> Outcome:
        """An attempt this item caused failed: count it, retry later or give up."""
        attempts = item.attempts + 1
        metrics.RETRIED.labels(item.target).inc()
        if permanent or attempts >= self.policy.max_attempts:
            await self._abandon(item, reason, f"{error} (attempt {attempts})")
            return Outcome.DONE
        delay = self.backoff(attempts)
        self._note(item, reason, f"{error} (attempt {attempts})", given_up=False)
        log.warning("Delivery of %s to %s failed (attempt %d/%d), retrying in %.1fs: %s",
                    item.event.remote_id, item.target, attempts, self.policy.max_attempts,
                    delay, error)  # fmt: skip
        await self.store.retry_later(item, delay, error)
        return Outcome.LATER

    async def _abandon(self, item: OutboxItem, reason: Refusal, error: str) -> None:
        log.error("Giving up on %s %s for %s: %s", item.event.kind, item.event.remote_id,
                  item.target, error)  # fmt: skip
        metrics.FAILED.labels(item.target).inc()
        self._note(item, reason, error, given_up=True)
        try:
            await self.give_up(item, reason, error)
        except Exception:
            log.exception("Could not tell the sender that %s was given up", item.event.remote_id)
        await self.store.give_up(item, also=self.audit(item, Decision.REFUSED, reason.value))

    def _note(self, item: OutboxItem, reason: Refusal, error: str, *, given_up: bool) -> None:
        self.failures.append(Failure(time.time(), item.link_id, item.event.network, item.target,
                                     item.event.kind.value, reason, clean(error, FAILURE_DETAIL),
                                     given_up))  # fmt: skip

    async def _wait_for_target(self, item: OutboxItem, error: Unavailable) -> None:
        """The target was unavailable for ``item``: wait before trying it again, no longer
        than until the item expires. One queue per network that is down probes it with
        backoff; the others wait until it answers again (or the prober gives up probing)."""
        queue, network = (item.link_id, item.target), item.target
        deadline = self._expiry(item)
        waited = self._waits.get(queue, 0) + 1
        self._waits[queue] = waited
        if not error.network_down:
            log.debug("%s → %s waits: %s", *queue, error)
            await asyncio.sleep(max(0.0, min(self.backoff(waited), DOWN_RETRY_MAX,
                                             deadline - time.time())))  # fmt: skip
            return
        self.health.down(network, str(error))
        while not self.health.is_up(network) and time.time() < deadline:
            prober = self._probing.get(network)
            if prober is None or prober == queue:
                self._probing[network] = queue
                wait = min(self.backoff(waited), DOWN_RETRY_MAX, deadline - time.time())
                await self.health.wait_up(network, max(0.0, wait))
                return
            vacant = self._probe_vacant.setdefault(network, asyncio.Event())
            vacant.clear()
            await _first(self.health.wait_up(network, deadline - time.time()), vacant.wait())

    def _leave_probe(self, queue: Queue) -> None:
        self._waits.pop(queue, None)
        for network, prober in list(self._probing.items()):
            if prober == queue:
                del self._probing[network]
                self._probe_vacant.setdefault(network, asyncio.Event()).set()


async def _first(*waits: Awaitable[object]) -> None:
    """Until the first of ``waits`` is done (the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
