"""The bridge configuration: load and validate the YAML (`load_config`) into `Config`."""

from bridge.config.load import ConfigError, check_config, load_config
from bridge.config.model import Config, Delivery, Link, LinkRoom, Listen, Network, Person

__all__ = [
    "Config",
    "ConfigError",
    "Delivery",
    "Link",
    "LinkRoom",
    "Listen",
    "Network",
    "Person",
    "check_config",
    "load_config",
]
