"""SPIFFE IDs, parsed strictly as the SPIFFE-ID specification (§2) defines them.

``spiffe://<trust-domain>/<path>``: the scheme is exactly ``spiffe``; the trust domain is non-empty,
lowercase ``[a-z0-9._-]``, at most 255 bytes, with no user info and no port; the path is empty or
made of ``/``-separated segments of ``[a-zA-Z0-9._-]``, none empty, none ``.`` or ``..``, with no
trailing ``/``; nothing is percent-encoded; there is no query and no fragment; the whole ID is at
most 2048 bytes. Whatever is not accepted here is refused with the rule it broke — never
normalised — so two accepted IDs are equal exactly when their strings are, and prefix matching
(``spiffe://example.org/ns/prod/*``) cannot be fooled by ``..`` or ``%2e``.

The specification says the scheme and trust domain are case-insensitive but must be written in
lowercase; this parser refuses the uppercase forms rather than folding them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from fleetdeck.errors import InvalidInputError

SCHEME = "spiffe"
PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

_TRUST_DOMAIN_CHARS = frozenset(string.ascii_lowercase + string.digits + "-._")
_SEGMENT_CHARS = frozenset(string.ascii_letters + string.digits + "-._")


class InvalidSpiffeIdError(InvalidInputError, ValueError):
    """A SPIFFE ID (or trust domain name) breaks the specification; ``reason`` names the rule.

    It is also a :class:`ValueError`, so a pydantic validator that parses an ID reports it as a
    validation error naming the setting. The offending text is never echoed: it may come from a
    caller and be arbitrarily large.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid SPIFFE ID: {reason}")
        self.reason = reason


def parse_trust_domain(name: str) -> str:
    """Return ``name`` if it is a valid trust domain name, else raise :class:`InvalidSpiffeIdError`."""
    if not name:
        raise InvalidSpiffeIdError("trust domain is missing")
    if "@" in name:
        raise InvalidSpiffeIdError("user info is not allowed")
    if ":" in name and not name.startswith("["):  # an IPv6 literal fails the character rule
        raise InvalidSpiffeIdError("a port is not allowed")
    if "%" in name:
        raise InvalidSpiffeIdError("percent-encoding is not allowed")
    if any(c in string.ascii_uppercase for c in name):
        raise InvalidSpiffeIdError("trust domain must be lowercase")
    if not _TRUST_DOMAIN_CHARS.issuperset(name):
        raise InvalidSpiffeIdError("trust domain may only contain a-z, 0-9, '.', '-' and '_'")
    if len(name) > MAX_TRUST_DOMAIN_BYTES:
        raise InvalidSpiffeIdError(f"trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes")
    return name


def _check_path(path: str) -> None:
    if not path:
        return
    if not path.startswith("/"):
        raise InvalidSpiffeIdError("path must start with '/'")
    if "%" in path:
        raise InvalidSpiffeIdError("percent-encoding is not allowed")
    segments = path[1:].split("/")
    for index, segment in enumerate(segments):
        if not segment:
            last = index == len(segments) - 1
            raise InvalidSpiffeIdError("trailing '/' is not allowed" if last else "empty path segment")
        if segment in (".", ".."):
            raise InvalidSpiffeIdError("relative path segment ('.' or '..') is not allowed")
        if not _SEGMENT_CHARS.issuperset(segment):
            raise InvalidSpiffeIdError("path segments may only contain a-z, A-Z, 0-9, '.', '-' and '_'")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A valid SPIFFE ID. ``path`` is ``""`` (the trust domain itself) or starts with ``/``.

    Constructing one directly validates the parts as :meth:`parse` does.
    """

    trust_domain: str
    path: str = ""

    def __post_init__(self) -> None:
        parse_trust_domain(self.trust_domain)
        _check_path(self.path)
        if len(PREFIX) + len(self.trust_domain) + len(self.path) > MAX_ID_BYTES:
            raise InvalidSpiffeIdError(f"longer than {MAX_ID_BYTES} bytes")

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """Parse ``text`` strictly, or raise :class:`InvalidSpiffeIdError` naming the broken rule."""
        if not text:
            raise InvalidSpiffeIdError("empty")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise InvalidSpiffeIdError(f"longer than {MAX_ID_BYTES} bytes")
        if not text.startswith(PREFIX):
            if text[: len(PREFIX)].lower() == PREFIX:
                raise InvalidSpiffeIdError("scheme must be lowercase 'spiffe'")
            raise InvalidSpiffeIdError("scheme must be 'spiffe://'")
        rest = text[len(PREFIX) :]
        if "#" in rest:
            raise InvalidSpiffeIdError("a fragment is not allowed")
        if "?" in rest:
            raise InvalidSpiffeIdError("a query is not allowed")
        trust_domain, slash, path = rest.partition("/")
        return cls(trust_domain, slash + path)

    @property
    def is_trust_domain_id(self) -> bool:
        """Whether this names the trust domain itself (no path) rather than a workload in it."""
        return not self.path

    def __str__(self) -> str:
        return f"{PREFIX}{self.trust_domain}{self.path}"
