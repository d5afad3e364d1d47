"""Secrets are masked in free text and configuration before they reach a model, a log or a store."""

from __future__ import annotations

import pytest

from fleetdeck.redaction import is_secret_name, redact_text


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("connecting with password=hunter2 to db", "hunter2"),
        ('{"api_key": "sk-live-123456"}', "sk-live-123456"),
        ("export AWS_SECRET_ACCESS_KEY=abcDEF123/xyz", "abcDEF123/xyz"),
        ("Authorization: Bearer abcdefghijklmnop.qrs", "abcdefghijklmnop"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl used", "eyJzdWIiOiJhbGljZSJ9"),
        ("postgresql://etl:s3cr3t@db.internal:5432/dw", "s3cr3t"),
        ("key id AKIAABCDEFGHIJKLMNOP in use", "AKIAABCDEFGHIJKLMNOP"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
    ],
)
def test_secret_values_are_redacted(line: str, secret: str) -> None:
    shown = redact_text(line)
    assert secret not in shown
    assert "***" in shown or "REDACTED" in shown


def test_ordinary_text_is_left_alone() -> None:
    line = "loaded 10 rows into ads.campaigns in 3.2 s (partition 2026-01-01)"
    assert redact_text(line) == line


def test_another_marker_can_stand_in_for_the_secret() -> None:
    assert redact_text("password=hunter2", marker="[hidden]") == "password=[hidden]"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("spark.ssl.keyStorePassword", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("spark.hadoop.fs.s3a.access.key", True),
        ("spark.executor.memory", False),
        ("PATH", False),
    ],
)
def test_secret_names_are_recognised(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
