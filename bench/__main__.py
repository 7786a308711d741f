"""``python -m bench`` (``make bench``): measure the bridge against real homeservers and print the
table; JSON and a latency plot go to ``bench/results/``.

``--quick`` is a short smoke run (seconds per phase, one repeat, a smaller mapping); its figures
are not comparable with the targets, which are stated for the full run. ``--soak`` adds the
half-hour soak phase (`bench.soak`), which the default run leaves out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report, scale
from bench.run import Bench, Settings
from bench.world import start_bench_world
from tests.harness import synapse_available

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ("latency", "throughput", "scale", "soak")
DEFAULT_PHASES = ["latency", "throughput", "scale"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short smoke run (not for the README)")
    p.add_argument("--rate", type=float, default=20.0, help="latency: messages per second")
    p.add_argument("--duration", type=float, help="latency: seconds per run (default 60)")
    p.add_argument("--repeats", type=int, help="runs per figure, median reported (default 3)")
    p.add_argument("--burst", type=int, help="throughput: messages in one link (default 600)")
    p.add_argument("--burst-many", type=int, help="throughput: messages over 50 links (1000)")
    p.add_argument("--concurrency", type=int, default=4, help="throughput: concurrent senders")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each phase, wait up to this many s for other processes to calm down",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="measure a phase again this often when other processes disturbed it",
    )
    p.add_argument("--links", type=int, help="scale: links in the generated config (10000)")
    p.add_argument("--people", type=int, help="scale: people in the generated config (100000)")
    p.add_argument("--only", choices=PHASES, action="append", help="run only these phases")
    p.add_argument("--soak", action="store_true", help="also the soak phase (30 min)")
    p.add_argument("--soak-minutes", type=float, help="soak: minutes (default 30)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where JSON and PNG go")
    p.add_argument(
        "--report", type=Path, metavar="JSON", help="measure nothing: print a results.json's table"
    )
    args = p.parse_args(argv)
    quick = args.quick
    for name, full, short in (
        ("duration", 60.0, 8.0),
        ("repeats", 3, 1),
        ("burst", 600, 200),
        ("burst_many", 1000, 400),
        ("links", 10_000, 1_000),
        ("people", 100_000, 10_000),
        ("soak_minutes", 30.0, 2.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    args.only = args.only or list(DEFAULT_PHASES)
    if args.soak and "soak" not in args.only:
        args.only.append("soak")
    return args


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    world = await start_bench_world(workdir / "world")
    try:
        if {"latency", "throughput", "soak"} & set(args.only):
            settings = Settings(args.rate, args.duration, args.repeats, args.burst,
                                args.burst_many, args.concurrency, args.quiet_wait,
                                args.retries)  # fmt: skip
            bench = Bench(world, settings)
            try:
                await bench.start()
                if "latency" in args.only:
                    results["latency"] = await bench.latency()
                if "throughput" in args.only:
                    results["throughput"] = await bench.throughput()
                if "soak" in args.only:
                    results["soak"] = await bench.soak(args.soak_minutes * 60)
                results["disturbed_phases"] = bench.disturbed
            finally:
                await bench.close()
        if "scale" in args.only:
            results["scale"] = await scale.measure(world, workdir / "scale", args.links,
                                                   args.people, args.repeats)  # fmt: skip
    finally:
        await world.stop()
    return results


def reference_loop_seconds() -> float:
    """How fast this machine runs plain Python: the median time of a ten-million-step loop.

    The targets are absolute figures on "this machine", and machines of the same kind differ
    (and a virtual machine's neighbours vary); this lets two runs' tables be compared."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s",
                        stream=sys.stderr)  # fmt: skip
    # The relay (aiosmtpd) logs every SMTP command at INFO and the occupants (slixmpp) their
    # connection's life: work in the benchmark's own process that no measured path should pay.
    for library in ("mail.log", "slixmpp"):
        logging.getLogger(library).setLevel(logging.WARNING)
    if args.report is not None:
        results = json.loads(args.report.read_text())
        print(report.render(report.build(results), results["meta"], results))
        return 0
    reason = synapse_available()
    if reason:
        print(f"cannot benchmark: {reason}", file=sys.stderr)
        return 1
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    reference = reference_loop_seconds()
    with tempfile.TemporaryDirectory(prefix="passerelle-bench-") as tmp:
        results = asyncio.run(measure(args, Path(tmp)))
    results["meta"] = {
        "command": command.strip(),
        "quick": args.quick,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "only")},
        "phases": args.only,
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {len(os.sched_getaffinity(0))} cores",
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "reference_loop_s": reference,
        "seconds": round(time.monotonic() - started),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    table = report.build(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    report.plot(results, args.out / "latency.png")
    print(report.render(table, results["meta"], results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
