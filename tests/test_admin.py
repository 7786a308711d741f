"""The admin API and the status page over real HTTP, on the gateway's own listener (its
connectors are not started: only who gets in, and in which language, is tested here; the page
in a real browser against real homeservers is in `tests.test_e2e_status`)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.admin import SESSION_COOKIE, session_value, valid_session
from bridge.app import Gateway
from bridge.cli import main
from bridge.config.load import load_config
from bridge.status_page import duration, language
from bridge.store import Store
from tests.offline import networks

TOKEN = "correct-horse-battery-staple"
CONFIG = (
    "{admin}\n"
    + networks()
    + """\
links:
  - id: wg
    rooms: {{bund: "!wg:bund.example", tchap: "!wg:tchap.example"}}
"""
)
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def served(root: Path, admin: str) -> AsyncIterator[TestClient]:
    """A client of the gateway's listener, for a config with this ``admin`` section."""
    (root / "config.yaml").write_text(CONFIG.format(admin=admin))
    config = load_config(root / "config.yaml", {})
    store = await Store.open(f"sqlite:{root}/passerelle.db")
    gateway = Gateway(config, store)
    # Cookies from 127.0.0.1 too, as a browser keeps them.
    client = TestClient(TestServer(gateway.web), cookie_jar=aiohttp.CookieJar(unsafe=True))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await store.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    async with served(tmp_path, f"admin: {{token: {TOKEN}}}") as opened:
        yield opened


async def login_form(client: TestClient) -> str:
    """The CSRF token of the login form, as a browser that just opened the page has it."""
    resp = await client.get("/_passerelle/status")
    assert resp.status == 200
    match = CSRF_FIELD.search(await resp.text())
    assert match is not None
    return match.group(1)


async def log_in(client: TestClient, token: str = TOKEN) -> aiohttp.ClientResponse:
    csrf = await login_form(client)
    return await client.post("/_passerelle/status", data={"token": token, "csrf": csrf},
                             allow_redirects=False)  # fmt: skip


async def test_without_admin_section_the_api_and_the_page_are_not_there(tmp_path: Path) -> None:
    async with served(tmp_path, "") as client:
        for method, path in (("GET", "/_passerelle/admin/status"), ("GET", "/_passerelle/status"),
                             ("POST", "/_passerelle/status")):  # fmt: skip
            resp = await client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status == 404, path


async def test_the_api_answers_only_the_admin_token(client: TestClient) -> None:
    for header in (None, "Bearer wrong-token-of-same-size!", f"Basic {TOKEN}", TOKEN,
                   f"Bearer {TOKEN}x", "Bearer"):  # fmt: skip
        headers = {"Authorization": header} if header else {}
        resp = await client.get("/_passerelle/admin/status", headers=headers)
        assert resp.status == 401, header
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in await resp.text()
    right = {"Authorization": f"Bearer {TOKEN}"}
    resp = await client.get("/_passerelle/admin/status", headers=right)
    assert resp.status == 200
    answer = await resp.json()
    assert answer["networks"]["bund"]["state"] == "standby"  # not started here
    assert answer["links"]["wg"]["tchap"]["address"] == "!wg:tchap.example"
    assert answer["links"]["wg"]["tchap"]["backlog"] == 0


async def test_logging_in_gives_a_session_cookie_that_is_not_the_token(
    client: TestClient,
) -> None:
    resp = await log_in(client, "not-the-token-at-all")
    assert resp.status == 401
    assert "This is not the admin token." in await resp.text()
    assert SESSION_COOKIE not in {c.key for c in client.session.cookie_jar}

    resp = await log_in(client)
    assert (resp.status, resp.headers["Location"]) == (303, "status")
    cookie = resp.cookies[SESSION_COOKIE]
    assert TOKEN not in cookie.value
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/_passerelle/status"
    page = await (await client.get("/_passerelle/status")).text()
    assert 'data-link="wg"' in page and 'http-equiv="refresh"' in page

    csrf = CSRF_FIELD.search(page)
    assert csrf is not None
    resp = await client.post("/_passerelle/status/logout", data={"csrf": csrf.group(1)},
                             allow_redirects=False)  # fmt: skip
    assert (resp.status, resp.headers["Location"]) == (303, "../status")
    page = await (await client.get("/_passerelle/status")).text()
    assert 'name="token"' in page and 'data-link="wg"' not in page


