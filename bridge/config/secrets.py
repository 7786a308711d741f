"""Resolution of secret-capable values: ``{env: NAME}`` and ``{file: PATH}``.

Admins keep tokens and passwords out of the YAML by pointing at an environment variable or a
file (e.g. a systemd credential or a Kubernetes secret mount). The loader calls these helpers
and turns a `SecretError` into a located config error; the secret itself never appears in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class SecretError(Exception):
    """A secret reference could not be resolved; the message names the source, not the value."""


def from_env(name: str, env: Mapping[str, str]) -> str:
    """The value of environment variable `name`, which must be set and not empty."""
    if name not in env:
        raise SecretError(f"environment variable {name!r} is not set")
    value = env[name].strip()
    if not value:
        raise SecretError(f"environment variable {name!r} is empty")
    return value


def from_file(path: str, base_dir: Path) -> str:
    """The stripped contents of `path` (relative to `base_dir`), which must not be empty."""
    full = base_dir / Path(path).expanduser()
    try:
        value = full.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"cannot read secret file {str(full)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"secret file {str(full)!r} is not UTF-8 text") from None
    if not value:
        raise SecretError(f"secret file {str(full)!r} is empty")
    return value
