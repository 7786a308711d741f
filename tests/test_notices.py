"""The notice catalogue: every language says everything, with the same placeholders, and a
notice reads as people should read it."""

from __future__ import annotations

import pytest

from bridge.connector import Refusal
from bridge.notices import FALLBACK, LANGUAGES, catalogue, notice, placeholders


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != FALLBACK])
def test_every_language_has_every_text_with_the_same_placeholders(language: str) -> None:
    english, other = catalogue(FALLBACK), catalogue(language)
    assert set(other) == set(english)
    for key, text in english.items():
        assert placeholders(other[key]) == placeholders(text), key


def test_a_delivery_notice_in_each_language() -> None:
    undelivered = notice(
        "undelivered.message",
        quote=notice("quote", text="Treffen um 10?"),
        sender="Max Mustermann [BMI]",
        network="Tchap",
        reason=notice("reason.expired", days=5),
    )
    assert undelivered.render("de") == (
        "⚠️ Nachricht „Treffen um 10?“ von Max Mustermann [BMI] konnte nicht an Tchap "
        "zugestellt werden (seit 5 Tagen nicht erreichbar)."
    )
    assert undelivered.render("fr") == (
        "⚠️ Le message « Treffen um 10? » de Max Mustermann [BMI] n’a pas pu être remis à "
        "Tchap (injoignable depuis 5 jours)."
    )
    assert str(undelivered) == (
        "⚠️ Message “Treffen um 10?” from Max Mustermann [BMI] could not be delivered to Tchap "
        "(unreachable for 5 days)."
    )


def test_values_are_text_never_templates() -> None:
    shown = notice("reason.not_allowed", domain="{network} {0} {__class__}").render("en")
    assert shown == "the room there does not admit people from {network} {0} {__class__}"


def test_an_unknown_language_reads_english() -> None:
    assert notice("reason.room_off").render("xx") == "the room there is no longer bridged"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_status_page_names_every_refusal(language: str) -> None:
    """The status page shows each failure's reason as ``status.reason.<refusal>``."""
    texts = catalogue(language)
    assert [r.value for r in Refusal if f"status.reason.{r.value}" not in texts] == []
