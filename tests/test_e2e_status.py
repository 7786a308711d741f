"""What an admin sees of a running bridge between two real homeservers: ``passerelle status``,
the admin API, the status page in a real headless Chromium, readiness and metrics, while a
homeserver goes down and comes back."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from tests.harness.bridge import REPO_ROOT
from tests.harness.browser import chromium
from tests.harness.expect import body_is, unique
from tests.world import ADMIN_TOKEN, World

pytestmark = pytest.mark.e2e

T = TypeVar("T")


async def passerelle(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``passerelle`` command as an admin runs it."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bridge", *args], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def status_json(config: Path) -> dict[str, Any]:
    done = await passerelle("status", "-c", str(config), "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def until(
    probe: Callable[[], Awaitable[T]],
    wanted: Callable[[T], bool],
    timeout: float = 60,  # noqa: ASYNC109
) -> T:
    """``probe()`` again and again until ``wanted`` says yes; its last answer if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await probe()
        if wanted(answer) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.5)


async def scrape(world: World) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{world.bridge_url}/metrics") as resp:
            return await resp.text()


async def readiness(world: World) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(world.bridge.ready_url) as resp:
            return resp.status, await resp.json()


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus exposition (None when it has no such series)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else None


async def tchap_answers(world: World) -> None:
    """A message crosses to Tchap: the bridge has seen it up (after another test's outage)."""
    text = unique("Tchap da?")
    await world.users["max"].send_text(world.rooms["bund:main"], text)
    await world.users["jean"].wait_for(world.rooms["tchap:main"], body_is(text), timeout=60)


async def test_status_metrics_and_readiness_follow_a_homeserver_down_and_back(
    world: World,
) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    await tchap_answers(world)
    before = await status_json(world.config_path)
    assert before["ready"] is True
    assert {name: n["state"] for name, n in before["networks"].items()} == {
        "bund": "up", "tchap": "up", "tchap-relay": "up"}  # fmt: skip
    main = before["links"]["main"]
    assert main["bund"]["address"] == "#main:bund.test"
    assert main["tchap"]["room"] == world.rooms["tchap:main"]
    assert main["tchap"]["backlog"] == 0
    restricted = before["links"]["restricted"]["tchap"]
    assert restricted["disabled"] and "restricted" in restricted["disabled"]

    await world.tchap.astop()
    text = unique("Tchap fällt gleich aus")
    try:
        await max_.send_text(world.rooms["bund:main"], text)
        down = await until(lambda: status_json(world.config_path), lambda s: (
            s["networks"]["tchap"]["state"] == "down" and s["links"]["main"]["tchap"]["backlog"]
        ))  # fmt: skip
        tchap = down["networks"]["tchap"]
        assert tchap["state"] == "down", tchap
        assert "unreachable" in tchap["reason"]
        assert down["networks"]["bund"]["state"] == "up"
        assert down["links"]["main"]["tchap"]["backlog"] == 1
        assert down["links"]["main"]["tchap"]["oldest_age"] >= 0
        assert down["links"]["main"]["bund"]["backlog"] == 0
        assert text not in json.dumps(down), "the status never shows what people wrote"

        table = await passerelle("status", "-c", str(world.config_path))
        assert table.returncode == 0, table.stderr
        assert re.search(r"^tchap +down +\S.* unreachable", table.stdout, re.M), table.stdout
        assert re.search(r"^ +tchap +#main:tchap.test +1 ", table.stdout, re.M), table.stdout

        metrics = await scrape(world)
        assert sample(metrics, "passerelle_network_up", network="tchap") == 0
        assert sample(metrics, "passerelle_network_up", network="bund") == 1
        assert sample(metrics, "passerelle_network_state", network="tchap", state="down") == 1
        assert sample(metrics, "passerelle_network_state", network="tchap", state="up") == 0
        assert sample(metrics, "passerelle_queue_backlog", link="main", target="tchap") == 1
        oldest = sample(metrics, "passerelle_queue_oldest_seconds", link="main", target="tchap")
        assert oldest is not None and oldest >= 0

        status, ready = await readiness(world)
        assert status == 200, "a network that is down delays its messages; the bridge is ready"
        assert ready["networks"]["tchap"]["state"] == "down"
        assert "unreachable" in ready["networks"]["tchap"]["unreachable"]
        assert ready["networks"]["tchap"]["problem"] is None
        assert "bund" not in ready["networks"]
    finally:
        await world.tchap.start()

    back = await until(lambda: status_json(world.config_path), lambda s: (
        s["networks"]["tchap"]["state"] == "up" and s["links"]["main"]["tchap"]["backlog"] == 0
    ))  # fmt: skip
    assert back["networks"]["tchap"]["state"] == "up"
    assert back["networks"]["tchap"]["reason"] is None
    assert back["links"]["main"]["tchap"]["backlog"] == 0
    await jean.wait_for(world.rooms["tchap:main"], body_is(text), timeout=60)
    metrics = await scrape(world)
    assert sample(metrics, "passerelle_network_up", network="tchap") == 1
    assert sample(metrics, "passerelle_queue_backlog", link="main", target="tchap") is None
    assert await readiness(world) == (200, {"ready": True})


