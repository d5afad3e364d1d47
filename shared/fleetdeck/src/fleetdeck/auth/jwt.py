"""The user layer: verify the end-user's bearer JWT against the issuer's JWKS.

Verification is strict and ordered so that nothing expensive happens for a malformed token:

1. *Pre-parse* (no key, no signature work): size cap; exactly three base64url segments; header and
   payload parsed as UTF-8 JSON objects that refuse duplicate members; ``alg`` in the allowlist
   (never ``none`` or ``HS*``); ``crit`` refused (no extension is understood); header-supplied key
   material (``jku``, ``x5u``, ``jwk``, ``x5c``) refused and never fetched; ``typ`` (when present)
   ``JWT`` or ``at+jwt``; a ``kid``; ``exp``/``nbf``/``iat`` plain integers in a sane range; the
   required claims present; ``iss`` equal to the configured issuer (so foreign tokens cost no fetch).
2. *Key*: the ``kid`` looked up in the :class:`~fleetdeck.auth.jwks.JwksCache`; the key type and
   curve must match ``alg`` (and the JWK's own ``alg`` when it has one).
3. *Signature*: checked by the key's bound Tink (BoringSSL) check over the exact signing input
   (:mod:`fleetdeck.auth.signature`).
4. *Claims* of the now-verified payload: the audience (this server's canonical URL, RFC 8707: a
   token minted for a sibling server fails), ``exp``/``nbf``/``iat`` with the leeway.

:class:`JwtVerifier` is the SDK's ``TokenVerifier``: ``verify_token`` answers ``None`` on any failure
(the SDK then replies 401 with ``WWW-Authenticate: Bearer …, resource_metadata=…``) and logs the
reason at INFO, never the token. :meth:`JwtVerifier.verify` raises :class:`AuthenticationError` whose
``reason`` (an :class:`AuthFailure`) says why, for tests and the audit trail. ``AccessToken`` gets
``subject`` = ``sub``, ``client_id`` = ``azp`` or ``client_id`` or ``sub``, ``scopes`` from ``scope``
(space-separated) or ``scp``, ``expires_at`` = ``exp``, ``resource`` = the audience, ``claims`` = the
verified payload. Note that the SDK's bearer middleware refuses a token past ``exp`` with no leeway.

Cost (``bench/bench_jwt.py``): the signature check dominates; the header and payload are decoded
once (PyJWT's ``decode``, which parsed them a second time, cost more than the signature itself).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from mcp.server.auth.provider import AccessToken, TokenVerifier
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleetdeck.auth.jwks import (
    JwksCache,
    JwksUnavailableError,
    SigningKey,
    UnknownKeyError,
    base64url_decode,
    strict_json,
)
from fleetdeck.auth.principal import Principal, User
from fleetdeck.auth.signature import InvalidSignature
from fleetdeck.errors import ConfigError, FleetdeckError, Outcome
from fleetdeck.settings import is_loopback_host

__all__ = ["AuthFailure", "AuthenticationError", "JwtVerifier", "UserAuthSettings", "VerifiedUser"]

logger = logging.getLogger(__name__)

SUPPORTED_ALGORITHMS: Final = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
MINIMUM_REQUIRED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp"})
MAX_NUMERIC_DATE: Final = 10**11  # year ~5138: anything larger is an attack or a bug (e.g. milliseconds)
HEADER_KEY_MATERIAL: Final = ("jku", "x5u", "jwk", "x5c")
ACCEPTED_TYPES: Final = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
VERIFIED_TTL_S: Final = 60.0
"""How long a verified token is answered from the cache (bounds how long a removed key keeps working)."""
VERIFIED_MAX_ENTRIES: Final = 1024
VERIFIED_MAX_TOKEN_BYTES: Final = 4096
HEADER_CACHE_ENTRIES: Final = 64


class AuthFailure(StrEnum):
    """Why a bearer token was refused: stable codes for logs, audit records and tests."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    DUPLICATE_MEMBER = "duplicate_member"
    ALG_NONE = "alg_none"
    ALG_SYMMETRIC = "alg_symmetric"
    ALG_NOT_ALLOWED = "alg_not_allowed"
    CRIT = "crit"
    HEADER_KEY_MATERIAL = "header_key_material"
    TYP = "typ"
    KID = "kid"
    CLAIM_TYPE = "claim_type"
    MISSING_CLAIM = "missing_claim"
    WRONG_ISSUER = "wrong_issuer"
    UNKNOWN_KID = "unknown_kid"
    JWKS_UNAVAILABLE = "jwks_unavailable"
    KEY_MISMATCH = "key_mismatch"
    BAD_SIGNATURE = "bad_signature"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    INVALID = "invalid"


