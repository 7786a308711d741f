"""Tests for connectors.matrix.tchap with Tchap identifiers as in DESIGN.md."""

from __future__ import annotations

import pytest

from connectors.matrix.tchap import (
    ACCESS_RULES_EVENT,
    AccessRule,
    is_external_server,
    may_transition,
    parse_access_rule,
    restricted_room_refusal,
    server_name_for,
    split_display_name,
    user_id_from_email,
)

INTERIEUR = "agent.interieur.tchap.gouv.fr"


JEAN = "@jean.dupont-interieur.gouv.fr:agent.interieur.tchap.gouv.fr"
USER_IDS = {
    "design-example": ("jean.dupont@interieur.gouv.fr", INTERIEUR, JEAN),
    "lower-cased": (" Jean.Dupont@Interieur.Gouv.FR ", "Agent.Interieur.Tchap.Gouv.Fr", JEAN),
    "plus-tag-vanishes": ("jean.dupont+tchap@interieur.gouv.fr", INTERIEUR, JEAN),
    "other-characters-dropped": (
        "o'brien.élodie@exemple.fr",
        "agent.externe.tchap.gouv.fr",
        "@obrien.lodie-exemple.fr:agent.externe.tchap.gouv.fr",
    ),
    "allowed-characters-kept": ("a_b=c/d-e@x.fr", INTERIEUR, f"@a_b=c/d-e-x.fr:{INTERIEUR}"),
}
"""An address, the server of its Tchap account, and the account's user ID."""


class TestUserId:
    @pytest.mark.parametrize(("address", "server", "user_id"), USER_IDS.values(), ids=USER_IDS)
    def test_user_id_from_email(self, address: str, server: str, user_id: str) -> None:
        assert user_id_from_email(address, server) == user_id

    @pytest.mark.parametrize("bad", ["", "no-at-sign", "@interieur.gouv.fr", "jean@", "+x@a.fr"])
    def test_invalid(self, bad: str) -> None:
        with pytest.raises(ValueError):
            user_id_from_email(bad, INTERIEUR)


class TestServers:
    def test_server_name_for(self) -> None:
        assert server_name_for("@jean.dupont-interieur.gouv.fr:" + INTERIEUR) == INTERIEUR
        assert server_name_for("@bot:localhost:8448") == "localhost:8448"

    @pytest.mark.parametrize("bad", ["jean:x", "@:x", "@jean", "@jean:", "!room:x"])
    def test_server_name_for_invalid(self, bad: str) -> None:
        with pytest.raises(ValueError):
            server_name_for(bad)

    def test_external(self) -> None:
        assert is_external_server("agent.externe.tchap.gouv.fr")
        assert is_external_server("Agent.Externe.Tchap.Gouv.Fr")
        assert not is_external_server(INTERIEUR)
        assert not is_external_server("externe.tchap.gouv.fr.evil.example")


class TestDisplayName:
    def test_split(self) -> None:
        assert split_display_name("Jean Dupont [Intérieur]") == ("Jean Dupont", "Intérieur")
        assert split_display_name("Marie Curie-Sklodowska [Enseignement supérieur]") == (
            "Marie Curie-Sklodowska",
            "Enseignement supérieur",
        )

    def test_split_without_org(self) -> None:
        assert split_display_name("Jean Dupont") == ("Jean Dupont", None)
        assert split_display_name("[Intérieur]") == ("[Intérieur]", None)
        assert split_display_name("Jean []") == ("Jean []", None)
        assert split_display_name("Jean [a] suite") == ("Jean [a] suite", None)


class TestAccessRules:
    def test_event_type(self) -> None:
        assert ACCESS_RULES_EVENT == "im.vector.room.access_rules"

    def test_parse(self) -> None:
        assert parse_access_rule({"rule": "restricted"}) is AccessRule.RESTRICTED
        assert parse_access_rule({"rule": "unrestricted"}) is AccessRule.UNRESTRICTED
        assert parse_access_rule({"rule": "direct"}) is AccessRule.DIRECT

    @pytest.mark.parametrize("content", [None, {}, {"rule": "open"}, {"rule": 1}, {"x": "y"}])
    def test_parse_defaults_to_restricted(self, content: dict[str, object] | None) -> None:
        assert parse_access_rule(content) is AccessRule.RESTRICTED

    def test_str_enum(self) -> None:
        assert AccessRule.UNRESTRICTED == "unrestricted"
        assert str(AccessRule.DIRECT) == "direct"

    def test_refusal_restricted(self) -> None:
        reason = restricted_room_refusal(
            AccessRule.RESTRICTED, ["bund.example", "BSI.bund.de", "bmi.bund.de"], ["bund.example"]
        )
        assert reason is not None
        assert str(reason) == (
            "it is restricted (no external users) and people from bmi.bund.de, bsi.bund.de "
            "would join it"
        )

    def test_refusal_direct(self) -> None:
        reason = restricted_room_refusal(AccessRule.DIRECT, ["bund.example"], [])
        assert str(reason) == "it is a direct chat and people from bund.example would join it"

    def test_allowed(self) -> None:
        assert (
            restricted_room_refusal(AccessRule.RESTRICTED, ["Bund.Example"], ["bund.example"])
            is None
        )
        assert restricted_room_refusal(AccessRule.RESTRICTED, [], []) is None
        assert restricted_room_refusal(AccessRule.UNRESTRICTED, ["any.example"], []) is None

    def test_generators_accepted(self) -> None:
        domains = (d for d in ["a.example"])
        assert restricted_room_refusal(AccessRule.RESTRICTED, domains, iter(["b.example"]))

    def test_transitions(self) -> None:
        r, u, d = AccessRule.RESTRICTED, AccessRule.UNRESTRICTED, AccessRule.DIRECT
        assert may_transition(r, u)
        assert may_transition(r, r) and may_transition(u, u) and may_transition(d, d)
        assert not may_transition(u, r)
        assert not may_transition(r, d)
        assert not may_transition(d, u)
        assert not may_transition(u, d)