async def test_status_refuses_a_wrong_token_and_says_when_no_bridge_answers(
    world: World, tmp_path: Path
) -> None:
    config = world.config_path.read_text()
    wrong = world.root / "wrong-admin-token.yaml"  # beside the world's config: same secrets
    wrong.write_text(config.replace("{file: admin-token}", "not-the-admin-token-at-all"))
    done = await passerelle("status", "-c", str(wrong))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"passerelle status: the bridge at {world.bridge_url}/_passerelle/admin/status refused "
        "the admin token: does it run with this config?\n"
    )
    assert "not-the-admin-token-at-all" not in world.bridge.log_text()
    assert ADMIN_TOKEN not in world.bridge.log_text()

    elsewhere = world.root / "no-bridge.yaml"
    port = world.bridge.port
    elsewhere.write_text(config.replace(f"port: {port}", "port: 9"))  # discard: nobody there
    done = await passerelle("status", "-c", str(elsewhere), "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "passerelle status: no bridge answers at http://127.0.0.1:9/_passerelle/admin/status "
        "(Connection refused): is it running?\n"
    )

    async with aiohttp.ClientSession() as session:
        url = f"{world.bridge_url}/_passerelle/admin/status"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}):
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"] == "Bearer"
        async with session.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
            assert resp.status == 200
            assert set((await resp.json())["networks"]) == {"bund", "tchap", "tchap-relay"}


async def test_status_page_in_chromium_shows_a_homeserver_down_and_back(world: World) -> None:
    await tchap_answers(world)
    async with chromium() as browser:
        context = await browser.new_context(locale="de-DE", viewport={"width": 412, "height": 915})
        page = await context.new_page()
        await page.goto(f"{world.bridge_url}/_passerelle/status")
        assert await page.locator("label[for=token]").inner_text() == "Admin-Token"

        await page.fill("#token", "falsches-token")
        await page.click("button[type=submit]")
        assert await page.locator(".error").inner_text() == "Das ist nicht das Admin-Token."

        await page.fill("#token", ADMIN_TOKEN)
        await page.click("button[type=submit]")
        main = page.locator('article[data-link="main"]')
        await main.wait_for()
        assert await page.locator("h1").inner_text() == "Passerelle – Status"
        assert "#main:tchap.test" in await main.inner_text()
        tchap = page.locator('li.network[data-network="tchap"]')
        assert await tchap.get_attribute("data-state") == "up"
        assert "erreichbar" in await tchap.inner_text()

        session = next(c for c in await context.cookies() if c["name"] == "passerelle_session")
        assert ADMIN_TOKEN not in session["value"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"

        await world.tchap.astop()
        text = unique("Tchap ist weg")
        try:
            await world.users["max"].send_text(world.rooms["bund:main"], text)
            down = page.locator('li.network[data-network="tchap"][data-state="down"]')
            await down.wait_for(timeout=30_000)  # the page reloads itself every few seconds
            assert "nicht erreichbar" in await down.inner_text()
            waiting = main.locator('li[data-network="tchap"] .waiting')
            await waiting.wait_for(timeout=30_000)
            assert (await waiting.inner_text()).startswith("1 wartend, die älteste seit")
            # What the test saw, for a failed run (and the README's picture).
            await page.screenshot(path=world.root / "status-page.png", full_page=True)
        finally:
            await world.tchap.start()
        up = page.locator('li.network[data-network="tchap"][data-state="up"]')
        await up.wait_for(timeout=60_000)
        await main.locator('li[data-network="tchap"] .waiting').wait_for(
            state="detached", timeout=30_000
        )
        await context.close()
    await world.users["jean"].wait_for(world.rooms["tchap:main"], body_is(text), timeout=60)
