"""Redact secrets from configuration and free text before anything leaves a source.

Keys that name a secret (password, token, secret, credential, access key, private key, ...) have
their value replaced; credentials embedded in URLs (``scheme://user:pass@host``), ``key=value``
pairs naming a secret, and bearer tokens inside free text are masked too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REDACTED = "*********(redacted)"
SECRET_KEY = re.compile(
    r"(?i)(pass(word|wd)?|secret|token|credential|private[._-]?key|access[._-]?key|api[._-]?key|"
    r"auth|session[._-]?key|signature|jaas|keystore|truststore[._-]?pass)"
)
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s:/@]+):([^\s@/]+)@")
INLINE_PAIR = re.compile(
    r"(?i)\b([\w.\-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|credential)[\w.\-]*)"
    r"([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"')]+)"
)
BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=\-]{8,}")
AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def is_secret_key(key: str) -> bool:
    """Whether a configuration key names a secret."""
    return SECRET_KEY.search(key) is not None


def redact_text(text: str) -> str:
    """``text`` with URL credentials, secret ``key=value`` pairs and bearer tokens masked."""
    if not text:
        return text
    text = URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
    text = INLINE_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return AWS_KEY_ID.sub(REDACTED, text)


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
