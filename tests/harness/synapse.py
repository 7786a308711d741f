"""Start real Synapse homeservers on loopback for end-to-end tests.

The config is written directly (no ``--generate-config``, which is slow) and tuned for tests:
SQLite in the workdir, no federation, no rate limits, shared-secret registration, quiet logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.harness.process import ServerProcess, log_tail, track

START_TIMEOUT = 60.0

# Large enough that no test ever waits on a rate limiter.
_NO_LIMIT = {"per_second": 100000, "burst_count": 100000}


class HomeserverError(RuntimeError):
    """Synapse failed to start or answered an admin call with an error."""


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Homeserver(ServerProcess):
    """One Synapse process with its own config, SQLite database and media store in ``workdir``."""

    STOP_TIMEOUT = 15.0

    def __init__(
        self,
        server_name: str,
        workdir: Path,
        port: int | None = None,
        appservice_files: list[Path] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.server_name = server_name
        self.workdir = Path(workdir)
        self.port = port if port is not None else free_port()
        self.appservice_files = [Path(p) for p in (appservice_files or [])]
        self.extra_config = dict(extra_config or {})
        self.registration_shared_secret = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = self.workdir / "homeserver.yaml"
        self.log_path = self.workdir / "homeserver.log"
        self.stdout_path = self.workdir / "stdout.log"
        self.start_seconds: float | None = None
        self._configured = False
        self.federation_port: int | None = None
        """Set by `federating`: the port of this server's TLS federation listener."""

    @classmethod
    def federating(cls, workdir: Path, **kwargs: Any) -> Homeserver:
        """A homeserver that federates with others made this way, on loopback: its server name
        is ``127.0.0.1:<port>`` (an IP literal, so no DNS is involved) and it serves federation
        over TLS there with a self-signed certificate, which the others accept."""
        port = free_port()
        hs = cls(f"127.0.0.1:{port}", workdir, **kwargs)
        hs.federation_port = port
        return hs

    @property
    def url(self) -> str:
        """Base URL of the client-server API."""
        return f"http://127.0.0.1:{self.port}"

    # -- configuration -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The homeserver.yaml content (JSON is valid YAML, so it is written as JSON)."""
        w = self.workdir
        cfg: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": self.url + "/",
            "pid_file": str(w / "homeserver.pid"),
            "listeners": self.config_listeners(),
            "database": {"name": "sqlite3", "args": {"database": str(w / "homeserver.db")}},
            "media_store_path": str(w / "media_store"),
            "signing_key_path": str(w / "signing.key"),
            "log_config": str(w / "log.yaml"),
            "report_stats": False,
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "enable_registration": False,
            "app_service_config_files": [str(p) for p in self.appservice_files],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "enable_media_repo": True,
            "max_upload_size": "50M",
            "url_preview_enabled": False,
            "presence": {"enabled": False},
            "rc_message": _NO_LIMIT,
            "rc_registration": _NO_LIMIT,
            "rc_login": {
                "address": _NO_LIMIT,
                "account": _NO_LIMIT,
                "failed_attempts": _NO_LIMIT,
            },
            "rc_joins": {"local": _NO_LIMIT, "remote": _NO_LIMIT},
            "rc_joins_per_room": _NO_LIMIT,
            "rc_invites": {
                "per_room": _NO_LIMIT,
                "per_user": _NO_LIMIT,
                "per_issuer": _NO_LIMIT,
            },
            "rc_3pid_validation": _NO_LIMIT,
            "rc_admin_redaction": _NO_LIMIT,
            "rc_room_creation": _NO_LIMIT,
            "rc_media_create": _NO_LIMIT,
            "rc_profile": _NO_LIMIT,
            "rc_user_directory": _NO_LIMIT,
            "rc_delayed_event_mgmt": _NO_LIMIT,
            "rc_reports": _NO_LIMIT,
            "rc_presence": {"per_user": _NO_LIMIT},
            "rc_third_party_invite": _NO_LIMIT,
        }
        if self.federation_port is not None:
            cfg.update(self._federation_config())
        cfg.update(self.extra_config)
        return cfg

    def _federation_config(self) -> dict[str, Any]:
        from tests.harness.smtp import self_signed_certificate

        assert self.federation_port is not None
        cert, key = self_signed_certificate(self.workdir / "tls")
        listener = {
            "port": self.federation_port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": True,
            "x_forwarded": False,
            "resources": [{"names": ["federation"], "compress": False}],
        }
        return {
            "listeners": [*self.config_listeners(), listener],
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "federation_verify_certificates": False,
            "federation_domain_whitelist": None,
            "ip_range_blacklist": [],  # the other servers are on 127.0.0.1
        }

    def config_listeners(self) -> list[dict[str, Any]]:
        """The client API listener."""
        return [
            {
                "port": self.port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ]

    def _write_config(self) -> None:
        """Write config, log config and signing key once; restarts reuse them."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "media_store").mkdir(exist_ok=True)
        key_path = self.workdir / "signing.key"
        if not key_path.exists():
            from signedjson.key import generate_signing_key, write_signing_keys

            with key_path.open("w") as f:
                write_signing_keys(f, [generate_signing_key("a_" + secrets.token_hex(2))])
        log_cfg = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        (self.workdir / "log.yaml").write_text(json.dumps(log_cfg, indent=2))
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self._configured = True

    # -- process lifecycle ---------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Launch Synapse with this interpreter, so it uses the same venv as the tests."""
        with self.stdout_path.open("ab") as out:
            return track(
                subprocess.Popen(
                    [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
                    cwd=self.workdir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )

    async def start(self, timeout: float = START_TIMEOUT) -> None:  # noqa: ASYNC109
        """Spawn Synapse and wait until the client API answers; raise with the log tail if not."""
        if self.running:
            return
        if not self._configured:
            self._write_config()
        t0 = time.monotonic()
        self.proc = self._spawn()
        await self.wait_answering(f"{self.url}/_matrix/client/versions", timeout)
        self.start_seconds = time.monotonic() - t0

    def failed(self, what: str) -> HomeserverError:
        return HomeserverError(
            f"Synapse {self.server_name} {what}\n"
            f"--- stdout ---\n{log_tail(self.stdout_path)}\n"
            f"--- log ---\n{log_tail(self.log_path)}"
        )

    def log_text(self) -> str:
        """Synapse's log file (WARNING and above) plus its stdout, for debugging failures."""
        return log_tail(self.stdout_path, 10**6) + "\n" + log_tail(self.log_path, 10**6)

    # -- admin API -----------------------------------------------------------------------------

    async def register(
        self,
        localpart: str,
        admin: bool = False,
        displayname: str | None = None,
        password: str | None = None,
    ) -> tuple[str, str]:
        """Create a user with the shared-secret admin API; return (user_id, access_token)."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        password = password or secrets.token_hex(12)
        async with aiohttp.ClientSession() as session:
            async with session.get(endpoint) as resp:
                nonce = (await resp.json())["nonce"]
            message = "\x00".join([nonce, localpart, password, "admin" if admin else "notadmin"])
            mac = hmac.new(self.registration_shared_secret.encode(), message.encode(), hashlib.sha1)
            body: dict[str, Any] = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            }
            if displayname is not None:
                body["displayname"] = displayname
            async with session.post(endpoint, json=body) as resp:
                data = await resp.json()
                if resp.status != 200:
                    raise HomeserverError(f"register {localpart}: {resp.status} {data}")
        return str(data["user_id"]), str(data["access_token"])

    async def __aenter__(self) -> Homeserver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()
