"""Who really sent a mail: DKIM (dkimpy) and SPF (pyspf), through one configurable resolver.

A mail's sender counts as verified when a DKIM signature of the From domain (or a parent of it)
holds, or when SPF passes for an envelope sender of that domain: DMARC's rule, with relaxed
alignment. Anything else leaves the sender unverified and the network's policy decides
(`connectors.email.config.AuthPolicy`). A DNS failure is neither (`Verdict.temporary`): the
sender could not be checked, and the policy says what then ("try again later", held, or marked
as not checked), so a genuine sender is never called unverified because a lookup timed out.

How long: one mail's checks wait for DNS at most the network's ``dns_timeout`` in all (the DKIM
keys one after the other within it, SPF with it as pyspf's whole-check budget, side by side).

Every lookup goes to the nameservers the network configures (or the system's resolver), never
elsewhere; tests point them at their own DNS server on loopback.

Where the work happens: the keys of a mail's DKIM signatures (at most `MAX_SIGNATURES`) are
looked up first, in a thread; then dkimpy checks the signatures against them in the mail worker
(`connectors.email.worker`), where canonicalising a hostile mail has a time budget and cannot
hold the event loop's GIL. SPF is DNS only and runs in a thread meanwhile.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass
from typing import Any

import dkim
import dns.exception
import dns.nameserver
import dns.resolver
import spf

from connectors.email.head import fields
from connectors.email.headers import one_line
from connectors.email.worker import MailWorker

log = logging.getLogger(__name__)

MAX_SIGNATURES = 5
"""DKIM signatures checked per mail, from the top (the newest); more vouch for no one."""

# pyspf resolves through its module-level ``DNSLookup`` function, always with dnspython's
# process-wide default resolver. Swapping that function for one that uses the resolver of the
# check in progress (held in a context variable, which `asyncio.to_thread` carries into the
# worker thread) keeps every SPF lookup on the configured nameservers.
_spf_resolver: contextvars.ContextVar[dns.resolver.Resolver] = contextvars.ContextVar(
    "spf_resolver"
)


def _spf_lookup(name: str, qtype: str, strict: bool, timeout: float) -> list[Any]:
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


def make_resolver(
    nameservers: tuple[tuple[str, int], ...], timeout: float
) -> dns.resolver.Resolver:
    """A resolver asking exactly ``nameservers`` (the system's configuration when empty) that
    gives up on a name after ``timeout`` seconds."""
    if not nameservers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
    resolver.lifetime = timeout
    return resolver


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


@dataclass(frozen=True)
class Signature:
    """One ``DKIM-Signature`` of a mail, as far as finding its key goes."""

    index: int
    """Among the mail's signatures, from the top, as dkimpy counts them."""
    domain: str | None
    key_name: str | None
    """``<selector>._domainkey.<domain>``, lower-case; None when the tags are unreadable."""


def signatures(block: bytes) -> list[Signature]:
    """The first `MAX_SIGNATURES` DKIM signatures in a mail's header block (cheap: their
    tag lists are split, nothing is verified)."""
    found: list[Signature] = []
    values = [v for n, v in fields(block) if n.strip().lower() == b"dkim-signature"]
    for index, value in enumerate(values[:MAX_SIGNATURES]):
        try:
            tags = dkim.util.parse_tag_value(value)
            domain = one_line(tags[b"d"].decode("ascii")).lower().rstrip(".")
            selector = one_line(tags[b"s"].decode("ascii")).lower()
        except (dkim.util.InvalidTagValueList, KeyError, UnicodeDecodeError):
            found.append(Signature(index, None, None))
            continue
        found.append(Signature(index, domain, f"{selector}._domainkey.{domain}"))
    return found


def _key_name(name: bytes | str) -> str:
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    return text.lower().rstrip(".")


def verify_dkim(
    raw: bytes, signatures: tuple[Signature, ...], keys: dict[str, bytes | None]
) -> list[DkimResult]:
    """dkimpy's verdict on each of ``signatures`` of ``raw``, with the key records looked up
    already (``keys``: name → TXT record, None when there is none). Pure CPU work, for the
    mail worker."""

    def lookup(name: bytes | str, timeout: float = 0) -> bytes | None:
        return keys.get(_key_name(name))  # looked up already: no waiting here

    results = []
    for signature in signatures:
        checker = None
        try:
            checker = dkim.DKIM(raw)
            ok = checker.verify(idx=signature.index, dnsfunc=lookup)
            results.append(
                DkimResult(
                    "pass" if ok else "fail",
                    _domain(checker) or signature.domain,
                    "" if ok else "signature does not match",
                )
            )
        except dkim.DKIMException as exc:
            # dkimpy raises for broken signatures as well as for mismatching bodies; its
            # message may carry both hashes, which say nothing to an admin.
            detail = str(exc).split(" (", 1)[0][:120]
            results.append(DkimResult("fail", _domain(checker) or signature.domain, detail))
    return results


class Authenticator:
    """Checks a received mail's DKIM signatures and its envelope's SPF record."""

    def __init__(
        self, nameservers: tuple[tuple[str, int], ...], timeout: float, worker: MailWorker
    ) -> None:
        self.resolver = make_resolver(nameservers, timeout)
        self.timeout = timeout
        self.worker = worker

    async def check(
        self, raw: bytes, head_end: int, from_address: str, peer_ip: str, helo: str, mail_from: str
    ) -> Verdict:
        """The verdict on a mail From ``from_address`` whose header block ends at ``head_end``.
        Raises what `MailWorker.run` raises when checking the signatures overruns its budget."""
        from_domain = from_address.rpartition("@")[2]
        envelope = mail_from or f"postmaster@{helo}"
        spf_domain = envelope.rpartition("@")[2]
        context = contextvars.copy_context()
        context.run(_spf_resolver.set, self.resolver)
        spf_result = asyncio.get_running_loop().run_in_executor(
            None, context.run, self.spf, peer_ip, envelope, helo
        )
        try:
            dkim_results = await self.dkim(raw, signatures(raw[:head_end]))
        finally:
            spf_text = await spf_result
        return decide(dkim_results, spf_text, spf_domain, from_domain)

    async def dkim(self, raw: bytes, found: list[Signature]) -> list[DkimResult]:
        """Each signature's result, in order: keys looked up here, signatures checked in the
        mail worker; a key whose lookup failed makes its signature a ``temperror``."""
        names = {s.key_name for s in found if s.key_name is not None}
        deadline = time.monotonic() + self.timeout
        keys, failed = await asyncio.to_thread(self._keys, names, deadline)
        checkable = tuple(s for s in found if s.key_name not in failed)
        verified = await self.worker.run(verify_dkim, raw, checkable, keys) if checkable else []
        checked = iter(verified)
        return [
            DkimResult("temperror", s.domain, f"DNS: {failed[s.key_name]}")
            if s.key_name in failed
            else next(checked)
            for s in found
        ]

    def _keys(
        self, names: set[str], deadline: float
    ) -> tuple[dict[str, bytes | None], dict[str, str]]:
        """``(records, failures)``: each name's first TXT record (its strings joined; None when
        there is none), and why a lookup could not be answered before ``deadline`` (of
        `time.monotonic`)."""
        records: dict[str, bytes | None] = {}
        failed: dict[str, str] = {}
        for name in sorted(names):
            left = deadline - time.monotonic()
            if left <= 0:
                failed[name] = f"not looked up, the {self.timeout:g} s for DNS had run out"
                continue
            try:
                answer = self.resolver.resolve(name, "TXT", lifetime=left, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                records[name] = None
            except dns.exception.Timeout:
                failed[name] = f"no answer within {self.timeout:g} s"
            except dns.resolver.NoNameservers as exc:
                failed[name] = str(exc)
            except dns.exception.DNSException as exc:
                records[name] = None
                log.info("DKIM key %s cannot be looked up: %s", name, exc)
            else:
                records[name] = next((b"".join(r.strings) for r in answer), None)
        return records, failed

    def spf(self, ip: str, sender: str, helo: str) -> str:
        try:
            result, _explanation = spf.check2(
                i=ip, s=sender, h=helo or "unknown", querytime=self.timeout
            )
        except Exception as exc:  # pyspf raises plain exceptions for some malformed input
            log.info("SPF check of %s failed: %s", sender, exc)
            return "permerror"
        return str(result)


def _domain(checker: dkim.DKIM | None) -> str | None:
    domain = getattr(checker, "domain", None)
    return domain.decode() if isinstance(domain, bytes) else None
