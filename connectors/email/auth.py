"""Who really sent a mail: DKIM (dkimpy) and SPF (pyspf), through one configurable resolver.

A mail's sender counts as verified when a DKIM signature of the From domain (or a parent of it)
holds, or when SPF passes for an envelope sender of that domain: DMARC's rule, with relaxed
alignment. Anything else leaves the sender unverified and the network's policy decides
(`bridge.config.kinds.email.AuthPolicy`). A DNS failure is neither: the mail is answered "try
again later", so a genuine sender is never marked or refused because a lookup timed out.

Every lookup goes to the nameservers the network configures (or the system's resolver), never
elsewhere; tests point them at their own DNS server on loopback.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dkim
import dns.exception
import dns.nameserver
import dns.resolver
import spf

log = logging.getLogger(__name__)

DNS_TIMEOUT = 5.0
_SIGNATURE_HEADER = re.compile(rb"^dkim-signature\s*:", re.IGNORECASE | re.MULTILINE)

# pyspf resolves through its module-level ``DNSLookup`` function, always with dnspython's
# process-wide default resolver. Swapping that function for one that uses the resolver of the
# check in progress (held in a context variable, which `asyncio.to_thread` carries into the
# worker thread) keeps every SPF lookup on the configured nameservers.
_spf_resolver: contextvars.ContextVar[dns.resolver.Resolver] = contextvars.ContextVar(
    "spf_resolver"
)


def _spf_lookup(
    name: str, qtype: str, strict: bool = True, timeout: float = DNS_TIMEOUT
) -> list[Any]:
    """`spf.DNSLookup` replacement: the same answers, in pyspf's format, from our resolver."""
    resolver = _spf_resolver.get()
    try:
        answers = resolver.resolve(name, qtype, lifetime=timeout, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    result: list[Any] = []
    for rdata in answers:
        if qtype in ("A", "AAAA"):
            result.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            result.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            result.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            result.append(((name, qtype), rdata.strings))
        elif qtype == "CNAME":
            result.append(((name, qtype), rdata.target.to_text(True)))
    return result


spf.DNSLookup = _spf_lookup


def make_resolver(nameservers: tuple[tuple[str, int], ...]) -> dns.resolver.Resolver:
    """A resolver asking exactly ``nameservers``; the system's configuration when empty."""
    if not nameservers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
    resolver.lifetime = DNS_TIMEOUT
    return resolver


def txt_lookup(resolver: dns.resolver.Resolver) -> Callable[..., bytes | None]:
    """dkimpy's ``dnsfunc``: the first TXT record of a name, its strings joined."""

    def lookup(name: bytes | str, timeout: float = DNS_TIMEOUT) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(qname, "TXT", lifetime=timeout, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise dkim.DnsTimeoutError(str(exc)) from exc
        for rdata in answer:
            return b"".join(rdata.strings)
        return None

    return lookup


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: the authenticated domain is the From domain or a parent of it."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return from_domain == domain or from_domain.endswith("." + domain)


@dataclass(frozen=True)
class DkimResult:
    result: str
    """``pass``, ``fail`` or ``temperror`` (as in Authentication-Results)."""
    domain: str | None
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    verified: bool
    temporary: bool
    """No decision could be made (a DNS failure): the sender should try again later."""
    reason: str
    """For logs and SMTP replies, e.g. ``dkim=fail (d=anssi.test: body hash mismatch);
    spf=fail``. Names no secret."""


def decide(
    dkim_results: list[DkimResult], spf_result: str, spf_domain: str, from_domain: str
) -> Verdict:
    """DMARC's rule with relaxed alignment: one aligned pass is enough; otherwise a temporary
    failure of any check postpones the decision."""
    dkim_text = (
        "; ".join(
            f"dkim={r.result} (d={r.domain}{': ' + r.detail if r.detail else ''})"
            for r in dkim_results
        )
        or "dkim=none"
    )
    reason = f"{dkim_text}; spf={spf_result} (smtp.mailfrom domain {spf_domain or '-'})"
    dkim_ok = any(
        r.result == "pass" and r.domain and aligned(r.domain, from_domain) for r in dkim_results
    )
    spf_ok = spf_result == "pass" and bool(spf_domain) and aligned(spf_domain, from_domain)
    if dkim_ok or spf_ok:
        return Verdict(True, False, reason)
    temporary = spf_result == "temperror" or any(r.result == "temperror" for r in dkim_results)
    return Verdict(False, temporary, reason)


class Authenticator:
    """Checks a received mail's DKIM signatures and its envelope's SPF record."""

    def __init__(self, nameservers: tuple[tuple[str, int], ...]) -> None:
        self.resolver = make_resolver(nameservers)
        self._txt = txt_lookup(self.resolver)

    async def check(
        self, raw: bytes, from_address: str, peer_ip: str, helo: str, mail_from: str
    ) -> Verdict:
        """The verdict on a mail From ``from_address``; the lookups run in a worker thread."""
        context = contextvars.copy_context()
        context.run(_spf_resolver.set, self.resolver)
        return await asyncio.get_running_loop().run_in_executor(
            None, context.run, self._check, raw, from_address, peer_ip, helo, mail_from
        )

    def _check(
        self, raw: bytes, from_address: str, peer_ip: str, helo: str, mail_from: str
    ) -> Verdict:
        from_domain = from_address.rpartition("@")[2]
        envelope = mail_from or f"postmaster@{helo}"
        spf_domain = envelope.rpartition("@")[2]
        return decide(self.dkim(raw), self.spf(peer_ip, envelope, helo), spf_domain, from_domain)

    def dkim(self, raw: bytes) -> list[DkimResult]:
        head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        count = len(_SIGNATURE_HEADER.findall(head))
        results = []
        for index in range(count):
            checker = None
            try:
                checker = dkim.DKIM(raw, timeout=int(DNS_TIMEOUT))
                ok = checker.verify(idx=index, dnsfunc=self._txt)
                domain = checker.domain.decode() if checker.domain else None
                results.append(
                    DkimResult(
                        "pass" if ok else "fail", domain, "" if ok else "signature does not match"
                    )
                )
            except dkim.DnsTimeoutError as exc:
                results.append(DkimResult("temperror", _domain(checker), f"DNS: {exc}"))
            except dkim.DKIMException as exc:
                # dkimpy raises for broken signatures as well as for mismatching bodies; its
                # message may carry both hashes, which say nothing to an admin.
                detail = str(exc).split(" (", 1)[0][:120]
                results.append(DkimResult("fail", _domain(checker), detail))
        return results

    def spf(self, ip: str, sender: str, helo: str) -> str:
        try:
            result, _explanation = spf.check2(
                i=ip, s=sender, h=helo or "unknown", querytime=DNS_TIMEOUT * 2
            )
        except Exception as exc:  # pyspf raises plain exceptions for some malformed input
            log.info("SPF check of %s failed: %s", sender, exc)
            return "permerror"
        return str(result)


def _domain(checker: dkim.DKIM | None) -> str | None:
    domain = getattr(checker, "domain", None)
    return domain.decode() if isinstance(domain, bytes) else None
