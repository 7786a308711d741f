"""Email networks: the bridge's own SMTP server for mail to link addresses, an SMTP relay for
mail to the links' email members, DKIM and SPF on the way in, DKIM signing on the way out."""

from __future__ import annotations

from bridge.kinds import Kind, connector
from connectors.email.commands import add_commands
from connectors.email.config import EmailSchema
from connectors.email.personal import EmailData

KIND = Kind(
    name="email",
    schema=EmailSchema,
    build=connector("connectors.email.connector", "EmailConnector"),
    personal=EmailData(),
    commands=add_commands,
)
