"""``passerelle federation-list`` as an operator runs it: make a key pair, sign a list, verify
it (with the key, or with the config of the network that reads it), and read exactly why a
list is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["federation-list", *argv])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_keygen_sign_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private, public = tmp_path / "operator.key", tmp_path / "operator.pub"
    code, out, _ = run(capsys, "keygen", "--private", str(private), "--public", str(public))
    assert code == 0 and "Ed25519 key pair" in out
    assert private.stat().st_mode & 0o777 == 0o600
    code, _, err = run(capsys, "keygen", "--private", str(private), "--public", str(public))
    assert (code, err) == (1, f"{private} exists already: a private key is never overwritten\n")

    doc = tmp_path / "list.json"
    doc.write_text(json.dumps({"version": 12, "expires": "2031-06-30T12:00:00+02:00",
                               "domains": ["tchap.example", "bund.example"]}))  # fmt: skip
    signed = tmp_path / "list.jws"
    assert run(capsys, "sign", str(doc), "--key", str(private), "-o", str(signed))[0] == 0
    code, out, err = run(capsys, "verify", str(signed), "--key", str(public))
    assert (code, err) == (0, "")
    assert out == (
        "version: 12\nexpires: 2031-06-30T10:00:00+00:00\ndomains (2):\n"
        "  bund.example\n  tchap.example\n"
    )

    config = tmp_path / "config.yaml"
    config.write_text(f"""\
networks:
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:2
    server_name: tchap.example
    appservice: {{as_token: c, hs_token: d}}
    federation_list: {{file: list.jws, public_key: {{file: {public.name}}}}}
  bund:
    homeserver: http://127.0.0.1:1
    server_name: bund.example
    appservice: {{as_token: a, hs_token: b}}
""")
    code, out, _ = run(capsys, "verify", "-c", str(config), "--network", "tchap")
    assert code == 0 and out.startswith("version: 12\n")
    code, _, err = run(capsys, "verify", "-c", str(config), "--network", "bund")
    assert (code, err) == (1, f"network 'bund' of {config} has no federation_list\n")


def test_verify_says_why_a_list_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = {}
    for name in ("operator", "other"):
        keys[name] = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
        run(capsys, "keygen", "--private", str(keys[name][0]), "--public", str(keys[name][1]))
    doc = tmp_path / "list.json"
    doc.write_text('{"version": 1, "expires": "2020-01-01T00:00:00Z", "domains": []}')
    signed = tmp_path / "list.jws"
    run(capsys, "sign", str(doc), "--key", str(keys["operator"][0]), "-o", str(signed))
    code, _, err = run(capsys, "verify", str(signed), "--key", str(keys["operator"][1]))
    assert (code, err) == (1, "refused (expired): expired at 2020-01-01T00:00:00+00:00\n")
    code, _, err = run(capsys, "verify", str(signed), "--key", str(keys["other"][1]))
    assert code == 1 and err.startswith("refused (bad_signature): the signature does not match")
    code, _, err = run(capsys, "verify", str(signed), "--key", str(keys["other"][0]))
    assert (code, err) == (
        1,
        f"{keys['other'][0]}: the key is a private key: give the public key that goes with it\n",
    )
    doc.write_text('{"version": 1, "domains": []}')
    code, _, err = run(capsys, "sign", str(doc), "--key", str(keys["operator"][0]))
    assert (code, err) == (1, f"{doc}: not signed (malformed): 'expires' is missing\n")
