"""Admin commands for email networks: ``python -m connectors.email quarantine -c CONFIG``
lists the mail each email network kept out of the rooms (``auth_policy: quarantine``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from bridge.config.kinds.email import EmailNetwork
from bridge.config.load import ConfigError, load_config
from connectors.email.spool import Spool


def quarantine(config_path: str) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.email", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("quarantine", help="list quarantined mail")
    listing.add_argument("-c", "--config", required=True, metavar="FILE")
    args = parser.parse_args(argv)
    return quarantine(args.config)


if __name__ == "__main__":
    sys.exit(main())
