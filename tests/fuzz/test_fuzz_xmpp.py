"""Generated hostile input against the XMPP connector's pure functions: stanza parsing, XEP-0393
styling both ways, XEP-0106 escaping, puppet addresses and the file URL policy."""

from __future__ import annotations

import re
import string
import xml.etree.ElementTree as ET

from hypothesis import example, given
from hypothesis import strategies as st
from slixmpp.jid import JID

from bridge.events import Sender
from bridge.html import sanitize
from connectors.xmpp.addresses import (
    escape_node,
    puppet_jid,
    puppet_localpart,
    puppet_owner,
    unescape_node,
)
from connectors.xmpp.fetch_policy import FilePolicy, url_refusal
from connectors.xmpp.styling import html_to_styled, styled_to_html
from connectors.xmpp.translate import (
    NS_STREAM,
    MalformedStanza,
    message_event,
    parse_message,
    parse_presence,
)

# -- stanzas -------------------------------------------------------------------------------------

TRICKY = [
    "", " ", "0", "-1", "99999999999999999999", "http://[::1", "http://[::1]:99999/x",
    "https://upload.xmpp.test/a b.png", "file:///etc/passwd", "x\\", "x\\5", "\\5c",
    "2026-11-26T22:23:25Z", "yesterday", "wg@conference.xmpp.test/Alice", "a/b@c", "@",
    "*a *b _c_ ~d~ `e`", "> quote\n>> deeper", "```\ncode", "\u202e\u0301\ufeff",
]  # fmt: skip
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40))
attrs = st.dictionaries(
    st.sampled_from(["id", "by", "to", "from", "jid", "nick", "code", "start", "end", "for",
                     "stamp", "type"]),
    texts, max_size=4,
)  # fmt: skip

NS = {
    "body": NS_STREAM[0], "subject": NS_STREAM[0], "error": NS_STREAM[0],
    "stanza-id": "urn:xmpp:sid:0", "origin-id": "urn:xmpp:sid:0", "delay": "urn:xmpp:delay",
    "replace": "urn:xmpp:message-correct:0", "retract": "urn:xmpp:message-retract:1",
    "apply-to": "urn:xmpp:fasten:0", "reactions": "urn:xmpp:reactions:0",
    "reaction": "urn:xmpp:reactions:0", "reply": "urn:xmpp:reply:0",
    "fallback": "urn:xmpp:fallback:0", "x": "jabber:x:oob", "url": "jabber:x:oob",
    "desc": "jabber:x:oob", "composing": "http://jabber.org/protocol/chatstates",
    "occupant-id": "urn:xmpp:occupant-id:0", "item": "http://jabber.org/protocol/muc#user",
    "status": "http://jabber.org/protocol/muc#user",
    "bad-request": "urn:ietf:params:xml:ns:xmpp-stanzas",
}  # fmt: skip


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> ET.Element:
    name = draw(st.sampled_from(sorted(NS)))
    ns = draw(st.sampled_from([NS[name], NS[name], "jabber:client", "urn:x:other"]))
    el = ET.Element(f"{{{ns}}}{name}", draw(attrs))
    if draw(st.booleans()):
        el.text = draw(texts)
    if depth < 2:
        el.extend(draw(st.lists(elements(depth + 1), max_size=3)))
    return el


@st.composite
def stanzas(draw: st.DrawFn, kind: str) -> ET.Element:
    el = ET.Element(f"{{{NS_STREAM[0]}}}{kind}", draw(attrs))
    if draw(st.booleans()):
        el.set("from", draw(st.sampled_from(["wg@conference.xmpp.test/Alice", "a@b"])))
        el.set("to", "passerelle.xmpp.test")
    el.extend(draw(st.lists(elements(), max_size=6)))
    return el


def oob(url: str) -> ET.Element:
    """A groupchat message sharing ``url`` (XEP-0066)."""
    el = ET.fromstring(
        f'<message xmlns="{NS_STREAM[0]}" type="groupchat" from="wg@conference.xmpp.test/Alice" '
        f'to="passerelle.xmpp.test"><body>file</body><x xmlns="jabber:x:oob"><url/></x></message>'
    )
    url_el = el.find("{jabber:x:oob}x/{jabber:x:oob}url")
    assert url_el is not None
    url_el.text = url
    return el


SENDER = Sender(network="xmpp", user_id="alice@xmpp.test", display_name="Alice")


@given(stanzas("message"))
@example(oob("http://[::1"))  # urlsplit raised ValueError: the MUC kicked the bridge
@example(oob("http://[::1]:99999/x"))
def test_parse_message_raises_only_malformed_stanza(el: ET.Element) -> None:
    try:
        msg = parse_message(el)
    except MalformedStanza:
        return
    message_event(msg, remote_id="r", link_id="wg", network="xmpp", sender=SENDER, reply_to=None)


@given(stanzas("presence"))
def test_parse_presence_raises_only_malformed_stanza(el: ET.Element) -> None:
    try:
        parse_presence(el)
    except MalformedStanza:
        pass


