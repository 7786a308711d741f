"""Resolution of secret-capable values: ``{env: NAME}`` and ``{file: PATH}``.

Admins keep tokens and passwords out of the YAML by pointing at an environment variable or a
file (e.g. a systemd credential or a Kubernetes secret mount). The loader calls these helpers
and turns a `SecretError` into a located config error; the secret itself never appears in it.
"""

from __future__ import annotations

import os
import stat
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


MAX_SECRET_BYTES = 64 * 1024
"""Larger than any token, password or key file; a bigger file is not a secret file."""


def from_file(path: str, base_dir: Path) -> str:
    """The stripped contents of `path` (relative to `base_dir`), which must be a regular file of
    at most `MAX_SECRET_BYTES`, not empty.

    Opened without blocking and checked before reading, so that a FIFO cannot hang the check,
    a device cannot feed it for ever, and a pseudo-file (``/proc/self/environ``, whose size
    reads 0) is refused rather than read into a token.
    """
    full = base_dir / Path(path).expanduser()
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise SecretError(f"cannot read secret file {str(full)!r}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"secret file {str(full)!r} is not a regular file")
        if info.st_size == 0:
            what = "is empty" if not os.read(fd, 1) else "is a pseudo-file, not a regular file"
            raise SecretError(f"secret file {str(full)!r} {what}")
        if info.st_size > MAX_SECRET_BYTES:
            raise SecretError(f"secret file {str(full)!r} is larger than {MAX_SECRET_BYTES} bytes")
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"cannot read secret file {str(full)!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        value = data[:MAX_SECRET_BYTES].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"secret file {str(full)!r} is not UTF-8 text") from None
    if not value:
        raise SecretError(f"secret file {str(full)!r} is empty")
    return value
