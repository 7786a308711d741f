"""Passerelle's benchmarks (``python -m bench``, ``make bench``): the bridge measured against the
real homeservers it joins, every bridged figure next to its baseline from the same run.

Imports nothing, so that `bench.mapping` runs in an interpreter holding only the bridge.
"""
