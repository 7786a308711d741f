"""Tests of connectors.email.spool: attachments kept until delivered, then swept; quarantine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bridge.cli import main
from connectors.email.parse import MailAttachment
from connectors.email.spool import SWEEP_GRACE_SECONDS, Spool, spool_key

DAY = 86400.0


def test_attachments_are_kept_under_the_mail_key(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    key = spool_key("<m.1@anssi.test>")
    spool.put(
        key,
        (
            MailAttachment(1, "a.pdf", "application/pdf", b"%PDF"),
            MailAttachment(2, "b.png", "image/png", b"\x89PNG"),
        ),
    )
    assert spool.get(f"{key}/1") == b"%PDF" and spool.get(f"{key}/2") == b"\x89PNG"
    assert not list((tmp_path / "attachments" / key).glob(".*.tmp"))
    with pytest.raises(FileNotFoundError):
        spool.get(f"{key}/3")
    for bad in ("../../etc/passwd", f"{key}/../1", "mxc://bund.test/abc"):
        with pytest.raises(ValueError, match="not an attachment reference"):
            spool.get(bad)


def test_sweep_waits_for_an_empty_outbox_or_the_retention(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    old, fresh = spool_key("<old@x>"), spool_key("<fresh@x>")
    for key in (old, fresh):
        spool.put(key, (MailAttachment(1, "a", "text/plain", b"a"),))
    now = time.time()
    past = now - SWEEP_GRACE_SECONDS - 60
    os.utime(tmp_path / "attachments" / old, (past, past))
    assert spool.sweep(outbox_empty=False, max_age=7 * DAY, now=now) == 0
    assert spool.sweep(outbox_empty=True, max_age=7 * DAY, now=now) == 1
    assert spool.get(f"{fresh}/1") == b"a"
    assert spool.sweep(outbox_empty=False, max_age=7 * DAY, now=now + 8 * DAY) == 1
    assert not any((tmp_path / "attachments").iterdir())


def test_quarantine_is_listed_for_admins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "networks:\n"
        "  bund: {homeserver: 'http://127.0.0.1:8008', server_name: bund.test,"
        " appservice: {as_token: a, hs_token: h}}\n"
        "  mail: {kind: email, domain: l.test, relay: {host: smtp.test}, spool: q}\n"
        "links:\n"
        "  - {id: wg, rooms: {bund: '!wg:bund.test', mail: wg@l.test}}\n"
    )
    Spool(tmp_path / "q").quarantine(
        b"From: x@evil.test\r\n\r\nhi\r\n",
        "<f.1@evil.test>",
        "x@evil.test",
        ["wg@l.test"],
        "dkim=fail (d=evil.test)",
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["quarantine", "-c", str(config)])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"mail: 1 quarantined mail(s) in {tmp_path / 'q' / 'quarantine'}" in out
    assert "from x@evil.test to wg@l.test" in out
    assert "Message-ID <f.1@evil.test>" in out and "dkim=fail (d=evil.test)" in out
    (eml,) = (tmp_path / "q" / "quarantine").glob("*.eml")
    assert eml.read_bytes() == b"From: x@evil.test\r\n\r\nhi\r\n"
