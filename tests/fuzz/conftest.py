"""Hypothesis settings for the fuzz suite: generated hostile input against every parser and
renderer of untrusted data.

``make test`` runs a bounded, derandomized number of examples per property (the same examples
every run, so CI is repeatable); ``make fuzz`` runs many more random ones. Every input that once
broke the bridge is pinned with ``@example`` next to its property, so it is tried on every run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "test",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("FUZZ_PROFILE", "test"))
