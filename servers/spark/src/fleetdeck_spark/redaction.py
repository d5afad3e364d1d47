"""Redact secrets from configuration and free text before anything leaves a source.

The shared rules (:mod:`fleetdeck.redaction`) with Spark's own marker: keys that name a secret have
their value replaced; secrets inside free text are masked too.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetdeck.redaction import is_secret_name
from fleetdeck.redaction import redact_text as shared_redact_text

REDACTED = "*********(redacted)"
"""Spark's own marker (the History Server's), so both sources show the same text."""


def is_secret_key(key: str) -> bool:
    """Whether a configuration key names a secret."""
    return is_secret_name(key)


def redact_text(text: str) -> str:
    """``text`` with URL credentials, secret ``key=value`` pairs, tokens and keys masked."""
    return shared_redact_text(text, REDACTED)


def redact_value(key: str, value: str) -> str:
    """The value to show for configuration ``key``."""
    if is_secret_key(key):
        return REDACTED
    return redact_text(value)


def redact_config(config: Mapping[str, object]) -> dict[str, str]:
    """A sorted copy of ``config`` with every secret masked."""
    return {key: redact_value(key, str(value)) for key, value in sorted(config.items())}


def clip(text: str | None, limit: int) -> str | None:
    """Redact and truncate ``text`` to ``limit`` characters (marking the cut)."""
    if text is None:
        return None
    text = redact_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
