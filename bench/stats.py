"""Small statistics over latency samples: percentiles and the median of repeated runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), interpolated between the two nearest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float | None]) -> float | None:
    """Median of the runs that produced a value (None when none did)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
