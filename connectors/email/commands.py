"""Admin commands of email networks: ``passerelle quarantine -c CONFIG`` lists the mail each
email network kept out of the rooms (``auth_policy: quarantine``)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bridge.cli import fail
from bridge.config.load import ConfigError, load_config
from connectors.email.config import EmailNetwork
from connectors.email.spool import Spool


def quarantine(config_path: str) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return fail(exc.errors)
    networks = [n for n in config.networks.values() if isinstance(n, EmailNetwork)]
    if not networks:
        print("No email network in this config.")
    for network in networks:
        spool = Spool(network.spool)
        entries = spool.quarantined()
        print(f"{network.name}: {len(entries)} quarantined mail(s) in {spool.quarantine_dir}")
        for entry in entries:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.received))
            print(f"  {when}  {entry.file}")
            print(f"    from {entry.sender} to {', '.join(entry.recipients)}")
            print(f"    Message-ID {entry.message_id}")
            print(f"    {entry.reason}")
    return 0


def add_commands(subcommands: argparse._SubParsersAction[Any]) -> None:
    listing = subcommands.add_parser("quarantine", help="list the mail email networks held")
    listing.add_argument("-c", "--config", required=True, metavar="FILE")
    listing.set_defaults(handler=lambda args: quarantine(args.config))