async def test_a_form_posted_from_elsewhere_is_refused(client: TestClient) -> None:
    """Another site's page can make the browser post the form, but cannot read or set the
    page's CSRF cookie."""
    resp = await client.post("/_passerelle/status", data={"token": TOKEN, "csrf": "x" * 32},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 403
    assert "The form had expired" in await resp.text()
    assert SESSION_COOKIE not in resp.cookies
    await login_form(client)
    resp = await client.post("/_passerelle/status", data={"token": TOKEN, "csrf": "y" * 32},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 403 and SESSION_COOKIE not in resp.cookies
    resp = await client.post("/_passerelle/status", data={"token": TOKEN, "csrf": "z" * 5000},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 413


async def test_a_forged_or_expired_session_shows_the_login_form(
    client: TestClient,
) -> None:
    past = int(time.time()) - 1
    for value in (session_value(TOKEN, past), session_value("another-admin-token", past + 3600),
                  f"{past + 3600}.{'0' * 64}", "garbage", ""):  # fmt: skip
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: value})
        page = await (await client.get("/_passerelle/status")).text()
        assert 'name="token"' in page and 'data-link="wg"' not in page, value


def test_a_session_ends_with_its_time_or_a_new_token() -> None:
    now = time.time()
    cookie = session_value(TOKEN, int(now) + 60)
    assert valid_session(cookie, TOKEN, now)
    assert not valid_session(cookie, TOKEN, now + 61)
    assert not valid_session(cookie, "a-new-admin-token-after-reload", now)


async def test_the_page_speaks_the_browsers_language(client: TestClient) -> None:
    for accept, label in (("de-DE,de;q=0.9,en;q=0.8", "Admin-Token"),
                          ("fr-FR, fr;q=0.9", "Jeton d’administration"),
                          ("it-IT,it;q=0.9", "Admin token"), (None, "Admin token")):  # fmt: skip
        headers = {"Accept-Language": accept} if accept else {}
        page = await (await client.get("/_passerelle/status", headers=headers)).text()
        assert f'<label for="token">{label}</label>' in page, accept


@pytest.mark.parametrize(("header", "expected"), [
    ("de", "de"), ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
    ("en;q=0.5,de;q=0.9", "de"), ("en-US,de;q=0.9", "en"), ("it, de;q=0.1", "de"), ("*", "en"),
    ("de;q=0, fr;q=0.2", "fr"), ("de;q=abc, fr;q=0.1", "fr"), ("DE-at", "de"), ("", "en"),
    ("fr;q=0.5, de;q=0.5", "fr"),
])  # fmt: skip
def test_language_from_accept_language(header: str, expected: str) -> None:
    assert language(header) == expected


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s, "en") for s in (0, 45, 61, 3600, 7380, 90000)] == [
        "0 s", "45 s", "1 min", "1 h", "2 h 3 min", "1 d 1 h"]  # fmt: skip
    assert duration(2 * 86400, "de") == "2 T."
    assert duration(2 * 86400, "fr") == "2 j"


def test_status_command_without_admin_section_says_what_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG.format(admin=""))
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "-c", str(tmp_path / "config.yaml")])
    assert exit_info.value.code == 1
    assert capsys.readouterr() == ("", (
        f"passerelle status: {tmp_path / 'config.yaml'} has no admin section: "
        "add admin: {token: …} and restart the bridge\n"))  # fmt: skip
