"""Tests of connectors.email.auth: DKIM and SPF of received mail, decided as DMARC would.

The lookups go to a real DNS server on loopback that publishes the test's own records, through
the same resolver code the bridge uses."""

from __future__ import annotations

from collections.abc import Iterator
from email import policy
from email.message import EmailMessage

import dkim
import pytest

from connectors.email.auth import (
    MAX_SIGNATURES,
    Authenticator,
    DkimResult,
    Verdict,
    aligned,
    decide,
)
from connectors.email.config import InboundSettings
from connectors.email.head import HeaderLimits, header_end
from connectors.email.worker import MailWorker
from tests.harness.dns import DkimKeyPair, DnsServer, dkim_keypair

LIMITS = HeaderLimits.of(InboundSettings("127.0.0.1", 2525, None, None, 1 << 20))
DNS_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def keys() -> DkimKeyPair:
    return dkim_keypair()


@pytest.fixture(scope="module")
def dns_server(keys: DkimKeyPair) -> Iterator[DnsServer]:
    server = DnsServer()
    server.publish("sel._domainkey.anssi.test", keys.record)
    server.publish("anssi.test", "v=spf1 -all")
    server.publish("bmi.test", "v=spf1 ip4:127.0.0.1 -all")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker() -> Iterator[MailWorker]:
    started = MailWorker(budget=30)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def auth(dns_server: DnsServer, worker: MailWorker) -> Authenticator:
    return Authenticator((("127.0.0.1", dns_server.port),), DNS_TIMEOUT, worker)


async def check(auth: Authenticator, raw: bytes, *envelope: str) -> Verdict:
    """``auth.check`` as the connector calls it, after measuring the header block."""
    return await auth.check(raw, header_end(raw, LIMITS), *envelope)


