"""The servers the harness runs as child processes (Synapse, Prosody, the bridge): how each is
waited for until it serves, stopped, and killed at exit when a test run is aborted."""

from __future__ import annotations

import asyncio
import atexit
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

# Every child process the harness started, so an aborted test run (Ctrl-C, pytest.exit) does not
# leave Synapse or the bridge running and holding ports.
_children: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_children() -> None:
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Remember ``proc`` for the exit-time cleanup; returns it for chaining."""
    _children.add(proc)
    return proc


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit code. Synchronous so that it
    also works from atexit handlers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def log_tail(path: Path, lines: int = 60) -> str:
    """Last lines of a log file, for error messages (empty if there is none yet)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A server in a child process, ``proc`` while it was started and not stopped. Subclasses
    spawn it in ``start`` and say in `failed` what went wrong, with their logs."""

    STOP_TIMEOUT = 10.0
    """How long `stop` waits after SIGTERM by default."""

    proc: subprocess.Popen[bytes] | None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self) -> None:
        raise NotImplementedError

    def failed(self, what: str) -> Exception:
        """The error raised when starting failed: ``what`` happened."""
        raise NotImplementedError

    def stop(self, timeout: float | None = None) -> int | None:
        """Graceful stop: SIGTERM, wait ``timeout`` s (`STOP_TIMEOUT`), then SIGKILL; the exit
        code. Synchronous so it also works from atexit handlers and finalizers."""
        proc, self.proc = self.proc, None
        wait = self.STOP_TIMEOUT if timeout is None else timeout
        return None if proc is None else terminate(proc, wait)

    async def astop(self, timeout: float | None = None) -> int | None:  # noqa: ASYNC109
        """``stop()`` without blocking the event loop (the server may call back into the test)."""
        return await asyncio.to_thread(self.stop, timeout)

    async def restart(self) -> None:
        """Stop and start again with the same config, data and ports."""
        await self.astop()
        await self.start()

    def abandon(self) -> None:
        """Do away with a server that did not get ready in time."""
        self.stop()

    async def wait_ready(self, ready: Callable[[], Awaitable[bool]], timeout: float) -> None:  # noqa: ASYNC109
        """Wait until ``ready()`` holds; raise `failed` if the process exits first or
        ``timeout`` s pass (then it is abandoned)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise self.failed(f"exited with {rc} during startup")
            if await ready():
                return
            if time.monotonic() > deadline:
                self.abandon()
                raise self.failed(f"not ready after {timeout:.0f}s")
            await asyncio.sleep(0.1)

    async def wait_answering(self, url: str, timeout: float) -> None:  # noqa: ASYNC109
        """`wait_ready` for ``url`` to answer a GET with 200."""
        async with aiohttp.ClientSession() as session:

            async def answers() -> bool:
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        return resp.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    return False

            await self.wait_ready(answers, timeout)
