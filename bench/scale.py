"""Scale of the mapping: a generated config with many links and people.

Measured:
- load and validate (`bridge.config.load_config`) and the peak RSS it needs, and the per-event
  lookups of the router and connectors, in a fresh interpreter per run (`bench.mapping`);
- time from ``passerelle run`` to ``/_passerelle/ready`` = 200 with a SQLite store, on the real
  homeservers of the benchmark world.

Ready needs every link's room set up on its homeserver. Creating 20,000 real rooms would take
Synapse on this machine far longer than the whole benchmark, so the generated links use
``create:`` rooms whose IDs are pre-seeded in the store, as after the bridge's first run created
them: the restart of a bridge that already serves 10,000 links. Every link has a room ID of its
own on each network (10,000 distinct IDs per homeserver, as in real use): the first
`POOL_ROOMS` are real rooms the bridge bot created beforehand, the others well-formed IDs of
rooms that do not exist. The store holds no facts of these rooms (encryption, access rule), so
a bridge that asked the homeserver about each room at start would do so 20,000 times: the
requests the bridge made by ready are counted from its own metrics
(``bridge_matrix_api_calls_total``) and printed; the catch-up's timeline reads
(``getMessages``), which only begin once the rooms are set up, are counted apart. Ready is
measured twice: with ``tchap`` as a Tchap network (whose rooms have an access rule to check) and
as a plain Matrix network.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from mautrix.util.async_db import Connection
from prometheus_client.parser import text_string_to_metric_families

from bench.cost import peak_rss_mb
from bench.stats import median
from bench.world import UNRESTRICTED, BenchWorld, head_yaml, networks_yaml
from tests.harness import BridgeProcess
from tests.harness.bridge import REPO_ROOT

POOL_ROOMS = 100
READY_TIMEOUT = 600.0


def people_yaml(count: int) -> str:
    """People with an account on one network (90 %) or on both (10 %), Tchap-style IDs."""
    out = ["people:\n"]
    for i in range(count):
        out.append(f"  - id: p{i}\n    name: Person {i}\n    org: Org{i % 40}\n    accounts:\n")
        if i % 10 != 1:
            out.append(f'      bund: "@person{i}:bund.test"\n')
        if i % 10 != 0:
            out.append(f'      tchap: "@person.{i}-agency{i % 40}.gouv.fr:tchap.test"\n')
    return "".join(out)


def links_yaml(count: int, people: int) -> str:
    """Links with a bridge-created room on each network and four people to invite."""
    out = ["links:\n"]
    for i in range(count):
        invited = ", ".join(f"p{(i * 4 + k) % people}" for k in range(4))
        out.append(
            f"  - id: wg{i}\n    people: [{invited}]\n    rooms:\n"
            f"      bund:\n        create:\n          name: Working group {i}\n"
            f"      tchap:\n        create:\n          name: Groupe de travail {i}\n"
        )
    return "".join(out)


def write_config(path: Path, world: BenchWorld, links: int, people: int, flavour: str) -> None:
    """The scale config: the world's networks and tokens, so its homeservers accept it."""
    path.write_text(
        head_yaml(path.with_suffix(".db"), world.ports)
        + networks_yaml(world.ports, world.tokens, flavour)
        + people_yaml(people)
        + links_yaml(links, people)
    )


def run_child(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.mapping", str(path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- ready on the real homeservers ---------------------------------------------------------------


async def _pool(hs_url: str, as_token: str, tchap: bool, count: int) -> list[str]:
    """Real rooms created by the bridge bot, ``count`` of them, a few requests at a time."""
    gate = asyncio.Semaphore(4)
    body: dict[str, Any] = {
        "preset": "private_chat",
        "initial_state": [UNRESTRICTED] if tchap else [],
    }
    headers = {"Authorization": f"Bearer {as_token}"}

    async def one(session: aiohttp.ClientSession) -> str:
        async with gate, session.post(f"{hs_url}/_matrix/client/v3/createRoom",
                                      json=body) as resp:  # fmt: skip
            resp.raise_for_status()
            return str((await resp.json())["room_id"])

    async with aiohttp.ClientSession(headers=headers) as session:
        return list(await asyncio.gather(*(one(session) for _ in range(count))))


def room_ids(links: int, pool: list[str], server: str) -> list[str]:
    """A distinct room ID per link: the pool's real rooms first, then made-up ones."""
    return pool[:links] + [f"!bench{i:06d}scale:{server}" for i in range(len(pool), links)]


async def seed_store(database: Path, links: int, pools: dict[str, list[str]]) -> None:
    """The created rooms of every link, as the bridge's first run would have stored them."""
    from bridge.store import Store

    store = await Store.open(f"sqlite:{database}")
    try:
        conn: Connection
        async with store.db.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO created_room (link_id, network, room_id) VALUES ($1, $2, $3)",
                [
                    (f"wg{i}", net, room_id)
                    for net, pool in pools.items()
                    for i, room_id in enumerate(room_ids(links, pool, f"{net}.test"))
                ],
            )
    finally:
        await store.close()


