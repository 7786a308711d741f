"""The federation list in force (`bridge.federation.lists.FederationLists`) on a real store
(SQLite and PostgreSQL): a forged, an expired and a rolled-back list are refused with a log
line and the alert metric, the last good list stays in force, also across a restart, and a list
that expires in force lets nobody out until a newer one comes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge.config.model import FederationListSource
from bridge.federation.lists import FederationLists
from bridge.store import Store
from tests.federation_keys import key_pair, signed_list
from tests.harness.postgres import Opener


class Refusals:
    """What the lists tell the gateway: (network, domains no longer accepted)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[str] | None]] = []

    async def __call__(self, network: str, dropped: frozenset[str] | None) -> None:
        self.calls.append((network, dropped))


def refused_count(network: str, reason: str) -> float:
    labels = {"network": network, "reason": reason}
    return REGISTRY.get_sample_value("passerelle_federation_list_refused_total", labels) or 0.0


def gauge(name: str, network: str) -> float | None:
    return REGISTRY.get_sample_value(f"passerelle_federation_list_{name}", {"network": network})


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def started(store: Store, path: Path, refusals: Refusals, network: str) -> FederationLists:
    lists = FederationLists(store, refusals)
    source = FederationListSource(public_key=key_pair()[1], file=path, refresh=3600)
    await lists.use({network: source})
    return lists


async def reread(lists: FederationLists, network: str, reason: str) -> None:
    """Read the list again now (as on SIGHUP) and wait until it was refused for ``reason``."""
    before = refused_count(network, reason)
    lists.refresh_now()
    await until(lambda: refused_count(network, reason) == before + 1)


@pytest.fixture
def network(request: pytest.FixtureRequest) -> str:
    """A network name of this test's own, so that the metrics it reads are its own."""
    return f"net{abs(hash(request.node.nodeid)) % 10**8}"


async def test_forged_expired_and_rolled_back_lists_leave_the_last_good_one_in_force(
    open_store: Opener, tmp_path: Path, network: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "passerelle.federation")
    path = tmp_path / "list.jws"
    path.write_text(signed_list(2, ["tchap.example", "agent.example"]))
    refusals = Refusals()
    lists = await started(await open_store(), path, refusals, network)
    assert lists.domains == {network: {"tchap.example", "agent.example"}}
    assert refusals.calls == [(network, None)]  # newly listed: its ghosts are checked
    assert gauge("in_force", network) == 1 and gauge("version", network) == 2

    header, _, signature = signed_list(2, ["tchap.example"]).split(".")
    _, payload, _ = signed_list(9, ["tchap.example", "agent.example", "evil.example"]).split(".")
    path.write_text(f"{header}.{payload}.{signature}")
    await reread(lists, network, "bad_signature")
    path.write_text(signed_list(9, ["evil.example"], datetime.now(UTC) - timedelta(hours=1)))
    await reread(lists, network, "expired")
    path.write_text(signed_list(9, ["evil.example"], key="someone else"))
    await reread(lists, network, "bad_signature")
    assert lists.domains == {network: {"tchap.example", "agent.example"}}
    logged = caplog.text
    assert (f"Federation list of {network} refused (bad_signature): the signature does not "
            "match the configured key (forged, changed after signing, or signed with another "
            "key); version 2 stays in force") in logged  # fmt: skip
    assert f"Federation list of {network} refused (expired): expired at " in logged

    path.write_text(signed_list(3, ["tchap.example"]))
    lists.refresh_now()
    await until(lambda: lists.domains[network] == {"tchap.example"})
    assert refusals.calls[-1] == (network, {"agent.example"})
    assert f"Federation list of {network}: version 3 in force (1 domain(s), expires " in caplog.text
    assert "no longer listed: agent.example" in caplog.text
    await lists.stop()

    # A restart: the store keeps version 3, so version 2 is a rollback even now.
    path.write_text(signed_list(2, ["tchap.example", "agent.example"]))
    lists = await started(await open_store(), path, Refusals(), network)
    assert lists.domains == {network: {"tchap.example"}}
    assert (f"Federation list of {network} refused (rolled_back): version 2 is older than "
            "version 3, the last one taken; version 3 stays in force") in caplog.text  # fmt: skip
    assert gauge("version", network) == 3
    await lists.stop()


async def test_a_list_that_expires_in_force_lets_nobody_out_until_a_newer_one_comes(
    open_store: Opener, tmp_path: Path, network: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "list.jws"
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    path.write_text(signed_list(5, ["tchap.example"], soon))
    refusals = Refusals()
    lists = await started(await open_store(), path, refusals, network)
    assert lists.domains[network] == {"tchap.example"}
    assert gauge("expires_timestamp_seconds", network) == pytest.approx(soon.timestamp())
    await until(lambda: lists.domains[network] is None)
    assert refusals.calls[-1] == (network, {"tchap.example"})
    assert gauge("in_force", network) == 0
    expired = (f"Federation list of {network}: version 5 expired at {soon.isoformat()} and no "
               f"newer valid list came: nobody of {network} is bridged out")  # fmt: skip
    assert expired in caplog.text
    path.write_text(signed_list(6, ["tchap.example"]))
    lists.refresh_now()
    await until(lambda: lists.domains[network] == {"tchap.example"})
    await lists.stop()


async def test_nothing_is_in_force_before_a_first_valid_list_nor_anything_after_it_is_removed(
    open_store: Opener, tmp_path: Path, network: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = refused_count(network, "unreadable")
    lists = await started(await open_store(), tmp_path / "missing.jws", Refusals(), network)
    assert lists.domains == {network: None}
    assert refused_count(network, "unreadable") == before + 1
    assert (f"Federation list of {network} refused (unreadable): cannot read "
            f"{tmp_path / 'missing.jws'}: No such file or directory; none is in force: nobody "
            f"of {network} is bridged out") in caplog.text  # fmt: skip
    await lists.use({})  # the list is taken out of the config: the network is free of it
    assert lists.domains == {} and gauge("in_force", network) is None
    await lists.stop()
