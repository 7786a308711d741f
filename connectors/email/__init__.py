"""Email networks: the bridge's own SMTP server for mail to link addresses, an SMTP relay for
mail to the links' email members, DKIM and SPF on the way in, DKIM signing on the way out."""

from bridge.config.kinds.email import EmailNetwork
from bridge.connector import Connector, Host


def build(network: EmailNetwork, host: Host) -> Connector:
    from connectors.email.connector import EmailConnector

    return EmailConnector(network, host)
