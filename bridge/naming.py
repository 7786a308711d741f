"""How a person from one network is named on the others: one rule for every network.

A ghost, an XMPP occupant, a relayed line and a mail's From all read ``Name [Org] (Network)``:
the person's name, their organisation in brackets, then their network's ``name_suffix``. The
organisation comes from the ``people`` mapping or the source network (never from what the
person typed into their own name), so a German user who calls themselves
"Jean Dupont [Intérieur]" appears on Tchap as "Jean Dupont [BMI]", not as the French colleague
whose name that is: brackets at the end of a name from elsewhere are dropped, and the only
brackets shown are the ones the bridge vouches for.

Names are also made safe to write anywhere: no control characters, no line or paragraph
separators, no bidirectional overrides (which can make a name read backwards), collapsed
spaces and a bounded length.
"""

from __future__ import annotations

import re
import unicodedata

from bridge.config.model import Config, Person
from bridge.events import Sender
from bridge.kinds import account_format

MAX_NAME = 80
"""Characters of a person's name kept (Matrix allows 256 for a whole display name)."""
MAX_ORG = 40

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)
"""Control characters, zero-width and bidirectional formatting marks, line and paragraph
separators."""
_TRAILING_BRACKETS = re.compile(r"(?:\s*\[[^\[\]]*\])+$")


def clean(text: str | None, limit: int = MAX_NAME) -> str:
    """``text`` fit for a name or a header on any network: unsafe characters removed, runs of
    white space made one space, NFC, at most ``limit`` characters (an ellipsis marks a cut)."""
    if not text:
        return ""
    text = " ".join(text[: limit * 4].split())  # line breaks and tabs become spaces
    text = " ".join(unicodedata.normalize("NFC", _UNSAFE.sub("", text)).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def shown_name(sender: Sender) -> str:
    """The sender as every other network shows them: ``Name [Org] (Suffix)``.

    ``sender.org`` is the organisation the bridge vouches for (the ``people`` mapping, the
    source network's ``org_label``, or the organisation a Tchap homeserver puts in its users'
    names); without one, the name stands with the suffix alone.
    """
    name = _TRAILING_BRACKETS.sub("", clean(sender.display_name)).strip()
    name = name or clean(sender.user_id)
    org = clean(sender.org, MAX_ORG).replace("[", "(").replace("]", ")")
    suffix = clean(sender.suffix)
    label = f"{name} [{org}]" if org else name
    return f"{label} {suffix}" if suffix else label


PERSON = "=people"
"""Where a listed person's ghosts and puppets live instead of under a network's name (``=``
cannot start a network's name, so the two never meet)."""


def person_sender(config: Config, person: Person) -> Sender:
    """A listed person as a sender from their first account (their home network), named as
    the `people` mapping says: how their ghosts and puppets are named wherever they write from
    (for renaming them when the mapping changes)."""
    network, account = next(iter(person.accounts.items()))
    home = config.networks[network]
    return Sender(network=network, user_id=account, display_name=person.name,
                  org=person.org or home.org_label, suffix=home.name_suffix,
                  person_id=person.id)  # fmt: skip


def address_parts(config: Config, sender: Sender) -> tuple[str, str]:
    """What a sender's ghost or puppet on another network is made from: a listed person's
    ``(PERSON, id)``, whichever of their accounts they wrote from, so they are one person
    everywhere; anyone else's ``(network, account in its local form)``."""
    if sender.person_id is not None:
        return PERSON, sender.person_id
    return sender.network, account_format(config, sender.network).local_form(sender.user_id)


def owner_account(config: Config, head: str, local: str, here: str) -> tuple[str, str] | None:
    """The (network, account) behind address parts read back from a ghost or puppet on network
    ``here``: a listed person's first account elsewhere, or the account itself."""
    if head != PERSON:
        return head, account_format(config, head).from_local_form(local)
    person = config.person(local)
    if person is None:
        return None
    return next(((n, a) for n, a in person.accounts.items() if n != here), None)


def heads(config: Config) -> list[str]:
    """Every first part `address_parts` can give: the network names and `PERSON`."""
    return [*config.networks, PERSON]
