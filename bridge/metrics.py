"""Prometheus metrics the bridge exposes on ``/metrics`` (and the benchmarks read).

Counters and the histogram move as events pass. The state gauges (each network's connection
state, each queue's backlog and oldest age) are set from a `bridge.status.Status` taken at each
scrape (`observe`): only queues with something waiting have a series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from bridge.status import Status

RECEIVED = Counter(
    "passerelle_events_received_total", "Events accepted from a network", ["network"]
)
DUPLICATES = Counter(
    "passerelle_events_duplicate_total", "Events recognised as already bridged", ["network"]
)
DELIVERED = Counter("passerelle_events_delivered_total", "Events delivered", ["network"])
RETRIED = Counter("passerelle_delivery_retries_total", "Delivery attempts that failed", ["network"])
FAILED = Counter(
    "passerelle_events_undeliverable_total", "Events given up after the last retry", ["network"]
)
OUTBOX = Gauge("passerelle_outbox_queues", "Link/target queues with a worker running")
ARRIVAL_TO_SEND = Histogram(
    "passerelle_arrival_to_send_seconds",
    "From an event's arrival at the bridge to the outbound request being issued",
    ["network"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NETWORK_UP = Gauge(
    "passerelle_network_up",
    "1 while the network passes messages; 0 while it is down, refuses the bridge's credentials "
    "or is still starting (no series where another instance runs it)",
    ["network"],
)
NETWORK_STATE = Gauge(
    "passerelle_network_state",
    "1 for the network's current state (up, down, refused, starting, standby), 0 for the others",
    ["network", "state"],
)
QUEUE_BACKLOG = Gauge(
    "passerelle_queue_backlog",
    "Items waiting in a link's queue to a network (only queues with something waiting)",
    ["link", "target"],
)
QUEUE_OLDEST = Gauge(
    "passerelle_queue_oldest_seconds",
    "Seconds the oldest item of a link's queue to a network has waited",
    ["link", "target"],
)
EXPIRED = Counter(
    "passerelle_events_expired_total",
    "Events given up because their network stayed unreachable for delivery.give_up_after",
    ["network"],
)


def observe(status: Status) -> None:
    """Set the state gauges from ``status``; series of queues that emptied since go away."""
    from bridge.status import State  # the status module imports the outbox, which imports this

    NETWORK_UP.clear()
    NETWORK_STATE.clear()
    for network in status.networks:
        for state in State:
            NETWORK_STATE.labels(network.name, state.value).set(int(state is network.state))
        if network.state is not State.STANDBY:
            NETWORK_UP.labels(network.name).set(int(network.state is State.UP))
    QUEUE_BACKLOG.clear()
    QUEUE_OLDEST.clear()
    for queue in status.queues:
        QUEUE_BACKLOG.labels(queue.link_id, queue.target).set(queue.size)
        QUEUE_OLDEST.labels(queue.link_id, queue.target).set(max(0.0, status.at - queue.oldest))


FEDERATION_LIST_REFUSED = Counter(
    "passerelle_federation_list_refused_total",
    "Federation lists read and refused (the last good one stays in force), by reason",
    ["network", "reason"],
)
FEDERATION_LIST_IN_FORCE = Gauge(
    "passerelle_federation_list_in_force",
    "1 while a valid federation list is in force; 0 while none is (nobody of the network is "
    "bridged out)",
    ["network"],
)
FEDERATION_LIST_VERSION = Gauge(
    "passerelle_federation_list_version", "Version of the last federation list taken", ["network"]
)
FEDERATION_LIST_EXPIRES = Gauge(
    "passerelle_federation_list_expires_timestamp_seconds",
    "When the federation list in force expires (Unix time; 0 while none is in force)",
    ["network"],
)
FEDERATION_LIST_DOMAINS = Gauge(
    "passerelle_federation_list_domains",
    "Domains the federation list in force names",
    ["network"],
)
