"""Reading a signed federation list from its source (`bridge.federation.source`): an HTTPS
server of its own on loopback (aiohttp, with a certificate from a CA made for the test, given
as ``ca_file``), and files. What the bridge must not do: follow a redirect to another host,
read more than ``max_bytes``, wait longer than ``timeout``, trust a certificate it was not
told to, read from anything but a regular file."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.config.model import FederationListSource
from bridge.federation.document import ListRefused, public_key, read
from bridge.federation.source import fetch
from tests.federation_keys import key_pair, signed_list
from tests.harness import free_port

TOKEN = signed_list(4, ["bund.example", "tchap.example"]).encode()


def certificate(root: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost: (CA file,
    certificate file, key file)."""
    now = datetime.datetime.now(datetime.UTC)

    def make(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
             signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False), critical=True,
            )  # fmt: skip
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]), critical=False)  # fmt: skip
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Passerelle test CA")])
    ca = make("Passerelle test CA", ca_key, ca_name, ca_key, True)
    server = make("127.0.0.1", server_key, ca_name, ca_key, False)
    files = root / "ca.pem", root / "server.pem", root / "server.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    return files


@dataclass
class Server:
    port: int
    ca_file: Path

    def source(self, path: str, **settings: object) -> FederationListSource:
        return FederationListSource(
            public_key=key_pair()[1], url=f"https://127.0.0.1:{self.port}{path}",
            ca_file=self.ca_file, **settings,  # type: ignore[arg-type]
        )  # fmt: skip


async def ok(request: web.Request) -> web.Response:
    return web.Response(body=TOKEN)


async def large(request: web.Request) -> web.Response:
    return web.Response(body=b"A" * 4096)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(body=TOKEN)


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(64):
        await response.write(b"A" * 16384)
    return response


Handler = Callable[[web.Request], Awaitable[web.Response]]


def redirect(location: Callable[[web.Request], str]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(location(request))

    return handler


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    ca_file, cert, key = certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/list.jws", ok)
    app.router.add_get("/moved", redirect(lambda r: "/list.jws"))
    app.router.add_get("/elsewhere", redirect(lambda r: f"https://localhost:{r.url.port}/list.jws"))
    app.router.add_get("/plain", redirect(lambda r: f"http://127.0.0.1:{r.url.port}/list.jws"))
    app.router.add_get("/loop", redirect(lambda r: "/loop"))
    app.router.add_get("/large", large)
    app.router.add_get("/endless", endless)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield Server(port, ca_file)
    await runner.cleanup()


async def refused(source: FederationListSource) -> str:
    with pytest.raises(ListRefused) as refusal:
        await fetch(source)
    return str(refusal.value)


async def test_a_list_is_read_over_https_from_a_server_the_ca_file_vouches_for(
    server: Server,
) -> None:
    token = await fetch(server.source("/list.jws"))
    assert read(token, public_key(key_pair()[1])).domains == {"bund.example", "tchap.example"}
    assert await fetch(server.source("/moved")) == TOKEN  # a redirect on the same host


async def test_a_server_no_trusted_ca_vouches_for_is_not_read(server: Server) -> None:
    source = FederationListSource(public_key=key_pair()[1],
                                  url=f"https://127.0.0.1:{server.port}/list.jws")  # fmt: skip
    reason = await refused(source)
    assert reason.startswith(f"unreadable: cannot read https://127.0.0.1:{server.port}/list.jws")
    assert "CERTIFICATE_VERIFY_FAILED" in reason


async def test_redirects_to_another_host_or_to_plain_http_are_not_followed(server: Server) -> None:
    base = f"https://127.0.0.1:{server.port}"
    assert await refused(server.source("/elsewhere")) == (
        f"unreadable: {base}/elsewhere redirects to another host "
        f"(https://localhost:{server.port}/list.jws)"
    )
    assert await refused(server.source("/plain")) == (
        f"unreadable: {base}/plain redirects to another host "
        f"(http://127.0.0.1:{server.port}/list.jws)"
    )
    assert await refused(server.source("/loop")) == (
        f"unreadable: more than 3 redirects, up to {base}/loop"
    )


async def test_a_list_larger_than_max_bytes_is_not_read_to_its_end(server: Server) -> None:
    base = f"https://127.0.0.1:{server.port}"
    assert await refused(server.source("/large", max_bytes=1024)) == (
        f"too_large: {base}/large is larger than 1024 bytes"
    )
    assert await refused(server.source("/endless", max_bytes=100_000)) == (
        f"too_large: {base}/endless is larger than 100000 bytes"
    )


async def test_a_server_that_does_not_answer_in_time_is_given_up(server: Server) -> None:
    assert await refused(server.source("/slow", timeout=0.5)) == (
        f"unreadable: https://127.0.0.1:{server.port}/slow did not answer within 0.5 s"
    )
    assert (await refused(server.source("/missing"))).endswith("/missing answered 404")


async def test_files_are_read_when_they_are_regular_files_of_at_most_max_bytes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "list.jws"
    path.write_bytes(TOKEN)
    source = FederationListSource(public_key=key_pair()[1], file=path)
    assert await fetch(source) == TOKEN
    small = FederationListSource(public_key=key_pair()[1], file=path, max_bytes=100)
    assert await refused(small) == f"too_large: {path} is larger than 100 bytes"
    missing = FederationListSource(public_key=key_pair()[1], file=tmp_path / "none")
    assert await refused(missing) == (
        f"unreadable: cannot read {tmp_path / 'none'}: No such file or directory"
    )
    os.mkfifo(tmp_path / "fifo")
    fifo = FederationListSource(public_key=key_pair()[1], file=tmp_path / "fifo")
    assert await refused(fifo) == f"unreadable: {tmp_path / 'fifo'} is not a regular file"
