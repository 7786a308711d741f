"""Run the Passerelle bridge as a real subprocess (``python -m bridge run -c CONFIG``).

A subprocess rather than an in-process instance so that tests cover the CLI and config loading,
and so that crash/restart tests can SIGKILL it like an operator's process manager would.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.process import ServerProcess, log_tail, track

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


class BridgeError(RuntimeError):
    """The bridge exited or never became ready."""


class BridgeProcess(ServerProcess):
    """The bridge process, its log file in ``workdir`` and its readiness endpoint."""

    def __init__(
        self, config_path: Path, workdir: Path, host: str = "127.0.0.1", port: int = 29300
    ) -> None:
        self.config_path = Path(config_path)
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.log_path = self.workdir / "bridge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ready_url(self) -> str:
        return f"http://{self.host}:{self.port}/_passerelle/ready"

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Launch ``python -m bridge run`` from the repo root, appending to the log file."""
        with self.log_path.open("ab") as out:
            out.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            out.flush()
            return track(
                subprocess.Popen(
                    [sys.executable, "-m", "bridge", "run", "-c", str(self.config_path)],
                    cwd=REPO_ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )

    def spawn(self) -> None:
        """Start the bridge without waiting for it to be ready (one that is not to be)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = self._spawn()

    async def start(self, timeout: float = START_TIMEOUT) -> None:  # noqa: ASYNC109
        """Spawn the bridge and wait for ``/_passerelle/ready`` to answer 200."""
        if self.running:
            return
        self.spawn()
        await self.wait_answering(self.ready_url, timeout)

    def failed(self, what: str) -> BridgeError:
        return BridgeError(f"bridge {what}\n{log_tail(self.log_path)}")

    def abandon(self) -> None:
        self.kill()

    def kill(self) -> None:
        """SIGKILL with no chance to clean up, for crash-recovery tests."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the process hangs as one held up by a long pause would (its sockets still
        accept connections, nothing answers)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    async def reload(self, timeout: float = 30.0) -> str:  # noqa: ASYNC109
        """SIGHUP, as ``systemctl reload`` sends it; what the bridge logged about the reload
        (its config file is read again), once it logged that it is done."""
        assert self.proc is not None
        start = len(self.log_text())
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logged = self.log_text()[start:]
            done = [line for line in logged.splitlines()
                    if "Config reloaded" in line or "Config not reloaded" in line]  # fmt: skip
            if done:
                return logged
            await asyncio.sleep(0.1)
        raise BridgeError(f"no reload logged after {timeout:.0f}s\n{log_tail(self.log_path)}")

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def log_text(self) -> str:
        """Everything the bridge wrote to stdout/stderr across all runs."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
