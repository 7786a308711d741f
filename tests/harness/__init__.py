"""Test harness: real Synapse homeservers, real Matrix clients and the bridge process.

Everything runs on 127.0.0.1 with throw-away working directories, so end-to-end tests exercise
the same HTTP paths as production without any mocks.
"""

from __future__ import annotations

import importlib.util
import os
from typing import NoReturn

import pytest

from tests.harness.bridge import BridgeError, BridgeProcess
from tests.harness.clients import User
from tests.harness.synapse import Homeserver, HomeserverError, free_port

__all__ = [
    "BridgeError",
    "BridgeProcess",
    "Homeserver",
    "HomeserverError",
    "User",
    "free_port",
    "in_ci",
    "require_server",
    "synapse_available",
]


def in_ci() -> bool:
    """CI sets CI=true; there, a test that cannot get its servers must fail, not skip."""
    return os.environ.get("CI", "").lower() == "true"


def require_server(what: str, reason: str) -> NoReturn:
    """Give up on a test because ``what`` (e.g. "synapse") is unavailable: fail in CI, else skip."""
    message = f"{what} unavailable: {reason}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def synapse_available() -> str | None:
    """None if this interpreter has Synapse installed, else why not.

    Only looks the package up: importing Synapse here would be slow and would pull Twisted into
    the test process; a broken install shows up as a startup error with the log tail instead.
    """
    if importlib.util.find_spec("synapse") is None:
        return "the synapse package is not installed (pip install -e '.[test]')"
    return None
