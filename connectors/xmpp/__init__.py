"""XMPP networks: the bridge as a component (XEP-0114) of an agency's XMPP server, with linked
MUC rooms and one puppet JID per remote person."""

from __future__ import annotations

from bridge.kinds import Kind, connector
from connectors.xmpp.config import XmppSchema
from connectors.xmpp.personal import XmppData
from connectors.xmpp.state import upgrade_table

KIND = Kind(
    name="xmpp",
    schema=XmppSchema,
    build=connector("connectors.xmpp.connector", "XmppConnector"),
    personal=XmppData(),
    state=upgrade_table,
)
