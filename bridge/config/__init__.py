"""The bridge configuration: load and validate the YAML (`load_config`) into `Config`."""

from bridge.config.load import ConfigError, check_config, load_config
from bridge.config.model import (
    AppserviceSettings,
    Config,
    Delivery,
    Flavour,
    Link,
    LinkRoom,
    Listen,
    MatrixMode,
    MatrixNetwork,
    Network,
    Person,
    RelaySettings,
    RoomCreate,
)

__all__ = [
    "AppserviceSettings",
    "Config",
    "ConfigError",
    "Delivery",
    "Flavour",
    "Link",
    "LinkRoom",
    "Listen",
    "MatrixMode",
    "MatrixNetwork",
    "Network",
    "Person",
    "RelaySettings",
    "RoomCreate",
    "check_config",
    "load_config",
]
