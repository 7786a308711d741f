"""The IDs the store keeps for reactions the bridge puts on a network that gives it none to
keep for one reaction: the message reacted to, who reacted and the key, behind a prefix that no
network's own IDs start with, so that withdrawing the reaction (a redaction) knows what to take
away."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReactionRefs:
    prefix: str

    def make(self, target: str, who: str, key: str) -> str:
        return f"{self.prefix}{target}\n{who}\n{key}"

    def parse(self, ref: str) -> tuple[str, str, str] | None:
        """(target, who, key) of an ID `make` wrote, or None for any other ID."""
        if not ref.startswith(self.prefix):
            return None
        parts = ref[len(self.prefix) :].split("\n", 2)
        return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None
