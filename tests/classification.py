"""The classification levels an admin adds to a test world's config in the policy tests: OFFEN,
and VS-NfD, whose marks include the French DIFFUSION RESTREINTE."""

from __future__ import annotations

LEVELS = """\
classification:
  levels:
    - level: OFFEN
    - level: VS-NfD
      marks: [VS-NUR FÜR DEN DIENSTGEBRAUCH, DIFFUSION RESTREINTE]
"""


def classified(config: str) -> str:
    """A world's ``config`` with the `LEVELS`, put before its ``networks:``."""
    return config.replace("networks:\n", LEVELS + "networks:\n", 1)
