"""Which files the bridge fetches for XMPP messages: the URL and address policy (pure), and
`Files.fetch` against real HTTP servers on loopback (redirects, names resolving to loopback,
size and time budgets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import ip_network
from typing import cast

import pytest
from aiohttp import web

from bridge.connector import DeliveryError
from connectors.xmpp import files as files_module
from connectors.xmpp.component import Component
from connectors.xmpp.fetch_policy import FilePolicy, address_refusal, url_refusal
from connectors.xmpp.files import Files
from tests.harness import free_port

UPLOADS = FilePolicy((("xmpp.example.org", None), ("*.xmpp.example.org", None)))


@pytest.mark.parametrize(
    "url",
    [
        "https://upload.xmpp.example.org/share/abc/report.pdf",
        "http://xmpp.example.org:5280/file_share/x.png",
        "https://UPLOAD.Xmpp.Example.Org./x",  # case and a trailing dot do not matter
    ],
)
def test_urls_on_the_file_hosts_are_fetched(url: str) -> None:
    assert url_refusal(url, UPLOADS) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1", "malformed URL"),
        ("ftp://upload.xmpp.example.org/x", "not an http"),
        ("http:///x", "no host"),
        ("https://evil.example/x", "not among the network's file_hosts"),
        ("https://xmpp.example.org.evil.example/x", "not among"),
        ("https://evilxmpp.example.org/x", "not among"),
        ("http://upload.xmpp.example.org@127.0.0.1/x", "127.0.0.1 port 80 is not among"),
        ("http://localhost:8008/_matrix/client/versions", "localhost port 8008 is not among"),
        ("http://a b.xmpp.example.org/x", "is not a host name"),
    ],
)
def test_urls_elsewhere_are_refused_with_the_reason(url: str, reason: str) -> None:
    refusal = url_refusal(url, UPLOADS)
    assert refusal is not None and reason in refusal


LOOPBACK_HOSTS = FilePolicy(
    (("127.0.0.1", 5280), ("::ffff:7f00:1", None), ("::7f00:1", None), ("64:ff9b::7f00:1", None),
     ("2002:7f00:1::", None), ("::", None), ("10.1.2.3", None))
)  # fmt: skip


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:5280/x", "127.0.0.1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/x", "127.0.0.1 is a loopback address"),  # IPv4-mapped
        ("http://[::127.0.0.1]/x", "127.0.0.1 is a loopback address"),  # IPv4-compatible
        ("http://[64:ff9b::127.0.0.1]/x", "127.0.0.1 is a loopback address"),  # NAT64
        ("http://[2002:7f00:1::]/x", "127.0.0.1 is a loopback address"),  # 6to4
        ("http://[::]/x", ":: is unspecified"),
        ("http://10.1.2.3/x", "10.1.2.3 is a private address"),
    ],
)
def test_ip_literal_hosts_are_checked_as_addresses(url: str, reason: str) -> None:
    assert url_refusal(url, LOOPBACK_HOSTS) == reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("fe80::1%eth0", "fe80::1%eth0 is a link-local address"),
        ("192.168.1.10", "192.168.1.10 is a private address"),
        ("fd12::1", "fd12::1 is a private address"),
        ("100.64.0.1", "100.64.0.1 is not a public address"),
        ("0.0.0.0", "0.0.0.0 is unspecified"),
        ("224.0.0.251", "224.0.0.251 is multicast"),
        ("240.0.0.1", "240.0.0.1 is a private address"),
        ("not-an-ip", "not-an-ip is not an IP address"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert address_refusal(address, UPLOADS) == reason


def test_public_addresses_and_listed_private_networks_are_allowed() -> None:
    assert address_refusal("192.0.43.10", UPLOADS) is None
    assert address_refusal("2a00:1450:4001:80b::200e", UPLOADS) is None
    internal = FilePolicy(UPLOADS.hosts, (ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32")))
    assert address_refusal("10.20.30.40", internal) is None
    assert address_refusal("::ffff:127.0.0.1", internal) is None
    assert address_refusal("127.0.0.2", internal) == "127.0.0.2 is a loopback address"
    everything = FilePolicy(UPLOADS.hosts, (ip_network("0.0.0.0/0"),))
    assert address_refusal("0.0.0.0", everything) == "0.0.0.0 is unspecified"


# -- fetching, against real HTTP servers --------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An HTTP server on 127.0.0.1 serving one handler for every path, counting requests."""

    def __init__(self, handler: Handler) -> None:
        self.port = free_port()
        self.requests: list[str] = []
        self._handler = handler
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        return await self._handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/file.bin", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


Servers = Callable[[Handler], Awaitable[Server]]


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    started: list[Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def open_files(*hosts: tuple[str, int | None], loopback: bool = True) -> Files:
    private = (ip_network("127.0.0.1/32"),) if loopback else ()
    files = Files(cast(Component, None), "xmpp.test", None, 1000, FilePolicy(hosts, private))
    await files.open()
    return files


async def body(request: web.Request) -> web.Response:
    return web.Response(body=b"the file")


async def test_a_file_on_an_allowed_host_is_fetched(servers: Servers) -> None:
    upload = await servers(body)
    files = await open_files(("127.0.0.1", upload.port))
    try:
        assert await files.fetch(upload.url()) == b"the file"
    finally:
        await files.close()


async def test_redirects_are_followed_only_to_allowed_hosts(
    servers: Servers,
) -> None:
    secret = await servers(body)  # e.g. the bridge's own /metrics

    async def to_secret(request: web.Request) -> web.Response:
        raise web.HTTPFound(secret.url("/metrics"))

    async def onwards(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/final" if request.path == "/hop3" else "/hop3")

    upload = await servers(to_secret)
    chain = await servers(onwards)
    files = await open_files(("127.0.0.1", upload.port), ("127.0.0.1", chain.port))
    try:
        with pytest.raises(DeliveryError, match="not following a redirect") as refused:
            await files.fetch(upload.url())
        assert refused.value.permanent and secret.requests == []
        with pytest.raises(DeliveryError, match="more than 3 redirects"):
            await files.fetch(chain.url("/hop1"))
        assert len(chain.requests) == 4
    finally:
        await files.close()


async def test_a_name_resolving_to_loopback_is_refused_where_it_is_connected(
    servers: Servers,
) -> None:
    server = await servers(body)
    files = await open_files(("localhost", server.port), ("127.0.0.1", server.port),
                             loopback=False)  # fmt: skip
    try:
        assert files.refusal(server.url(host="localhost")) is None  # the URL alone looks fine
        with pytest.raises(DeliveryError, match="resolves to no allowed address") as refused:
            await files.fetch(server.url(host="localhost"))
        assert refused.value.permanent and server.requests == []
        with pytest.raises(DeliveryError, match="loopback address"):  # an IP literal as well
            await files.fetch(server.url())
    finally:
        await files.close()


async def test_files_beyond_the_size_or_time_budget_are_refused(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the cap counts what arrives
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * 200)
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(body=b"late")

    big_server, slow_server = await servers(big), await servers(slow)
    files = await open_files(("127.0.0.1", None))
    monkeypatch.setattr(files_module, "FETCH_TIMEOUT", 0.2)
    try:
        with pytest.raises(DeliveryError, match="larger than 1000 bytes"):
            await files.fetch(big_server.url())
        with pytest.raises(DeliveryError, match="took over"):
            await files.fetch(slow_server.url())
    finally:
        await files.close()
