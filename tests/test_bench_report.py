"""The benchmark's table from measured figures (pure functions: the figures are made up here,
the measuring is `make bench`'s)."""

from __future__ import annotations

from typing import Any

from bench.report import Row, cost_rows, throughput_rows


def burst(bridged: float, serial: float) -> dict[str, Any]:
    return {"1 link": {"links": 1, "sent": 600, "lost": 0, "accepted_per_s": 60.0,
                       "bridged_per_s": bridged, "ratio": bridged / 60.0,
                       "cost": {"server_cpu_ms_per_message": {"tchap": 18.0}},
                       "serial_baseline": {"accepted_per_s": serial,
                                           "tchap_cpu_ms_per_message": 14.0}}}  # fmt: skip


def row(rows: list[Row], start: str) -> Row:
    return next(r for r in rows if r.figure.startswith(start))


def test_the_order_keeping_ratio_is_taken_within_each_run() -> None:
    """A slow serial client in one run and a slow bridge in another are not set against each
    other: each run's bridge is compared with the serial client of its own run."""
    runs = [burst(50.0, 50.0), burst(40.0, 60.0), burst(54.0, 54.0)]
    limit = row(throughput_rows(runs), "throughput, 1 link, against")
    assert limit.ratio == "100%"
    assert limit.verdict == "PASS"
    assert limit.bridged == "50.0 msg/s (tchap 18.0 ms CPU)"
    assert limit.baseline == "serial client on tchap 54.0 msg/s (tchap 14.0 ms CPU)"


def cost(ms_per_target: float) -> dict[str, Any]:
    return {
        "bridge_cpu_ms_per_message": ms_per_target,
        "bridge_cpu_ms_per_target": ms_per_target,
        "server_cpu_ms_per_message": {"bund": 20.0},
        "arrival_to_send_p99_s": 0.003,
    }


def test_a_mail_is_held_to_its_own_cpu_target() -> None:
    runs = [{"bridged": {
        "bund → tchap": {"source": "bund", "target": "tchap", "cost": cost(3.0)},
        "tchap → bund": {"source": "tchap", "target": "bund", "cost": cost(3.0)},
        "bund → mail": {"source": "bund", "target": "mail", "cost": cost(3.0)},
    }}]  # fmt: skip
    rows = cost_rows(runs, None, 20.0)
    matrix = row(rows, "bridge CPU per message per target (bund ↔ tchap")
    mail = row(rows, "bridge CPU per message per target (bund → mail")
    assert (matrix.target, matrix.verdict) == ("≤ 1 ms", "MISS")
    assert (mail.target, mail.verdict) == ("≤ 5 ms", "PASS")
