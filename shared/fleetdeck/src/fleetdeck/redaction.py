"""Mask secrets in text and configuration before anything reaches a model, a log or a store.

One set of rules for every server: values of secret-named keys (``password=…``, ``"token": "…"``),
credentials in URLs (``scheme://user:pass@host``), bearer / basic credentials, JWTs, cloud and SaaS
access keys, and PEM private-key blocks.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "***"

SECRET_NAME: Final = re.compile(
    r"(?i)(pass(word|wd)?|pwd|secret|token|credential|private[._-]?key|access[._-]?key|api[._-]?key|"
    r"apikey|auth|session[._-]?key|signature|jaas|keystore|truststore)"
)
_SENSITIVE_WORDS = (
    r"password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"client[_-]?secret|credentials?|auth|session[_-]?key"
)
_KEY_VALUE = re.compile(  # key=value, key: value, "key": "value" for secret-named keys
    rf"""(?i)(["']?\b[\w.-]{{0,30}}?(?:{_SENSITIVE_WORDS})[\w.-]{{0,30}}["']?\s*[=:]\s*)(["']?)([^\s"',;&)]+)(["']?)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@")
_TOKENS = re.compile(
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"  # GitHub tokens
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"  # Slack tokens
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
)


def is_secret_name(name: str) -> bool:
    """Whether a setting or variable called ``name`` holds a secret."""
    return SECRET_NAME.search(name) is not None


def redact_text(text: str, marker: str = REDACTED) -> str:
    """``text`` with every secret-looking value replaced by ``marker``."""
    if not text:
        return text
    text = _PRIVATE_KEY.sub(marker, text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{marker}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {marker}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{marker}{m.group(4)}", text)
    return _TOKENS.sub(marker, text)