class AuthenticationError(FleetdeckError):
    """The bearer token was refused; ``reason`` is the :class:`AuthFailure` code (never token text)."""

    outcome = Outcome.DENIED
    http_status = 401

    def __init__(self, reason: AuthFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class UserAuthSettings(BaseModel):
    """The company identity provider, as the user layer trusts it (``FLEETDECK_AUTH__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str | None = Field(default=None, description="Exact `iss` of accepted tokens.")
    jwks_url: str | None = Field(
        default=None, description="The issuer's JWKS URL; https, or http on loopback only."
    )
    audience: str | None = Field(
        default=None, description="Expected `aud`; None = the server's canonical /mcp URL (RFC 8707)."
    )
    algorithms: tuple[str, ...] = Field(
        default=SUPPORTED_ALGORITHMS, description="Allowed `alg`s: asymmetric only; never none or HS*."
    )
    leeway_s: int = Field(
        default=30,
        ge=0,
        le=300,
        description="Clock skew tolerated on exp/nbf/iat, in seconds. Keep it short: it extends "
        "every token's life. (The SDK itself refuses a token past `exp` with no leeway.)",
    )
    max_token_bytes: int = Field(default=8192, ge=512, le=65536, description="Longer tokens are refused.")
    required_claims: tuple[str, ...] = Field(
        default=("iss", "sub", "aud", "exp", "iat"),
        description="Claims that must be present; iss, sub, aud and exp always are.",
    )
    groups_claim: str = Field(default="groups", description="Claim (or dotted path) holding groups.")
    roles_claim: str = Field(default="roles", description="Claim or dotted path, e.g. realm_access.roles.")
    email_claim: str = Field(default="email", description="Claim holding the e-mail address.")
    jwks_ttl_s: float = Field(default=600.0, gt=0, description="How long fetched keys are fresh.")
    jwks_cooldown_s: float = Field(default=30.0, ge=0, description="Minimum time between two fetches.")
    jwks_timeout_s: float = Field(default=3.0, gt=0, le=30, description="Deadline of one JWKS fetch.")
    jwks_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024, description="JWKS size cap.")
    jwks_max_stale_s: float = Field(
        default=86_400.0, ge=0, description="How long past its TTL a cached key serves while fetches fail."
    )

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unsupported = [alg for alg in value if alg not in SUPPORTED_ALGORITHMS]
        if unsupported or not value:
            raise ValueError(f"must be a non-empty subset of {', '.join(SUPPORTED_ALGORITHMS)}")
        return value

    @field_validator("required_claims")
    @classmethod
    def _minimum_claims(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*sorted(MINIMUM_REQUIRED_CLAIMS - set(value)), *value)))

    @field_validator("jwks_url")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
            return value
        raise ValueError("must be an https URL (http is allowed on loopback only)")


@dataclass(slots=True, eq=False)
class VerifiedUser:
    """The human a verified token speaks for. ``claims`` is the verified payload.

    Shared by every call that presents the same token (see :meth:`JwtVerifier.verify`): read-only by
    contract. (Not a frozen dataclass: its ``__init__`` costs ~1.3 µs more, on the verification path.)
    """

    issuer: str
    subject: str
    email: str | None
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    claims: Mapping[str, Any] = field(repr=False)
    client_id: str
    scopes: tuple[str, ...]
    expires_at: int
    audience: str
    _user: User | None = field(default=None, init=False, repr=False)
    _principal: Principal | None = field(default=None, init=False, repr=False)
    _access_token: AccessToken | None = field(default=None, init=False, repr=False)

    def to_user(self) -> User:
        """The principal's user (built once per verification, then shared)."""
        if self._user is None:
            self._user = User(
                subject=self.subject,
                issuer=self.issuer,
                proven_by="bearer-jwt",
                email=self.email,
                groups=frozenset(self.groups),
                roles=frozenset(self.roles),
            )
        return self._user

    def to_principal(self) -> Principal:
        """The principal of a request proven by this token alone (built once, then shared)."""
        if self._principal is None:
            self._principal = Principal(user=self.to_user())
        return self._principal

    def access_token(self, token: str) -> AccessToken:
        """The SDK's view of this verification of ``token`` (``resource`` = the audience that matched).

        Built once, then shared by the requests that present the same token (read-only by contract).
        """
        if self._access_token is None or self._access_token.token != token:
            self._access_token = AccessToken(
                token=token,
                client_id=self.client_id,
                scopes=list(self.scopes),
                expires_at=self.expires_at,
                resource=self.audience,
                subject=self.subject,
                claims=dict(self.claims),
            )
        return self._access_token


def _segment_json(segment: str, what: str) -> dict[str, Any]:
    try:
        value = strict_json(base64url_decode(segment))
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError, JSONDecodeError, duplicates
        if "duplicate JSON member" in str(exc):
            raise AuthenticationError(AuthFailure.DUPLICATE_MEMBER, f"{what}: {exc}") from None
        raise AuthenticationError(AuthFailure.MALFORMED, f"{what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise AuthenticationError(AuthFailure.MALFORMED, f"{what} is not a JSON object")
    return value


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim named ``path``, or else the value at its dotted path (``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    if "." not in path:  # a flat name that is absent (no walk: the ABC checks below cost µs per token)
        return None
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is str:
        return (value,)
    if type(value) is list:
        for item in value:
            if type(item) is not str:
                break
        else:
            return tuple(value)
    raise AuthenticationError(AuthFailure.CLAIM_TYPE, f"{name} must be a string or a list of strings")


class JwtVerifier(TokenVerifier):
    """Verifies bearer JWTs for one resource server (see the module docstring for the order)."""

    def __init__(
        self, settings: UserAuthSettings, *, resource_url: str | None = None, jwks: JwksCache | None = None
    ) -> None:
        audience = settings.audience or resource_url
        if not settings.issuer or not settings.jwks_url or not audience:
            raise ConfigError("auth.issuer, auth.jwks_url and auth.audience (or the server URL) are required")
        self.settings = settings
        self.issuer: str = settings.issuer
        self.audience: str = audience
        self.jwks = jwks or JwksCache(
            settings.jwks_url,
            ttl_s=settings.jwks_ttl_s,
            cooldown_s=settings.jwks_cooldown_s,
            timeout_s=settings.jwks_timeout_s,
            max_bytes=settings.jwks_max_bytes,
            max_stale_s=settings.jwks_max_stale_s,
        )
        self._algorithms = frozenset(settings.algorithms)
        self._verified: OrderedDict[str, tuple[float, VerifiedUser]] = OrderedDict()
        self._headers: dict[str, dict[str, Any]] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK hook: the verified token, or None (logged at INFO with the reason, not the token)."""
        try:
            user = await self.verify(token)
        except AuthenticationError as exc:
            logger.info("bearer token refused: %s", exc, extra={"auth_reason": exc.reason.value})
            return None
        return user.access_token(token)

    async def verify(self, token: str) -> VerifiedUser:
        """Verify ``token`` and return its user; raises :class:`AuthenticationError` with the reason.

        A client presents the same token on every call: a token verified in the last
        ``VERIFIED_TTL_S`` seconds is answered from a small cache (exact token bytes; its expiry is
        still checked on every use), so each token costs one signature check per TTL, not per call.
        """
        now = time.monotonic()
        known = self._verified.get(token)
        if known is not None and now < known[0]:
            if known[1].expires_at > time.time() - self.settings.leeway_s:
                return known[1]
            del self._verified[token]
        header, payload, signature = self._parse(token)
        key = self.jwks.fresh(header["kid"]) or await self._fetch_key(header["kid"])
        user = self._verified_user(token, header["alg"], key, payload, signature)
        if len(token) <= VERIFIED_MAX_TOKEN_BYTES:
            self._verified[token] = (now + VERIFIED_TTL_S, user)
            if len(self._verified) > VERIFIED_MAX_ENTRIES:
                self._verified.popitem(last=False)
        return user

    def verified_of(self, token: AccessToken) -> VerifiedUser:
        """The verification behind a token this verifier accepted (the cached one when it is cached)."""
        known = self._verified.get(token.token)
        return known[1] if known is not None else self.user_from_claims(token.claims or {})

    def forget_verified(self) -> None:
        """Drop every cached verification (e.g. after revoking a key): each token is checked afresh."""
        self._verified.clear()

    def _verified_user(
        self, token: str, alg: str, key: SigningKey, payload: dict[str, Any], signature: bytes
    ) -> VerifiedUser:
        """Steps 2 to 4 of the module docstring, once the token is parsed and its key found."""
        check = key.checks.get(alg)
        if check is None:
            raise AuthenticationError(AuthFailure.KEY_MISMATCH, f"{alg} with a {key.family} key")
        try:
            check(token.rpartition(".")[0].encode("ascii"), signature)
        except InvalidSignature:
            raise AuthenticationError(AuthFailure.BAD_SIGNATURE) from None
        self._check_claims(payload)
        return self.user_from_claims(payload)

    def preparse(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Structural checks before any key or signature work; the unverified header and payload."""
        header, payload, _ = self._parse(token)
        return header, payload

    def _parse(self, token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        """:meth:`preparse`, plus the decoded signature.

        An issuer signs every token with one of a few identical headers, so a header that passed the
        checks is remembered (exact text, at most ``HEADER_CACHE_ENTRIES``) and not parsed again.
        """
        if len(token) > self.settings.max_token_bytes:
            raise AuthenticationError(AuthFailure.TOO_LARGE, f"over {self.settings.max_token_bytes} bytes")
        segments = token.split(".")
        if len(segments) != 3 or not segments[0] or not segments[1]:
            raise AuthenticationError(AuthFailure.MALFORMED, "not three base64url segments")
        header_b64, payload_b64, signature_b64 = segments
        header = self._headers.get(header_b64)
        if header is None:
            header = _segment_json(header_b64, "header")
            self._check_header(header)
            if len(self._headers) >= HEADER_CACHE_ENTRIES:
                self._headers.clear()
            self._headers[header_b64] = header
        if not signature_b64:  # checked after the header so that alg=none is named as such
            raise AuthenticationError(AuthFailure.MALFORMED, "empty signature")
        try:
            signature = base64url_decode(signature_b64)
        except ValueError:
            raise AuthenticationError(AuthFailure.MALFORMED, "signature is not base64url") from None
        payload = _segment_json(payload_b64, "payload")
        self._check_payload(payload)
        return header, payload, signature

    def _check_header(self, header: dict[str, Any]) -> None:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise AuthenticationError(AuthFailure.MALFORMED, "alg missing")
        if alg.lower() == "none":
            raise AuthenticationError(AuthFailure.ALG_NONE)
        if alg.upper().startswith("HS"):
            raise AuthenticationError(AuthFailure.ALG_SYMMETRIC, alg[:16])
        if alg not in self._algorithms:
            raise AuthenticationError(AuthFailure.ALG_NOT_ALLOWED, alg[:16])
        if "crit" in header:
            raise AuthenticationError(AuthFailure.CRIT, "no critical extension is understood")
        material = [name for name in HEADER_KEY_MATERIAL if name in header]
        if material:
            raise AuthenticationError(AuthFailure.HEADER_KEY_MATERIAL, ", ".join(material))
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
            raise AuthenticationError(AuthFailure.TYP, "typ is not JWT or at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 256:
            raise AuthenticationError(AuthFailure.KID, "kid missing or invalid")

    def _check_payload(self, payload: dict[str, Any]) -> None:
        for name in ("exp", "nbf", "iat"):
            if name in payload:
                value = payload[name]
                if type(value) is not int or not 0 <= value < MAX_NUMERIC_DATE:
                    raise AuthenticationError(AuthFailure.CLAIM_TYPE, f"{name} is not an integer date")
        for name in self.settings.required_claims:
            if payload.get(name) is None:
                raise AuthenticationError(AuthFailure.MISSING_CLAIM, name)
        if not isinstance(payload["iss"], str) or not isinstance(payload["sub"], str) or not payload["sub"]:
            raise AuthenticationError(AuthFailure.CLAIM_TYPE, "iss and sub must be non-empty strings")
        if payload["iss"] != self.issuer:
            raise AuthenticationError(AuthFailure.WRONG_ISSUER)
        aud = payload["aud"]
        if not isinstance(aud, str) and not (
            isinstance(aud, list) and aud and all(isinstance(item, str) for item in aud)
        ):
            raise AuthenticationError(AuthFailure.CLAIM_TYPE, "aud must be a string or a list of strings")

    async def _fetch_key(self, kid: str) -> SigningKey:
        try:
            return await self.jwks.get(kid)
        except UnknownKeyError:
            raise AuthenticationError(AuthFailure.UNKNOWN_KID) from None
        except JwksUnavailableError as exc:
            raise AuthenticationError(AuthFailure.JWKS_UNAVAILABLE, str(exc)) from None

    def _check_claims(self, payload: Mapping[str, Any]) -> None:
        """Audience and dates of the signed payload (issuer and required claims were pre-parsed)."""
        aud = payload["aud"]
        if self.audience != aud and not (isinstance(aud, list) and self.audience in aud):
            raise AuthenticationError(AuthFailure.WRONG_AUDIENCE)
        now, leeway = int(time.time()), self.settings.leeway_s
        if payload["exp"] <= now - leeway:
            raise AuthenticationError(AuthFailure.EXPIRED)
        if payload.get("nbf", now) > now + leeway:
            raise AuthenticationError(AuthFailure.NOT_YET_VALID)
        if payload.get("iat", now) > now + leeway:
            raise AuthenticationError(AuthFailure.ISSUED_IN_FUTURE)

    def user_from_claims(self, claims: Mapping[str, Any]) -> VerifiedUser:
        """The user of already-verified claims (e.g. ``AccessToken.claims`` in a request)."""
        s = self.settings
        email = claim_at(claims, s.email_claim)
        if email is not None and not isinstance(email, str):
            raise AuthenticationError(AuthFailure.CLAIM_TYPE, "email must be a string")
        scope = claims.get("scope", claims.get("scp"))
        scopes = tuple(scope.split()) if isinstance(scope, str) else _strings(scope, "scope")
        client_id = claims.get("azp") or claims.get("client_id") or claims["sub"]
        if not isinstance(client_id, str):
            raise AuthenticationError(AuthFailure.CLAIM_TYPE, "azp/client_id must be a string")
        return VerifiedUser(
            issuer=claims["iss"],
            subject=claims["sub"],
            email=email,
            groups=_strings(claim_at(claims, s.groups_claim), "groups"),
            roles=_strings(claim_at(claims, s.roles_claim), "roles"),
            claims=claims,
            client_id=client_id,
            scopes=scopes,
            expires_at=claims["exp"],
            audience=self.audience,
        )

    async def aclose(self) -> None:
        """Release the JWKS client."""
        await self.jwks.aclose()
