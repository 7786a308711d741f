"""The benchmark's arithmetic: percentiles of latency samples and quantiles of the bridge's
Prometheus histogram, as the report prints them."""

from __future__ import annotations

import math

import pytest

from bench.cost import Metrics
from bench.stats import median, percentile


def test_percentile_interpolates_between_ranks() -> None:
    samples = [0.010, 0.020, 0.030, 0.040, 0.050]
    assert percentile(samples, 50) == pytest.approx(0.030)
    assert percentile(samples, 100) == pytest.approx(0.050)
    assert percentile(samples, 90) == pytest.approx(0.046)
    assert percentile([0.5], 99) == 0.5


def test_median_ignores_runs_without_a_value() -> None:
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([None]) is None


def test_histogram_quantile_like_promql() -> None:
    # 100 observations: 90 at most 1 ms, 9 more at most 2 ms, the last one at most 5 ms.
    buckets = {0.001: 90.0, 0.002: 99.0, 0.005: 100.0, math.inf: 100.0}
    metrics = Metrics(received=100, delivered=100, buckets=buckets)
    assert metrics.quantile(0.5) == pytest.approx(0.001 * 50 / 90)
    assert metrics.quantile(0.99) == pytest.approx(0.002)
    assert metrics.quantile(0.995) == pytest.approx(0.002 + 0.003 * 0.5)


def test_histogram_difference_counts_only_the_phase() -> None:
    before = Metrics(10, 10, {0.001: 10.0, math.inf: 10.0})
    after = Metrics(30, 40, {0.001: 10.0, math.inf: 30.0})
    phase = after - before
    assert (phase.received, phase.delivered) == (20, 30)
    assert phase.quantile(0.5) == 0.001  # every new observation is above the last finite bound
    assert Metrics(0, 0, {}).quantile(0.99) is None
