"""XMPP networks: the bridge as a component (XEP-0114) of an agency's XMPP server, with linked
MUC rooms and one puppet JID per remote person."""

from __future__ import annotations

from bridge.config.kinds.xmpp import XmppNetwork
from bridge.connector import Connector, Host


def build(network: XmppNetwork, host: Host) -> Connector:
    from connectors.xmpp.connector import XmppConnector

    return XmppConnector(network, host)
