"""Turn the measurements into the table (Markdown, so the README can show it as printed), with
every bridged figure beside its same-run baseline, the ratio, the issue's target and PASS/MISS;
and into a plot of the latency distributions.

Each figure is the median over the repeated runs of that figure (a ratio or an overhead is
computed within each run first, then its median taken).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import median

QUANTILE_TARGETS_MS = {"p50": 5.0, "p95": None, "p99": 20.0}
THROUGHPUT_RATIO = 0.95
CPU_MS_PER_TARGET = 1.0
CPU_MS_PER_MAIL = 5.0
"""Issue 16's target for a mail (its DKIM signature and SMTP hand-over included); the 1 ms
above is for a message to a chat network."""
ARRIVAL_TO_SEND_P99_MS = 5.0
SCALE = {"links": 10_000, "people": 100_000}
LOAD_S, RSS_MB, READY_S = 2.0, 250.0, 3.0
SOAK_S, SOAK_DRIFT = 1800.0, 0.10
PER_ROOM_AT_START = 0.01
"""Requests by ready per room below which the bridge makes none per room (what it makes once
per network, a few each, stays far below it at 20,000 rooms)."""


@dataclass(frozen=True)
class Row:
    figure: str
    bridged: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    verdict: str = ""
    """PASS, MISS, or empty where the issue sets no target."""


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms"


def judge(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def _per_run(
    runs: list[dict[str, Any]],
    route: str,
    q: str,
    f: Callable[[float, float, float], float],
) -> float:
    """Median over runs of ``f(bridged, source baseline, target baseline)`` at quantile q."""
    values = []
    for r in runs:
        bridged = r["bridged"][route]
        values.append(
            f(
                bridged["quantiles_s"][q],
                r["baselines"][bridged["source"]]["quantiles_s"][q],
                r["baselines"][bridged["target"]]["quantiles_s"][q],
            )
        )
    value = median(values)
    assert value is not None
    return value


def route_label(route: str, first: dict[str, Any]) -> str:
    """``bund → tchap (10 links)``, ``bund → tchap, one room (stress)``."""
    if first.get("stress"):
        return f"{route} (stress)"
    links = first.get("links", 1)
    return f"{route} ({links} links)" if links > 1 else route


def latency_rows(runs: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for route, first in runs[0]["bridged"].items():
        src, tgt = first["source"], first["target"]
        label = route_label(route, first)
        for q, target_ms in QUANTILE_TARGETS_MS.items():
            if first.get("stress"):
                target_ms = None
            bridged = _per_run(runs, route, q, lambda b, s, t: b)
            base_src = _per_run(runs, route, q, lambda b, s, t: s)
            base_tgt = _per_run(runs, route, q, lambda b, s, t: t)
            overhead = _per_run(runs, route, q, lambda b, s, t: b - (s + t))
            ratio = _per_run(runs, route, q, lambda b, s, t: b / (s + t))
            ok = None if target_ms is None else overhead * 1000 <= target_ms
            rows.append(
                Row(
                    f"latency {label} {q}",
                    f"{ms(bridged)} (overhead {ms(overhead)})",
                    f"{src} {ms(base_src)} + {tgt} {ms(base_tgt)} = {ms(base_src + base_tgt)}",
                    f"{ratio:.2f}×",
                    "—" if target_ms is None else f"overhead ≤ {target_ms:g} ms",
                    judge(ok),
                )
            )
    rows += [lost_row(runs, route, first) for route, first in runs[0]["bridged"].items()]
    return rows


def lost_row(runs: list[dict[str, Any]], route: str, first: dict[str, Any]) -> Row:
    """Messages of ``route`` that never arrived, over every run, beside those its baselines
    lost (a baseline that loses messages says a server, not the bridge, dropped them)."""

    def count(streams: list[dict[str, Any]]) -> str:
        return f"{sum(s['lost'] for s in streams)} of {sum(s['sent'] for s in streams)}"

    bridged = [r["bridged"][route] for r in runs]
    lost = sum(s["lost"] for s in bridged)
    route = route_label(route, first)
    base = ", ".join(
        f"{net} {count([r['baselines'][net] for r in runs])}"
        for net in dict.fromkeys((first["source"], first["target"]))
    )
    return Row(f"latency {route}: messages lost", count(bridged), base, target="0",
               verdict=judge(not lost))  # fmt: skip


def throughput_rows(runs: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for label, first in runs[0].items():
        bridged = median([r[label]["bridged_per_s"] for r in runs])
        accepted = median([r[label]["accepted_per_s"] for r in runs])
        ratio = median([r[label]["ratio"] for r in runs])
        lost = sum(r[label]["lost"] for r in runs)
        sent = sum(r[label]["sent"] for r in runs)
        ok = lost == 0 and ratio is not None and ratio >= THROUGHPUT_RATIO
        serial = "serial_baseline" in first
        rows.append(
            Row(
                f"throughput, {label} ({first['sent']} msgs, {lost} of {sent} lost)",
                "—" if bridged is None else f"{bridged:.0f} msg/s",
                f"source accepted {accepted:.0f} msg/s",
                "—" if ratio is None else f"{ratio:.0%}",
                "— (reference)" if serial else f"≥ {THROUGHPUT_RATIO:.0%}, none lost",
                "" if serial else judge(ok),
            )
        )
        if serial:
            rows.append(serial_row(runs, label, bridged, lost))
    return rows


def serial_row(runs: list[dict[str, Any]], label: str, bridged: float | None, lost: int) -> Row:
    """The bridged rate of one link against the order-keeping limit: a client on the target
    homeserver sending one message after another (`Bench._serial_burst`)."""
    limit = median([r[label]["serial_baseline"]["accepted_per_s"] for r in runs])
    ratio = median([
        r[label]["bridged_per_s"] / r[label]["serial_baseline"]["accepted_per_s"]
        for r in runs if r[label]["serial_baseline"]["accepted_per_s"]
    ])  # fmt: skip
    ok = lost == 0 and ratio is not None and ratio >= THROUGHPUT_RATIO
    # tchap.test's CPU per message in either phase (runs before this field have none).
    bridged_hs = median(
        [r[label].get("cost", {}).get("server_cpu_ms_per_message", {}).get("tchap") for r in runs]
    )
    serial_hs = median([r[label]["serial_baseline"].get("tchap_cpu_ms_per_message") for r in runs])
    return Row(
        f"throughput, {label}, against the order-keeping limit",
        ("—" if bridged is None else f"{bridged:.1f} msg/s")
        + ("" if bridged_hs is None or serial_hs is None else f" (tchap {bridged_hs:.1f} ms CPU)"),
        f"serial client on tchap {limit:.1f} msg/s"
        + ("" if serial_hs is None else f" (tchap {serial_hs:.1f} ms CPU)"),
        "—" if ratio is None else f"{ratio:.0%}",
        f"≥ {THROUGHPUT_RATIO:.0%}, none lost",
        judge(ok),
    )


def route_pairs(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The bridged routes grouped by the two networks they join, in the order measured:
    ``bund ↔ tchap`` (both directions), ``bund → mail`` (one)."""
    pairs: dict[frozenset[str], list[str]] = {}
    for route, stream in runs[0]["bridged"].items():
        if stream.get("stress"):
            continue
        pairs.setdefault(frozenset((stream["source"], stream["target"])), []).append(route)
    return {
        routes[0] if len(routes) == 1 else routes[0].replace(" → ", " ↔ "): routes
        for routes in pairs.values()
    }


