"""Tests of connectors.email.folding: a mailed subject and sender name read as they were written,
in Python's own mail parser and in an independent decoder (Perl's Encode::MIME::Header, RFC
2047's reading), however the header is folded."""

from __future__ import annotations

import json
import shutil
import subprocess
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from bridge.events import Sender
from connectors.email.folding import MAX_ENCODED_WORD, POLICY
from connectors.email.outbound import wire_bytes
from tests import samples
from tests.samples import rendered_mail

ADDRESS = "wg@lists.passerelle.test"
STRASSE = "Straße – Übermäßig: Rückmeldung für Baustellen und Umleitungen im Süden"
"""Folded by the email package's own folder with "Rückmeldungfür" in every decoder."""
ZOE = "Zoë Größenwahn-Übermäßig – Abteilung Straße"
"""Folded by the email package's own folder with two spaces before "Straße" in Python's parser."""
SUBJECTS = [
    STRASSE,
    "Straße – Übermäßig",
    "Réunion du comité de pilotage : ordre du jour, compte rendu et suite",
    "🙂🙂🙂 Emoji 👩‍💻 mit Nullbreiten-Verbinder und geschütztem Leerzeichen",
    "x" * 120 + " ein Wort länger als eine Zeile",
    "Москва – Париж: совещание по вопросам кибербезопасности в марте",
]
NAMES = [
    ZOE,
    "Jürgen Groß – Übermäßig",
    "Ümit Özdemir – Referat Straßenbau und Übermäßigkeit",
    "Élodie Lefèvre-Dubois",
]


def mailed(text: str, name: str) -> bytes:
    event = samples.message(Sender("bund", "@z:bund.test", name), "wg", "!r:bund.test", "$1", text)
    msg = rendered_mail(samples.outgoing(event, ADDRESS), message_id="<m.1@lists.passerelle.test>")
    return wire_bytes(msg, "lists.passerelle.test", None)


def raw_field(raw: bytes, name: str) -> str:
    """A header field's value as sent, unfolded (RFC 5322: the line breaks removed)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    fields = head.replace("\r\n ", " ").replace("\r\n\t", "\t").split("\r\n")
    (value,) = [f.split(":", 1)[1].removeprefix(" ") for f in fields if f.startswith(f"{name}:")]
    return value


def perl_decode(values: list[str]) -> list[str]:
    """Each header value decoded by Perl's Encode::MIME::Header, which follows RFC 2047."""
    if shutil.which("perl") is None:
        pytest.skip("perl is not installed")
    script = (
        "use Encode; use JSON::PP; my $json = JSON::PP->new->ascii;"
        "while (<STDIN>) { print $json->encode([decode('MIME-Header', $json->decode($_)->[0])]),"
        ' "\\n" }'
    )
    lines = "".join(json.dumps([v]) + "\n" for v in values)
    done = subprocess.run(["perl", "-e", script], input=lines.encode(), capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"perl cannot decode MIME headers here: {done.stderr.decode()[:200]}")
    return [json.loads(line)[0] for line in done.stdout.decode("utf-8").splitlines()]


def test_subjects_read_as_written_in_python_and_in_perl() -> None:
    raws = [mailed(text, "Max") for text in SUBJECTS]
    expected = [f"[wg] {text if len(text) <= 60 else text[:59] + '…'}" for text in SUBJECTS]
    parsed = [str(BytesParser(policy=policy.default).parsebytes(raw)["Subject"]) for raw in raws]
    assert parsed == expected
    assert perl_decode([raw_field(raw, "Subject") for raw in raws]) == expected


def test_sender_names_read_as_written_in_python_and_in_perl() -> None:
    raws = [mailed("Hallo", name) for name in NAMES]
    expected = [f"{name} via Passerelle" for name in NAMES]
    parsed = [
        BytesParser(policy=policy.default).parsebytes(raw)["From"].addresses[0] for raw in raws
    ]
    assert [(a.display_name, a.addr_spec) for a in parsed] == [(e, ADDRESS) for e in expected]
    decoded = perl_decode([raw_field(raw, "From") for raw in raws])
    assert decoded == [f"{e} <{ADDRESS}>" for e in expected]


def test_lines_stay_within_78_characters_and_words_within_75() -> None:
    for raw in [mailed(text, name) for text in SUBJECTS for name in NAMES]:
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        assert max(len(line) for line in head.split("\r\n")) <= 78, head
        words = [w for w in head.split() if w.startswith("=?")]
        assert words and max(len(w.strip('"<>')) for w in words) <= MAX_ENCODED_WORD


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("Max Mustermann [BMI] via Passerelle", 'Max Mustermann "[BMI]" via Passerelle'),
        ('Jean "le chef" Dupont', 'Jean "\\"le" "chef\\"" Dupont'),
        ("Zoë [BMI] via Passerelle", '=?utf-8?q?Zo=C3=AB?= "[BMI]" via Passerelle'),
    ],
)
def test_plain_words_of_a_name_stay_readable_in_the_raw_mail(name: str, written: str) -> None:
    msg = EmailMessage()
    msg["From"] = Address(name, "wg", "lists.passerelle.test")
    assert POLICY.fold("From", msg["From"]) == f"From: {written} <{ADDRESS}>\r\n"
