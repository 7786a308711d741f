"""Matrix networks: the German homeserver and Tchap, as an appservice or in relay mode."""

from __future__ import annotations

import argparse
from typing import Any

from bridge.connector import Connector, Host
from bridge.kinds import Kind
from connectors.matrix.config import MatrixMode, MatrixNetwork, MatrixSchema
from connectors.matrix.personal import MatrixData
from connectors.matrix.state import upgrade_table


def build(network: MatrixNetwork, host: Host) -> Connector:
    if network.mode is MatrixMode.APPSERVICE:
        from connectors.matrix.appservice import AppserviceConnector

        return AppserviceConnector(network, host)
    from connectors.matrix.relay import RelayConnector

    return RelayConnector(network, host)


def commands(subcommands: argparse._SubParsersAction[Any]) -> None:
    """``passerelle generate-registration``."""
    from connectors.matrix.registration import add_command

    add_command(subcommands)


KIND = Kind(
    name="matrix",
    schema=MatrixSchema,
    build=build,
    personal=MatrixData(),
    state=upgrade_table,
    commands=commands,
    default=True,  # Matrix networks came first: their entries may leave ``kind`` out
)