def cost_rows(
    latency: list[dict[str, Any]] | None, burst: list[dict[str, Any]] | None, rate: float
) -> list[Row]:
    """The bridge's cost at the steady rate for each pair of networks (the phases of both
    directions pooled), then in each burst."""
    rows = []
    if latency:
        for pair, routes in route_pairs(latency).items():
            costs = [r["bridged"][route]["cost"] for r in latency for route in routes]
            target = CPU_MS_PER_MAIL if "mail" in pair else CPU_MS_PER_TARGET
            rows += _cost_rows(costs, f"{pair} at {rate:g} msg/s", target)
        for route, first in latency[0]["bridged"].items():
            if first.get("stress"):
                costs = [r["bridged"][route]["cost"] for r in latency]
                label = f"{route_label(route, first)} at {rate:g} msg/s"
                rows += _cost_rows(costs, label, None)
    if burst:
        for label in burst[0]:
            rows += _cost_rows([r[label]["cost"] for r in burst], f"burst, {label}", None)
    return rows


def _cost_rows(costs: list[dict[str, Any]], where: str, target: float | None) -> list[Row]:
    """``target``: CPU milliseconds per message per target, None where the issue sets none
    (the arrival → request target goes with it)."""
    targets = target is not None
    per_msg = median([c["bridge_cpu_ms_per_message"] for c in costs])
    per_target = median([c["bridge_cpu_ms_per_target"] for c in costs])
    hs = {
        name: median([c["server_cpu_ms_per_message"][name] for c in costs])
        for name in costs[0]["server_cpu_ms_per_message"]
    }
    hs_text = ", ".join(f"{n} {v:.2f} ms" for n, v in hs.items() if v is not None) or "—"
    p99 = median([c["arrival_to_send_p99_s"] for c in costs])
    hs_total = sum(v for v in hs.values() if v is not None)
    return [
        Row(
            f"bridge CPU per message per target ({where})",
            "—" if per_target is None else f"{per_target:.2f} ms",
            f"servers per message: {hs_text}",
            "—" if per_target is None or not hs_total else f"{per_target / hs_total:.2f}×",
            "—" if target is None else f"≤ {target:g} ms",
            judge(per_target <= target if target is not None and per_target is not None else None),
        ),
        Row(
            f"bridge CPU per message ({where})",
            "—" if per_msg is None else f"{per_msg:.2f} ms",
        ),
        Row(
            f"arrival → outbound request p99 ({where})",
            ms(p99),
            target=f"≤ {ARRIVAL_TO_SEND_P99_MS:g} ms" if targets else "—",
            verdict=judge(
                p99 * 1000 <= ARRIVAL_TO_SEND_P99_MS if targets and p99 is not None else None
            ),
        ),
    ]


