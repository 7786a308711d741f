"""``make faults``: the whole fault suite on real servers; prints the table, exits 1 when a
route lost, doubled or reordered anything (2 when the servers could not be set up).

Options shorten it for a try (``--kills 2 --long-outage 60``); ``--out`` keeps the table, the
run's events and the bridge's and homeservers' logs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.faults.report import table
from tests.faults.scenario import Result, full_plan, run_faults
from tests.faults.world import fault_world, keep_logs


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    p.add_argument("--kills", type=int, default=10, help="SIGKILLs of the bridge (10)")
    p.add_argument(
        "--long-outage", type=float, default=600.0,
        help="seconds the Tchap homeserver stays down in the long outage (600)",
    )  # fmt: skip
    p.add_argument(
        "--interval", type=float, default=2.0,
        help="seconds between two messages of one writer (2)",
    )  # fmt: skip
    p.add_argument(
        "--drain", type=float, default=600.0,
        help="seconds to wait at most, after the faults, for what is on its way (600)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, help="for the random moments of the kills")
    p.add_argument(
        "--out", type=Path, default=Path(".faults") / time.strftime("%Y%m%d-%H%M%S"),
        help="where the table, the run's events and the logs are kept",
    )  # fmt: skip
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="passerelle-faults-") as root:
        async with fault_world(Path(root)) as world:
            try:
                return await run_faults(world, full_plan(args.kills, args.long_outage),
                                        interval=args.interval, drain=args.drain,
                                        seed=args.seed)  # fmt: skip
            finally:
                keep_logs(world, args.out)


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("slixmpp", "aiohttp", "mautrix", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = asyncio.run(main(args))
    except (pytest.skip.Exception, pytest.fail.Exception) as e:
        print(f"The fault suite cannot run: {e}", file=sys.stderr)
        return 2
    text = table(result.tallies, result.notes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "events.txt").write_text("\n".join(result.events) + "\n")
    print("\n".join(result.events))
    print()
    print(text)
    print(f"\n(table, events and logs in {args.out})")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
