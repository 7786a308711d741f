"""The federation list in force for each network that takes its domains from one.

At start, the last list taken is read back from the store and checked again (signed by the
configured key, not expired), then each network's source is read: again every ``refresh``
seconds (at most a minute after a failed read), at once on `refresh_now` (a SIGHUP), and at the
moment the list in force expires. A list is taken only when it is signed by the network's key,
reads as a federation list, is newer than every list taken before (the version is kept in the
store, so a restart does not take a rollback either) and has not expired. Anything else is
refused with one log line and the metric ``passerelle_federation_list_refused_total`` saying
why, and the last good list stays in force.

When the list in force expires and no newer one came, no domain of the network is accepted
until one does: an expiry bounds how long a list that someone withholds can keep a removed
domain in (fail closed; the gauge ``passerelle_federation_list_expires_timestamp_seconds``
lets alerts warn before).

When domains stop being accepted (a newer list dropped them, the list in force expired, or a
network newly takes its domains from a list), ``on_refused`` is told the network and the
domains (None: not known, any domain the list lacks) at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from bridge import metrics
from bridge.config.model import FederationListSource
from bridge.federation.document import (
    FederationList,
    ListRefused,
    PublicKey,
    admit,
    public_key,
    read,
)
from bridge.federation.source import fetch
from bridge.store import Store, StoredList
from bridge.tasks import supervise

log = logging.getLogger("passerelle.federation")

RETRY_AFTER_FAILURE = 60.0
"""Seconds before a list that could not be read or was refused is read again, at most."""
EXPIRY_MARGIN = 0.05
"""Seconds past an expiry at which it is checked (timers may fire a little early)."""

OnRefused = Callable[[str, frozenset[str] | None], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class FederationLists:
    def __init__(
        self, store: Store, on_refused: OnRefused, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.store = store
        self.on_refused = on_refused
        self.clock = clock
        self.domains: dict[str, frozenset[str] | None] = {}
        """What `bridge.policy` reads: network → the domains its list in force names, None
        while none is in force. Networks without a federation list are not in it."""
        self._sources: dict[str, FederationListSource] = {}
        self._keys: dict[str, PublicKey] = {}
        self._last: dict[str, FederationList | None] = {}
        """The last list taken that the configured key verifies (perhaps expired)."""
        self._floor: dict[str, int] = {}
        """The highest version ever taken (kept in the store): no list may be older."""
        self._failed: dict[str, bool] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def use(self, lists: Mapping[str, FederationListSource]) -> None:
        """Read the lists of these networks (at start, or after a reload): a network whose
        settings changed starts again from its stored list; one no longer configured is free
        of any list. Returns once each new network's first read is done (each bounded by its
        ``timeout``)."""
        for name in [n for n in self._sources if lists.get(n) != self._sources[n]]:
            await self._stop(name)
            if name not in lists:
                self.domains.pop(name, None)
                for gauge in (
                    metrics.FEDERATION_LIST_IN_FORCE,
                    metrics.FEDERATION_LIST_VERSION,
                    metrics.FEDERATION_LIST_EXPIRES,
                    metrics.FEDERATION_LIST_DOMAINS,
                ):
                    gauge.remove(name)  # fmt: skip
                log.info("%s no longer takes its domains from a federation list", name)
        fresh = [name for name in lists if name not in self._sources]
        await asyncio.gather(*(self._start(name, lists[name]) for name in fresh))

    def refresh_now(self) -> None:
        """Read every list again now (SIGHUP)."""
        for wake in self._wake.values():
            wake.set()

    async def stop(self) -> None:
        for name in list(self._sources):
            await self._stop(name)

    async def _start(self, name: str, source: FederationListSource) -> None:
        newly = name not in self.domains
        self._sources[name] = source
        self._keys[name] = public_key(source.public_key)
        self._failed[name] = False
        before = self.domains.get(name)
        await self._load_stored(name)
        await self._refresh(name)
        now = self.domains[name] or frozenset()
        if newly:
            await self.on_refused(name, None)
        elif before is not None and before - now:
            await self.on_refused(name, before - now)
        self._wake[name] = asyncio.Event()
        self._tasks[name] = supervise(f"federation-list:{name}", lambda: self._run(name), log)

    async def _stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._sources.pop(name, None)
        self._wake.pop(name, None)

    async def _load_stored(self, name: str) -> None:
        """The last list taken, from the store: its version is the floor; the list itself is
        in force again when the configured key verifies it and it has not expired."""
        self._floor[name], self._last[name] = 0, None
        stored = await self.store.federation_list(name)
        taken = self._adopt(name, stored) if stored is not None else None
        valid = taken is not None and taken.expires > self.clock()
        self.domains[name] = taken.domains if taken is not None and valid else None
        self._gauges(name)

    def _adopt(self, name: str, stored: StoredList) -> FederationList | None:
        """A list kept in the store (by this instance before, or by another one): its version
        becomes the floor, and the list the last one taken if the configured key verifies it."""
        self._floor[name] = max(self._floor[name], stored.version)
        source = self._sources[name]
        try:
            taken = read(stored.token, self._keys[name], max(source.max_bytes, len(stored.token)))
        except ListRefused as e:
            log.warning("The federation list of %s kept in the store (version %d) is not taken: "
                        "%s", name, stored.version, e)  # fmt: skip
            return None
        self._last[name] = taken
        return taken

    async def _run(self, name: str) -> None:
        while True:
            wake = self._wake[name]
            try:
                await asyncio.wait_for(wake.wait(), self._delay(name))
            except TimeoutError:
                pass
            wake.clear()
            await self._refresh(name)

    def _delay(self, name: str) -> float:
        """Until the next read: ``refresh`` (sooner after a failure), or the expiry of the
        list in force if that comes first."""
        source = self._sources[name]
        delay = min(source.refresh, RETRY_AFTER_FAILURE) if self._failed[name] else source.refresh
        last = self._last[name]
        if last is not None and self.domains[name] is not None:
            left = (last.expires - self.clock()).total_seconds() + EXPIRY_MARGIN
            delay = min(delay, max(left, 0.0))
        return delay

    async def _refresh(self, name: str) -> None:
        """One read of the network's list: taken, or refused with the last one kept."""
        await self._expire(name)
        stored = await self.store.federation_list(name)
        if stored is not None and stored.version > self._floor[name]:
            kept = self._adopt(name, stored)  # another instance took a newer one
            if kept is not None and kept.expires > self.clock():
                await self._take(name, kept)
        source, key = self._sources[name], self._keys[name]
        try:
            token = await fetch(source)
            candidate = read(token, key, source.max_bytes)
            new = admit(candidate, now=self.clock(), last=self._last[name],
                        floor=self._floor[name])  # fmt: skip
        except ListRefused as e:
            self._failed[name] = True
            self._refused(name, e)
            return
        self._failed[name] = False
        if new:
            text = token.decode("ascii").strip()
            if not await self.store.save_federation_list(name, candidate.version, text):
                log.info("Federation list of %s: version %d was already kept (another "
                         "instance read it)", name, candidate.version)  # fmt: skip
            await self._take(name, candidate)

    async def _take(self, name: str, taken: FederationList) -> None:
        before = self.domains[name]
        self._last[name], self._floor[name] = taken, taken.version
        self.domains[name] = taken.domains
        self._gauges(name)
        dropped = before - taken.domains if before is not None else frozenset()
        log.info(
            "Federation list of %s: version %d in force (%d domain(s), expires %s)%s",
            name,
            taken.version,
            len(taken.domains),
            taken.expires.isoformat(),
            f"; no longer listed: {', '.join(sorted(dropped))}" if dropped else "",
        )
        if dropped:
            await self.on_refused(name, dropped)

    async def _expire(self, name: str) -> None:
        """The list in force has expired: no domain of the network is accepted any more."""
        last, before = self._last[name], self.domains[name]
        if last is None or before is None or last.expires > self.clock():
            return
        self.domains[name] = None
        self._gauges(name)
        log.error("Federation list of %s: version %d expired at %s and no newer valid list "
                  "came: nobody of %s is bridged out until one does", name, last.version,
                  last.expires.isoformat(), name)  # fmt: skip
        await self.on_refused(name, before)

    def _refused(self, name: str, refusal: ListRefused) -> None:
        metrics.FEDERATION_LIST_REFUSED.labels(name, refusal.problem.value).inc()
        last = self._last[name]
        if self.domains[name] is not None and last is not None:
            kept = f"version {last.version} stays in force"
        else:
            kept = f"none is in force: nobody of {name} is bridged out"
        log.error("Federation list of %s refused (%s): %s; %s", name, refusal.problem.value,
                  refusal.detail, kept)  # fmt: skip

    def _gauges(self, name: str) -> None:
        in_force = self.domains[name] is not None
        last = self._last[name]
        metrics.FEDERATION_LIST_IN_FORCE.labels(name).set(1 if in_force else 0)
        metrics.FEDERATION_LIST_VERSION.labels(name).set(last.version if last else 0)
        metrics.FEDERATION_LIST_EXPIRES.labels(name).set(
            last.expires.timestamp() if last and in_force else 0
        )
        metrics.FEDERATION_LIST_DOMAINS.labels(name).set(len(self.domains[name] or ()))