def raw_mail(sender: str, body: str = "Bonjour\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "wg@lists.passerelle.test"
    msg["Subject"] = "Point"
    msg["Message-ID"] = "<m.1@anssi.test>"
    msg.set_content(body)
    return msg.as_bytes(policy=policy.SMTP)


def signed(raw: bytes, key: bytes, domain: str = "anssi.test") -> bytes:
    return bytes(dkim.sign(raw, b"sel", domain.encode(), key)) + raw


async def test_valid_signature_verifies_even_when_spf_fails(
    auth: Authenticator, keys: DkimKeyPair
) -> None:
    raw = signed(raw_mail("Claire <claire@anssi.test>"), keys.private_pem)
    verdict = await check(
        auth, raw, "claire@anssi.test", "127.0.0.1", "mx.anssi.test", "claire@anssi.test"
    )
    assert verdict.verified and not verdict.temporary
    assert verdict.reason.startswith("dkim=pass (d=anssi.test); spf=fail")


async def test_signature_with_another_key_fails(auth: Authenticator) -> None:
    forger = dkim_keypair(1024)
    raw = signed(raw_mail("Claire <claire@anssi.test>"), forger.private_pem)
    verdict = await check(
        auth, raw, "claire@anssi.test", "127.0.0.1", "evil.test", "claire@anssi.test"
    )
    assert not verdict.verified and not verdict.temporary
    assert "dkim=fail (d=anssi.test" in verdict.reason


async def test_body_changed_after_signing_fails(auth: Authenticator, keys: DkimKeyPair) -> None:
    raw = signed(raw_mail("Claire <claire@anssi.test>"), keys.private_pem)
    verdict = await check(
        auth,
        raw.replace(b"Bonjour", b"Virement"),
        "claire@anssi.test",
        "127.0.0.1",
        "x",
        "claire@anssi.test",
    )
    assert not verdict.verified
    assert "body hash mismatch" in verdict.reason


async def test_spf_pass_of_the_from_domain_verifies(auth: Authenticator) -> None:
    verdict = await check(
        auth, raw_mail("max@bmi.test"), "max@bmi.test", "127.0.0.1", "mail.bmi.test", "max@bmi.test"
    )
    assert verdict.verified
    assert verdict.reason == "dkim=none; spf=pass (smtp.mailfrom domain bmi.test)"


async def test_spf_pass_of_another_domain_does_not(auth: Authenticator) -> None:
    verdict = await check(
        auth,
        raw_mail("claire@anssi.test"),
        "claire@anssi.test",
        "127.0.0.1",
        "mail.bmi.test",
        "bounce@bmi.test",
    )
    assert not verdict.verified


async def test_signature_of_an_unrelated_domain_does_not(
    auth: Authenticator, dns_server: DnsServer
) -> None:
    other = dkim_keypair(1024)
    dns_server.publish("sel._domainkey.evil.test", other.record)
    raw = signed(raw_mail("claire@anssi.test"), other.private_pem, domain="evil.test")
    verdict = await check(auth, raw, "claire@anssi.test", "127.0.0.1", "evil.test", "x@evil.test")
    assert not verdict.verified
    assert "dkim=pass (d=evil.test)" in verdict.reason


def test_alignment_is_relaxed_to_parent_domains() -> None:
    assert aligned("anssi.test", "anssi.test")
    assert aligned("anssi.test", "mail.anssi.test")
    assert aligned("ANSSI.test.", "anssi.test")
    assert not aligned("mail.anssi.test", "anssi.test")
    assert not aligned("nssi.test", "anssi.test")


def test_a_dns_failure_postpones_the_decision() -> None:
    failed = decide(
        [DkimResult("temperror", "anssi.test", "DNS timeout")], "none", "anssi.test", "anssi.test"
    )
    assert failed.temporary and not failed.verified
    passed = decide([DkimResult("pass", "anssi.test")], "temperror", "anssi.test", "anssi.test")
    assert passed.verified and not passed.temporary
    assert not decide([], "none", "", "anssi.test").temporary


async def test_a_key_that_cannot_be_looked_up_postpones_the_decision(
    auth: Authenticator, dns_server: DnsServer, keys: DkimKeyPair
) -> None:
    dns_server.fail("sel._domainkey.broken.test")
    raw = signed(raw_mail("Claire <claire@broken.test>"), keys.private_pem, "broken.test")
    verdict = await check(auth, raw, "claire@broken.test", "127.0.0.1", "x", "claire@broken.test")
    assert verdict.temporary and not verdict.verified
    assert verdict.reason.startswith("dkim=temperror (d=broken.test: DNS: ")


async def test_only_the_first_signatures_are_checked(
    auth: Authenticator, keys: DkimKeyPair
) -> None:
    forger = dkim_keypair(1024)
    raw = raw_mail("Claire <claire@anssi.test>")
    raw = signed(raw, keys.private_pem)
    for _ in range(MAX_SIGNATURES):
        raw = signed(raw, forger.private_pem)
    verdict = await check(auth, raw, "claire@anssi.test", "127.0.0.1", "x", "claire@anssi.test")
    assert verdict.reason.count("dkim=fail (d=anssi.test") == MAX_SIGNATURES
    assert not verdict.verified, "the genuine signature is below the ones checked"


async def test_a_silent_nameserver_postpones_the_decision_within_one_timeout(
    auth: Authenticator, dns_server: DnsServer, keys: DkimKeyPair
) -> None:
    raw = raw_mail("Claire <claire@anssi.test>")
    for domain in ("a.test", "b.test", "c.test"):
        raw = signed(raw, keys.private_pem, domain)
    with dns_server.silent():
        verdict = await check(auth, raw, "claire@anssi.test", "127.0.0.1", "x", "c@anssi.test")
    assert verdict.temporary and not verdict.verified
    assert "spf=temperror" in verdict.reason
    # The first key waited the whole budget; the others were not asked for at all.
    assert verdict.reason.count(f"DNS: no answer within {DNS_TIMEOUT:g} s") == 1, verdict.reason
    assert verdict.reason.count("DNS: not looked up, the 1 s for DNS had run out") == 2