async def homeserver_requests(bridge: BridgeProcess) -> dict[str, int]:
    """The bridge's requests to its homeservers so far, by name (its metrics)."""
    async with aiohttp.ClientSession() as session, session.get(
        f"http://{bridge.host}:{bridge.port}/metrics"
    ) as resp:  # fmt: skip
        resp.raise_for_status()
        text = await resp.text()
    calls: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "bridge_matrix_api_calls_total" and sample.value:
                calls[sample.labels["method"]] = int(sample.value)
    return calls


async def time_ready(config_path: Path, workdir: Path, port: int) -> dict[str, Any]:
    bridge = BridgeProcess(config_path, workdir, port=port)
    started = time.monotonic()
    await bridge.start(timeout=READY_TIMEOUT)
    ready_s = time.monotonic() - started
    assert bridge.proc is not None
    calls = await homeserver_requests(bridge)
    rss = peak_rss_mb(bridge.proc.pid)
    await bridge.astop()
    catch_up = calls.pop("getMessages", 0)
    return {"ready_s": ready_s, "bridge_peak_rss_mb": rss, "requests": sum(calls.values()),
            "requests_by_name": calls, "catch_up_requests": catch_up}  # fmt: skip


def measure_loading(
    world: BenchWorld, workdir: Path, links: int, people: int, repeats: int
) -> dict[str, Any]:
    """Write the configs, then load them in fresh interpreters (median of ``repeats``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"links": links, "people": people, "pool_rooms": POOL_ROOMS,
                               "rooms": 2 * links}  # fmt: skip
    configs = {flavour: workdir / f"scale-{flavour}.yaml" for flavour in ("tchap", "matrix")}
    for flavour, path in configs.items():
        write_config(path, world, links, people, flavour)
    results["config_mb"] = configs["tchap"].stat().st_size / 2**20
    children = [run_child(configs["tchap"]) for _ in range(repeats)]
    results["load_runs"] = children
    results["load_s"] = median([c["load_s"] for c in children])
    results["peak_rss_mb"] = median([c["peak_rss_mb"] for c in children])
    results["lookup_ns"] = {
        name: median([c["lookup_ns"][name] for c in children]) for name in children[0]["lookup_ns"]
    }
    return results


async def measure(world: BenchWorld, workdir: Path, links: int, people: int,
                  repeats: int) -> dict[str, Any]:  # fmt: skip
    results = await asyncio.to_thread(measure_loading, world, workdir, links, people, repeats)
    await world.bridge.astop()  # the scale bridge takes its port (the registrations' URL)
    pools = {
        "bund": await _pool(world.bund.url, world.tokens["bund_as"], False, POOL_ROOMS),
        "tchap": await _pool(world.tchap.url, world.tokens["tchap_as"], True, POOL_ROOMS),
    }
    for flavour in ("tchap", "matrix"):
        path = workdir / f"scale-{flavour}.yaml"
        await seed_store(path.with_suffix(".db"), links, pools)
        runs = [await time_ready(path, workdir, world.bridge.port) for _ in range(repeats)]
        results[f"ready_{flavour}"] = {
            "runs": runs,
            "ready_s": median([r["ready_s"] for r in runs]),
            "bridge_peak_rss_mb": median([r["bridge_peak_rss_mb"] for r in runs]),
            "requests": median([r["requests"] for r in runs]),
            "catch_up_requests": median([r["catch_up_requests"] for r in runs]),
        }
    return results
