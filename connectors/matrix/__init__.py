"""Matrix networks: the German homeserver and Tchap, as an appservice or in relay mode."""

from __future__ import annotations

from bridge.config.model import MatrixMode, MatrixNetwork
from bridge.connector import Connector, Host


def build(network: MatrixNetwork, host: Host) -> Connector:
    if network.mode is MatrixMode.APPSERVICE:
        from connectors.matrix.appservice import AppserviceConnector

        return AppserviceConnector(network, host)
    from connectors.matrix.relay import RelayConnector

    return RelayConnector(network, host)
