"""The ``kind: email`` network in the config: defaults, link addresses on the mail domain,
secrets, and every problem reported at its place."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bridge.config import load_config
from connectors.email.config import AuthPolicy, EmailNetwork, RelaySecurity
from connectors.matrix.registration import generate_registrations
from tests import configs
from tests.configs import TOKENS_INLINE, errors_of, networks_with_bund
from tests.harness.dns import dkim_keypair

BASE = (
    networks_with_bund(TOKENS_INLINE)
    + """\
  mail:
    kind: email
    domain: Lists.Passerelle.test
    relay: {host: smtp.example}
%(extra)s
people:
  - id: claire
    name: Claire Martin
    accounts: {mail: Claire.Martin@ANSSI.test}
links:
  - id: wg
    people: [claire]
    rooms:
      bund: "!wg:bund.test"
      mail: %(address)s
"""
)


def write(tmp_path: Path, extra: str = "", address: str = "wg@lists.passerelle.test") -> Path:
    indented = textwrap.indent(textwrap.dedent(extra), "    ")
    return configs.write(tmp_path, BASE % {"extra": indented, "address": address})


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), {})
    mail = config.networks["mail"]
    assert isinstance(mail, EmailNetwork)
    assert mail.domain == "lists.passerelle.test"
    assert (mail.inbound.host, mail.inbound.port) == ("127.0.0.1", 2525)
    assert mail.inbound.max_message_bytes == 25 * 1024 * 1024 and mail.inbound.tls_cert is None
    inbound = mail.inbound
    assert (inbound.max_header_bytes, inbound.max_headers, inbound.max_header_field_bytes) == (
        64 * 1024,
        500,
        16 * 1024,
    )
    assert inbound.parse_timeout == 10
    assert (mail.relay.host, mail.relay.port, mail.relay.security) == (
        "smtp.example",
        587,
        RelaySecurity.STARTTLS,
    )
    assert mail.auth_policy is AuthPolicy.REJECT
    assert mail.dkim is None and mail.dns == () and mail.dns_timeout == 5
    assert mail.spool == tmp_path / "mail-spool" / "mail"
    assert mail.domains == ("*",)
    assert config.link("wg").rooms["mail"].room == "wg@lists.passerelle.test"
    # Addresses compare case-insensitively: they are kept lower-case.
    assert config.person_by_account("mail", "claire.martin@anssi.test") is not None


def test_everything_set(tmp_path: Path) -> None:
    keys = dkim_keypair(1024)
    (tmp_path / "dkim.key").write_bytes(keys.private_pem)
    path = write(
        tmp_path,
        """\
        inbound:
          host: 0.0.0.0
          port: 25
          max_message_bytes: 1048576
          max_header_bytes: 32768
          max_headers: 200
          max_header_field_bytes: 8192
          parse_timeout: 2.5
        dkim: {selector: pass2024, key: {file: dkim.key}}
        auth_policy: mark
        dns: ["127.0.0.1:5353", "::1", "[::1]:53", 192.0.2.53]
        dns_timeout: 2s
        spool: /var/lib/passerelle/mail
        spool_days: 2
        org_label: Mail
        name_suffix: " (Mail)"
        allowed_domains: [BMI.bund.de]
    """,
    )
    path.write_text(
        path.read_text().replace(
            "relay: {host: smtp.example}",
            "relay: {host: smtp.example, port: 465, security: tls, username: bridge,"
            " password: {env: SMTP_PASSWORD}}",
        )
    )
    mail = load_config(path, {"SMTP_PASSWORD": "s3cret"}).networks["mail"]
    assert isinstance(mail, EmailNetwork)
    assert mail.relay.security is RelaySecurity.TLS and mail.relay.password == "s3cret"
    assert "s3cret" not in repr(mail)
    assert mail.dkim is not None and mail.dkim.selector == "pass2024"
    assert mail.dns == (("127.0.0.1", 5353), ("::1", 53), ("::1", 53), ("192.0.2.53", 53))
    assert mail.dns_timeout == 2
    assert mail.auth_policy is AuthPolicy.MARK
    assert mail.allowed_domains == ("bmi.bund.de",) and mail.domains == ("bmi.bund.de",)
    assert mail.spool == Path("/var/lib/passerelle/mail") and mail.spool_days == 2
    assert (
        mail.inbound.max_header_bytes,
        mail.inbound.max_headers,
        mail.inbound.max_header_field_bytes,
        mail.inbound.parse_timeout,
    ) == (32768, 200, 8192, 2.5)


def test_link_address_must_be_on_the_mail_domain(tmp_path: Path) -> None:
    path = write(tmp_path, address="wg@elsewhere.test")
    assert errors_of(path) == [
        f'{path}:20:13: links[0].rooms.mail: "wg@elsewhere.test" is not on the network\'s '
        "mail domain lists.passerelle.test"
    ]


def test_problems_are_reported_at_their_place(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END")
    path = write(
        tmp_path,
        """\
        inbound: {tls_cert: cert.pem}
        dkim: {selector: "bad selector", key: {file: bad.key}}
        auth_policy: drop
        dns: [ns.example.org]
        dns_timeout: 1m
    """,
    )
    errors = errors_of(path)
    assert [e.split(": ", 1)[1] for e in errors] == [
        "networks.mail.inbound.tls_key: is required with tls_cert",
        "networks.mail.inbound.tls_cert: no such file: " + str(tmp_path / "cert.pem"),
        'networks.mail.dkim.selector: "bad selector" is not a DKIM selector '
        "(letters, digits, '-', '_')",
        "networks.mail.dkim.key: is not a PEM RSA private key (BEGIN RSA PRIVATE KEY)",
        "networks.mail.auth_policy: must be one of: reject, quarantine, mark",
        'networks.mail.dns[0]: "ns.example.org" is not a nameserver IP address[:port]',
        "networks.mail.dns_timeout: must be at most 30 seconds",
    ]


def test_limits_on_received_mail_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        inbound:
          max_header_bytes: 100
          max_headers: many
          max_header_field_bytes: 0
          parse_timeout: 3600
    """,
    )
    assert [e.split(": ", 1)[1] for e in errors_of(path)] == [
        "networks.mail.inbound.max_header_bytes: must be at least 1024",
        "networks.mail.inbound.max_headers: expected an integer, got a string",
        "networks.mail.inbound.max_header_field_bytes: must be at least 1000",
        "networks.mail.inbound.parse_timeout: must be at most 20 seconds",
    ]


