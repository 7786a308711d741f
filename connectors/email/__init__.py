"""Email networks: the bridge's own SMTP server for mail to link addresses, an SMTP relay for
mail to the links' email members, DKIM and SPF on the way in, DKIM signing on the way out."""

from __future__ import annotations

from bridge.connector import Connector, Host
from bridge.kinds import Kind
from connectors.email.commands import add_commands
from connectors.email.config import EmailNetwork, EmailSchema
from connectors.email.personal import EmailData


def build(network: EmailNetwork, host: Host) -> Connector:
    from connectors.email.connector import EmailConnector

    return EmailConnector(network, host)


KIND = Kind(
    name="email",
    schema=EmailSchema,
    account_format=EmailSchema.account_format,
    build=build,
    personal=EmailData(),
    commands=add_commands,
)
