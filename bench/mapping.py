"""``python -m bench.mapping CONFIG``: load and validate a (large) config in this fresh
interpreter, then time the per-event lookups of the router and connectors; prints JSON.

Kept apart from the rest of the benchmark, with nothing imported but the bridge's own config,
router and directory, so the peak RSS it reports is that of loading the mapping, not of the
benchmark's HTTP clients and test harness.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOOKUP_CALLS = 200_000


def per_call_ns(fn: Callable[..., object], args: list[tuple[Any, ...]]) -> float:
    start = time.perf_counter_ns()
    for a in args:
        fn(*a)
    return (time.perf_counter_ns() - start) / len(args)


def load_and_lookup(path: Path) -> dict[str, Any]:
    from bridge.config.load import load_config

    started = time.perf_counter()
    config = load_config(path)
    load_s = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    from bridge.directory import RoomDirectory
    from bridge.events import Sender
    from bridge.router import known_sender

    directory = RoomDirectory()
    for link in config.links:
        for network in link.rooms:
            directory.bind(link.id, network, f"!{link.id}-{network}:{network}.test")
    rng = random.Random(5)
    people = [rng.choice(config.people) for _ in range(LOOKUP_CALLS)]
    links = [rng.choice(config.links) for _ in range(LOOKUP_CALLS)]
    senders = [
        (config, Sender(network=network, user_id=account, display_name="x"))
        for person in people
        for network, account in list(person.accounts.items())[:1]
    ]
    return {
        "links": len(config.links),
        "people": len(config.people),
        "load_s": load_s,
        "peak_rss_mb": rss_mb,
        "lookup_ns": {
            "known_sender (person_by_account)": per_call_ns(known_sender, senders),
            "config.person": per_call_ns(config.person, [(p.id,) for p in people]),
            "config.link": per_call_ns(config.link, [(lk.id,) for lk in links]),
            "directory.link_for": per_call_ns(
                directory.link_for, [("bund", f"!{lk.id}-bund:bund.test") for lk in links]
            ),
            "directory.room_for": per_call_ns(
                directory.room_for, [(lk.id, "tchap") for lk in links]
            ),
        },
    }


if __name__ == "__main__":
    print(json.dumps(load_and_lookup(Path(sys.argv[1]))))
