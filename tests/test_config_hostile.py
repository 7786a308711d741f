"""A config that is wrong in unusual ways gets a located error like any other, never a
traceback, never a secret repeated, never a check that hangs or eats memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import check_config
from bridge.config.secrets import MAX_SECRET_BYTES
from tests.test_config import VALID, errors_of, write

ROOT = Path(__file__).resolve().parent.parent

XMPP = """\
  xmpp:
    kind: xmpp
    component: bridge.xmpp.test
    secret: s
    domain: xmpp.test
"""


def test_deep_nesting_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "extra: " + "[" * 5000 + "]" * 5000 + "\n")
    assert errors_of(path) == [f"{path}: YAML error: values nested too deeply"]


def test_an_integer_of_thousands_of_digits_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: {port: " + "9" * 5000 + "}\n" + VALID)
    assert errors_of(path) == [
        f"{path}:1:16: YAML syntax error: cannot read this value as !!int (ValueError)"
    ]


def test_a_tag_that_does_not_fit_does_not_repeat_the_value(tmp_path: Path) -> None:
    text = VALID.replace("as_token: as-secret", "as_token: !!int Sup3rSecretToken")
    [error] = errors_of(write(tmp_path, text))
    assert "cannot read this value as !!int" in error
    assert "Sup3rSecretToken" not in error


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!set {a, b}", "networks.bund.homeserver: expected a string, got a set"),
        ("!!binary aGVsbG8=", "networks.bund.homeserver: expected a string, got binary data"),
        ("2001-12-14", "networks.bund.homeserver: expected a string, got a date"),
    ],
)
def test_unusual_yaml_types_are_named(tmp_path: Path, value: str, message: str) -> None:
    path = write(tmp_path, VALID.replace("http://127.0.0.1:8008", value))
    assert any(message in e for e in errors_of(path))


def test_a_sequence_alias_as_a_key_is_an_error(tmp_path: Path) -> None:
    text = "anchors: &seq [{a: 1}]\n" + VALID.replace("networks:\n", "networks:\n  ? *seq\n  : 1\n")
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:3:3: YAML syntax error: cannot read this value as !!map (TypeError)"
    ]


@pytest.mark.parametrize("number", [".nan", ".inf", "-.inf"])
def test_numbers_must_be_finite(tmp_path: Path, number: str) -> None:
    path = write(tmp_path, f"delivery: {{max_backoff: {number}}}\n" + VALID)
    assert errors_of(path) == [f"{path}:1:25: delivery.max_backoff: must be a finite number"]


@pytest.mark.parametrize("fmt", ["{name:>900000000}: {message}", "{name!r}: {message}",
                                 "{name}: {message:>5}", "{0}: {message}"])  # fmt: skip
def test_relay_formats_take_the_placeholders_only_as_written(tmp_path: Path, fmt: str) -> None:
    text = VALID.replace("access_token: relay-secret", f'access_token: t\n      format: "{fmt}"')
    [error] = errors_of(write(tmp_path, text))
    assert error.endswith("may only use the placeholders {name} and {message}, as written")


def test_network_names_whose_xmpp_addresses_could_meet(tmp_path: Path) -> None:
    text = VALID.replace("  tchap:\n", XMPP + "  bund_2:\n    homeserver: http://x\n"
                         "    server_name: b2.test\n    appservice: {as_token: a, hs_token: b}\n"
                         "  tchap:\n")  # fmt: skip
    [error] = errors_of(write(tmp_path, text))
    assert 'network name "bund_2" starts with the network name "bund" and \'_\'' in error
    assert check_config(write(tmp_path, text.replace("bund_2", "bund-2")), {})[0] is not None


class TestSecretFiles:
    def config(self, tmp_path: Path, secret_path: str) -> Path:
        text = VALID.replace("as_token: as-secret", f"as_token: {{file: {secret_path}}}")
        return write(tmp_path, text)

    def test_a_regular_file_is_read(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text("the-token\n")
        config, errors = check_config(self.config(tmp_path, "token"), {})
        assert errors == [] and config is not None
        assert config.networks["bund"].appservice.as_token == "the-token"  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("path", "why"),
        [
            ("/proc/self/environ", "is a pseudo-file, not a regular file"),
            ("/dev/zero", "is not a regular file"),
            (".", "is not a regular file"),
        ],
    )
    def test_what_is_not_a_regular_file_is_refused(
        self, tmp_path: Path, path: str, why: str
    ) -> None:
        [error] = errors_of(self.config(tmp_path, path))
        assert error.endswith(why)

    def test_a_fifo_is_refused_without_waiting_for_a_writer(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        config = self.config(tmp_path, "fifo")
        result = subprocess.run(
            [sys.executable, "-m", "bridge", "check-config", "-c", str(config)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 1
        assert "is not a regular file" in result.stdout + result.stderr

    def test_a_large_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
        [error] = errors_of(self.config(tmp_path, "big"))
        assert error.endswith(f"is larger than {MAX_SECRET_BYTES} bytes")
