"""What a homeserver's answer to a send means for the message: wait, retry, or give up."""

from __future__ import annotations

from mautrix.errors import make_request_error

from bridge.connector import DeliveryError, Refusal, Unavailable
from connectors.matrix.base import delivery_failure, token_refused


def error(status: int, errcode: str) -> Exception:
    return make_request_error(status, errcode, errcode, "the homeserver's words")


def test_a_refused_token_keeps_messages_waiting() -> None:
    """A wrong token is fixed by an admin; messages must not use up their attempts meanwhile."""
    failure = delivery_failure("bund", error(401, "M_UNKNOWN_TOKEN"))
    assert isinstance(failure, Unavailable) and failure.network_down
    assert "refused the bridge's access token" in str(failure)
    assert token_refused(error(401, "M_MISSING_TOKEN"))
    assert not token_refused(error(403, "M_FORBIDDEN"))


def test_outages_wait_and_refusals_count() -> None:
    assert isinstance(delivery_failure("bund", error(502, "")), Unavailable)
    assert isinstance(delivery_failure("bund", error(429, "M_LIMIT_EXCEEDED")), Unavailable)
    assert isinstance(delivery_failure("bund", TimeoutError()), Unavailable)
    too_large = delivery_failure("bund", error(413, "M_TOO_LARGE"))
    assert isinstance(too_large, DeliveryError) and too_large.reason is Refusal.TOO_LARGE
    forbidden = delivery_failure("bund", error(403, "M_FORBIDDEN"))
    assert isinstance(forbidden, DeliveryError) and not isinstance(forbidden, Unavailable)
