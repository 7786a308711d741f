"""Where and how the running bridge logs (the config's ``logging`` section).

Readable lines by default; ``format: json`` writes one JSON object per line (``time``,
``level``, ``logger``, ``message``, and ``exception`` with the traceback when there is one) for
admins who ship logs to a collector. ``file:`` writes to a file instead of standard error, held
by `logging.handlers.WatchedFileHandler`, which reopens it when log rotation has moved it away
(so logrotate needs neither ``copytruncate`` nor a signal). Whatever the format, no log line
carries a secret: tokens and passwords are never formatted into a message.

The JSON formatter is the standard library's `logging.Formatter` with `json.dumps` over the
record's fields: a dependency (python-json-logger) would add nothing these few lines lack.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from logging.handlers import WatchedFileHandler

from bridge.config.model import LogFormat, Logging

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (line breaks inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(settings: Logging) -> None:
    """Send every log record to the configured place in the configured format. Raises
    `OSError` when the log file cannot be opened."""
    handler: logging.Handler = (
        WatchedFileHandler(settings.file, encoding="utf-8")
        if settings.file is not None
        else logging.StreamHandler()
    )
    handler.setFormatter(
        JsonFormatter() if settings.format is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=settings.level, handlers=[handler], force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