# -- styling --------------------------------------------------------------------------------------

styled = st.lists(st.sampled_from([*"*_~`> \n\r\tab<>&\"'\\", "```"]), max_size=200).map("".join)


@given(st.one_of(styled, st.text(max_size=100)))
@example("*a " * 21000)  # half a minute of quadratic search
@example(">" * 5000 + " deep")  # one recursion per quote level
@example("_*~`a " * 3000)
def test_styled_to_html_never_raises_and_is_sanitized(body: str) -> None:
    html = styled_to_html(body)
    assert html is None or sanitize(html) == html


TAGS = ["b", "strong", "i", "em", "del", "s", "code", "pre", "blockquote", "p", "a", "ul", "li",
        "br", "span", "u", "mx-reply", "script", "img", "div"]  # fmt: skip


@st.composite
def html_trees(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        if depth > 6 or draw(st.booleans()):
            parts.append(draw(st.text(alphabet=st.sampled_from(list("ab <>&*_`~\n\x01\\")))))
        else:
            tag = draw(st.sampled_from(TAGS))
            href = draw(st.sampled_from(["", ' href="https://x.example/&#1;"', ' href="&#0;"']))
            parts.append(f"<{tag}{href}>{draw(html_trees(depth + 1))}</{tag}>")
    return "".join(parts)


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@given(st.one_of(html_trees(), st.text(max_size=100)))
@example("<b>" * 1000 + "deep" + "</b>" * 1000)  # recursion on every level
@example('<a href="https://x.example/&#1;">link</a>')
def test_html_to_styled_never_raises_and_writes_only_xml_characters(html: str) -> None:
    body = html_to_styled(sanitize(html))
    assert not _XML_INVALID.search(body)


# -- addresses ------------------------------------------------------------------------------------


@given(st.text())
@example("x\\")
@example("x\\5")
@example("\\5c40")
def test_xep_0106_escaping_round_trips_and_unescaping_never_raises(text: str) -> None:
    assert unescape_node(escape_node(text)) == text
    unescape_node(text)


# Network names as the config accepts them next to an XMPP network: lower-case letters, digits,
# '_' and '-', and none starting with another's name and '_' (`bund` and `bund_2` are refused).
names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,7}", fullmatch=True)
id_chars = st.sampled_from(
    list(string.ascii_letters + string.digits + ":@._-=/+ \\") + ["\\3a", "\\5c", "-" + "0" * 32,
     "ß", "ﬁ", "\u200b", "\u0130", "é", "e\u0301", "\u05d0", "\U0001f600", "\x00"]
)  # fmt: skip
ids = st.lists(id_chars, max_size=30).map("".join) | st.text(max_size=300)


@given(names, ids, names, ids)
@example("bund", "Alice:x", "bund", "alice:x")
@example("bund", "straße:x", "bund", "strasse:x")
@example("bund", "A" * 300 + ":x", "bund", "a" * 300 + ":x")
def test_distinct_people_get_distinct_puppets(net1: str, id1: str, net2: str, id2: str) -> None:
    if net1 != net2 and (net1.startswith(f"{net2}_") or net2.startswith(f"{net1}_")):
        return  # the config refuses such a pair of network names
    first, second = (net1, id1), (net2, id2)
    jids = {puppet_jid(*first, "p.test"), puppet_jid(*second, "p.test")}
    assert len(jids) == (1 if first == second else 2)
    for jid in jids:
        assert JID(jid).bare == jid  # as the server compares it: no two fold together


@given(names, ids, st.lists(names, max_size=3))
@example("bund", "alice:x", [])
@example("bund", "Alice:x", ["bund-2"])
def test_puppet_owner_inverts_the_localpart_where_it_claims_to(
    network: str, user_id: str, others: list[str]
) -> None:
    networks = [network, *(n for n in others if not n.startswith(f"{network}_"))]
    if any(a.startswith(f"{b}_") for a in networks for b in networks):
        return
    owner = puppet_owner(puppet_localpart(network, user_id), networks)
    assert owner is None or owner == (network, user_id)


@given(st.text(max_size=60))
@example("x\\")
@example("bund_x\\5")
def test_puppet_owner_of_any_address_never_raises(localpart: str) -> None:
    puppet_owner(localpart, ["bund", "tchap"])


# -- file URLs ------------------------------------------------------------------------------------

POLICY = FilePolicy((("upload.xmpp.test", None), ("*.xmpp.test", None), ("192.0.2.7", 5281)))


@given(st.one_of(st.sampled_from(TRICKY), st.text(max_size=60),
                 st.builds("http://{}/x".format, st.text(max_size=40))))  # fmt: skip
@example("http://[::ffff:127.0.0.1]/x")
@example("http://upload.xmpp.test@127.0.0.1/x")
def test_url_refusal_never_raises(url: str) -> None:
    url_refusal(url, POLICY)