def test_relay_credentials_come_in_pairs_and_secrets_stay_secret(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(
        path.read_text().replace(
            "relay: {host: smtp.example}", "relay: {host: smtp.example, username: bridge}"
        )
    )
    assert [e.split(": ", 1)[1] for e in errors_of(path)] == [
        "networks.mail.relay.password: is required with username"
    ]
    path.write_text(
        path.read_text().replace("username: bridge", "username: bridge, password: {env: NOPE}")
    )
    assert [e.split(": ", 1)[1] for e in errors_of(path)] == [
        "networks.mail.relay.password.env: environment variable 'NOPE' is not set"
    ]


def test_account_must_be_an_address(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("Claire.Martin@ANSSI.test", "claire"))
    assert [e.split(": ", 1)[1] for e in errors_of(path)] == [
        'people[0].accounts.mail: "claire" is not an email address (name@domain)'
    ]


def test_generate_registration_leaves_email_networks_alone(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("    appservice: {as_token: a, hs_token: h}\n", ""))
    result = generate_registrations(path, None)
    assert result.new_tokens == ("networks.bund.appservice.as_token",
                                 "networks.bund.appservice.hs_token")  # fmt: skip
    assert [p.name for p in result.written] == ["bund-registration.yaml"]
    assert "appservice" not in path.read_text().split("  mail:", 1)[1].split("people:", 1)[0]
