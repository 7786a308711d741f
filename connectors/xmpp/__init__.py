"""XMPP networks: the bridge as a component (XEP-0114) of an agency's XMPP server, with linked
MUC rooms and one puppet JID per remote person."""

from __future__ import annotations

from bridge.connector import Connector, Host
from bridge.kinds import Kind
from connectors.xmpp.config import XmppNetwork, XmppSchema
from connectors.xmpp.personal import XmppData
from connectors.xmpp.state import upgrade_table


def build(network: XmppNetwork, host: Host) -> Connector:
    from connectors.xmpp.connector import XmppConnector

    return XmppConnector(network, host)


KIND = Kind(
    name="xmpp",
    schema=XmppSchema,
    account_format=XmppSchema.account_format,
    build=build,
    personal=XmppData(),
    state=upgrade_table,
)