def scale_rows(s: dict[str, Any]) -> list[Row]:
    full = s["links"] >= SCALE["links"] and s["people"] >= SCALE["people"]

    def check(ok: bool) -> str:
        return judge(ok) if full else ""

    def at_most(label: str, value: float, limit: float, unit: str, digits: int) -> Row:
        """A row whose target is ``value`` ≤ ``limit`` (in ``unit``)."""
        return Row(label, f"{value:.{digits}f} {unit}", target=f"≤ {limit:g} {unit}",
                   verdict=check(value <= limit))  # fmt: skip

    size = f"{s['links']:,} links, {s['people']:,} people, {s['config_mb']:.0f} MB YAML"
    rows = [
        at_most(f"load + validate ({size})", s["load_s"], LOAD_S, "s", 2),
        at_most("peak RSS of load + validate", s["peak_rss_mb"], RSS_MB, "MB", 0),
    ]
    rooms = s.get("rooms", 2 * s["links"])
    for flavour, what in (
        ("tchap", "tchap as Tchap, rooms with an access rule"),
        ("matrix", "both plain Matrix"),
    ):
        ready = s[f"ready_{flavour}"]
        rows.append(at_most(f"run → ready, SQLite ({what})", ready["ready_s"], READY_S, "s", 2))
        if "requests" in ready:
            requests = ready["requests"]
            rows.append(
                Row(
                    f"homeserver requests by ready ({flavour}, {rooms:,} distinct rooms)",
                    f"{requests:.0f} ({requests / rooms:.4f} per room)",
                    target="none per room",
                    verdict=check(requests < rooms * PER_ROOM_AT_START),
                )  # fmt: skip
            )
        rows.append(at_most(f"bridge peak RSS at ready ({flavour})",
                            ready["bridge_peak_rss_mb"], RSS_MB, "MB", 0))  # fmt: skip
    for name, ns in s["lookup_ns"].items():
        rows.append(Row(f"lookup per event: {name}", f"{ns / 1000:.2f} µs"))
    return rows


