"""Names that look alike collide."""

from __future__ import annotations

from fleetdeck_registry.names import find_collisions, skeleton


def test_case_and_compatibility_forms_collide() -> None:
    assert skeleton("Presto") == skeleton("presto") == skeleton("\uff50\uff52\uff45\uff53\uff54\uff4f")


def test_cyrillic_and_digit_look_alikes_collide() -> None:
    assert skeleton("presto") == skeleton("pr\u0435sto")  # Cyrillic small ie
    assert skeleton("list_orders") == skeleton("list_0rders")
    assert skeleton("io.fleetdeck/presto") == skeleton("io-fleetdeck/presto")


def test_invisible_characters_do_not_hide_a_duplicate() -> None:
    assert find_collisions(["get_order", "get\u200b_order"]) == [("get_order", "get\u200b_order")]


def test_different_names_do_not_collide() -> None:
    assert find_collisions(["list_orders", "get_order", "cancel_order"]) == []
