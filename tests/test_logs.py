"""The log for admins who ship it: the bridge process writes JSON lines to the configured file,
follows log rotation, and never writes a token; a log file it cannot open stops it with one
clear line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.logs import JsonFormatter
from tests.harness import BridgeProcess, free_port
from tests.harness.bridge import REPO_ROOT

AS_TOKEN, HS_TOKEN = "as-token-never-logged-4f1c", "hs-token-never-logged-9b2e"
CONFIG = """\
database: sqlite:passerelle.db
listen: {{host: 127.0.0.1, port: {port}}}
logging:
  level: DEBUG
  format: json
  file: {file}
networks:
  bund:
    homeserver: http://127.0.0.1:{closed}
    server_name: bund.test
    appservice: {{as_token: {as_token}, hs_token: {hs_token}}}
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:{closed}
    server_name: tchap.test
    appservice: {{as_token: {as_token}-2, hs_token: {hs_token}-2}}
"""


def write_config(root: Path, file: str) -> Path:
    """A bridge whose homeservers never answer: it starts, listens and keeps logging that
    they are not reachable yet (a warning every 2 s per network)."""
    path = root / "config.yaml"
    path.write_text(CONFIG.format(port=free_port(), file=file, closed=free_port(),
                                  as_token=AS_TOKEN, hs_token=HS_TOKEN))  # fmt: skip
    return path


def records(path: Path) -> list[dict[str, Any]]:
    """Every complete line of the log file, each read as one JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def wait_for(path: Path, message: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The file's records, once one of them starts with ``message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = records(path)
        if any(r["message"].startswith(message) for r in found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {message!r} in {path}: {records(path)[-5:]}")


def test_the_bridge_logs_json_lines_to_its_file_and_follows_rotation(tmp_path: Path) -> None:
    log = tmp_path / "passerelle.log"
    bridge = BridgeProcess(write_config(tmp_path, "passerelle.log"), tmp_path / "run")
    bridge.spawn()
    try:
        before = wait_for(log, "Homeserver http://127.0.0.1:")
        log.rename(tmp_path / "passerelle.log.1")  # as logrotate does
        after = wait_for(log, "Homeserver http://127.0.0.1:")
    finally:
        bridge.stop()
    started = [r for r in before if r["message"].startswith("Passerelle listening on")]
    assert [(r["level"], r["logger"]) for r in started] == [("INFO", "passerelle")]
    for record in before + after:
        assert {"time", "level", "logger", "message"} <= set(record)
        assert set(record) <= {"time", "level", "logger", "message", "exception", "stack"}
        assert datetime.fromisoformat(record["time"]).utcoffset() is not None
    warning = next(r for r in after if r["message"].startswith("Homeserver"))
    assert warning["level"] == "WARNING" and warning["logger"].startswith("passerelle.")
    everything = (tmp_path / "passerelle.log.1").read_text() + log.read_text()
    assert AS_TOKEN not in everything and HS_TOKEN not in everything
    assert "Passerelle listening on" not in bridge.log_text()  # the file, not standard error


def test_an_exception_is_one_line_with_its_traceback() -> None:
    try:
        raise ValueError("kaputt\nzweite Zeile")
    except ValueError:
        record = logging.LogRecord("passerelle.bund", logging.ERROR, __file__, 1,
                                   "Could not handle %s", ("$ev",), sys.exc_info())  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "Could not handle $ev"
    assert entry["level"] == "ERROR" and entry["logger"] == "passerelle.bund"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: kaputt\nzweite Zeile")


def test_a_log_file_that_cannot_be_opened_stops_the_bridge_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "missing-directory/passerelle.log")
    done = subprocess.run([sys.executable, "-m", "bridge", "run", "-c", str(config)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        f"{config}: logging.file: cannot open {tmp_path}/missing-directory/passerelle.log: "
        "No such file or directory\n"
    )