def build(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "latency" in results:
        rows += latency_rows(results["latency"])
    if "throughput" in results:
        rows += throughput_rows(results["throughput"])
    rate = results.get("meta", {}).get("settings", {}).get("rate", 20.0)
    rows += cost_rows(results.get("latency"), results.get("throughput"), rate)
    if "scale" in results:
        rows += scale_rows(results["scale"])
    if "soak" in results:
        rows += soak_rows(results["soak"])
    return rows


def span(seconds: float) -> str:
    """``5 min``, or ``20 s`` for less than a minute (a quick run's)."""
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def soak_rows(s: dict[str, Any]) -> list[Row]:
    """The bridge's memory and CPU per message at the end of the soak against their values
    after its first sixth (`bench.soak`)."""
    full = s["duration_s"] >= SOAK_S
    where = f"{s['route']}, {s['links']} links, {s['rate']:g} msg/s, {span(s['duration_s'])}"
    sixth = span(s["sixth_s"])
    early = f"after {sixth}"

    def within(end: float | None, start: float | None) -> tuple[str, str]:
        if end is None or not start:
            return "—", ""
        ratio = end / start
        return f"{ratio:.2f}×", judge(ratio <= 1 + SOAK_DRIFT) if full else ""

    rss_ratio, rss_ok = within(s["rss_mb_end"], s["rss_mb_early"])
    cpu_end, cpu_early = s["cpu_ms_per_message_end"], s["cpu_ms_per_message_early"]
    cpu_ratio, cpu_ok = within(cpu_end, cpu_early)
    target = f"within {SOAK_DRIFT:.0%}"
    return [
        Row(f"soak: bridge RSS at the end ({where})", f"{s['rss_mb_end']:.0f} MB",
            f"{early} {s['rss_mb_early']:.0f} MB", rss_ratio, target, rss_ok),
        Row(f"soak: bridge CPU per message, last {sixth} ({where})",
            "—" if cpu_end is None else f"{cpu_end:.2f} ms",
            "—" if cpu_early is None else f"first {sixth} {cpu_early:.2f} ms",
            cpu_ratio, target, cpu_ok),
        Row(f"soak: messages lost ({where})", f"{s['lost']} of {s['sent']}", target="0",
            verdict=judge(not s["lost"])),
    ]  # fmt: skip


def other_cpu_shares(results: dict[str, Any]) -> list[float]:
    """The CPU share other processes took in each measured phase (latency and throughput)."""
    shares = []
    for run in results.get("latency", []):
        shares += run["baselines_other_processes_cpu_share"].values()
        shares += [s["cost"]["other_processes_cpu_share"] for s in run["bridged"].values()]
    for run in results.get("throughput", []):
        shares += [s["cost"]["other_processes_cpu_share"] for s in run.values()]
    return shares


def render(rows: list[Row], meta: dict[str, Any], results: dict[str, Any]) -> str:
    head = ("Figure", "Bridged", "Baseline (same run)", "Ratio", "Target", "Result")
    cells = [head, *((r.figure, r.bridged, r.baseline, r.ratio, r.target, r.verdict) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def line(c: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |"

    s = meta["settings"]
    load = meta["load_average"]
    notes = [
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}, {meta['seconds']} s, "
        f"1-min load average {load['before']:.2f} before the run, "
        f"reference loop {meta.get('reference_loop_s', float('nan')):.2f} s "
        "(10 million steps of plain Python, for comparing machines)"
        + (" — QUICK SMOKE RUN, not comparable with the targets" if meta["quick"] else ""),
        f"Median of {s['repeats']} run(s) per figure; latency at {s['rate']:g} msg/s for "
        f"{s['duration']:g} s per route and run.",
    ]
    shares = other_cpu_shares(results)
    if shares:
        notes.append(
            f"Processes outside the benchmark took {median(shares):.0%} of the machine's CPU "
            f"in the median measured phase, {max(shares):.0%} at most."
        )
    disturbed = results.get("disturbed_phases", [])
    if disturbed:
        notes.append(
            f"{len(disturbed)} phase(s) were measured again because other processes took more "
            "than 10% of the CPU meanwhile (see disturbed_phases in the JSON)."
        )
    notes.append("")
    table = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    table += [line(c) for c in cells[1:]]
    return "\n".join(notes + table)


def plot(results: dict[str, Any], path: Path) -> None:
    """Cumulative latency distributions of every route (all runs pooled), log-scaled."""
    if "latency" not in results:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    pooled: dict[str, list[float]] = {}
    for run in results["latency"]:
        for name, stream in run["baselines"].items():
            pooled.setdefault(f"baseline {name}", []).extend(stream["latencies_s"])
        for name, stream in run["bridged"].items():
            pooled.setdefault(f"bridged {name}", []).extend(stream["latencies_s"])
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, samples in pooled.items():
        xs = sorted(v * 1000 for v in samples)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", label=f"{name} (n={len(xs)})",
                linestyle="--" if name.startswith("baseline") else "-")  # fmt: skip
    s = results["meta"]["settings"]
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("send → seen by the receiving client (ms, log scale)")
    ax.set_ylabel("fraction of messages")
    ax.set_title(f"Passerelle latency at {s['rate']:g} msg/s, {s['duration']:g} s per run")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
