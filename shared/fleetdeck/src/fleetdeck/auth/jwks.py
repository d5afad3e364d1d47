"""The issuer's signing keys: an asynchronous, bounded, cached JWKS client.

:class:`JwksCache` fetches the JSON Web Key Set with ``httpx2`` on the event loop (never a blocking
call): redirects are not followed, the body is read as a stream and refused past a size cap, and
the whole fetch is bounded by one deadline. Keys are cached for a TTL. A ``kid`` the cache does not
know triggers a refetch at most once per cooldown, and concurrent lookups share one in-flight
fetch, so a flood of random ``kid``\\ s costs at most one fetch per cooldown. When the endpoint is
down, slow or answers garbage, the last good keys keep serving (up to ``max_stale_s``); an
expired-but-known key is served at once while a background refresh runs.

Only asymmetric signing keys are accepted: RSA (at least 2048 bits, public exponent at least 65537),
EC P-256/P-384/P-521 and OKP Ed25519. Keys with ``use`` other than ``sig``, without a ``kid``,
carrying private material, or whose ``kid`` appears twice in the set are skipped.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

from fleetdeck.auth.signature import Check, PublicKey, checks_for
from fleetdeck.errors import FleetdeckError

__all__ = [
    "JwksCache",
    "JwksUnavailableError",
    "SigningKey",
    "UnknownKeyError",
    "base64url_decode",
    "parse_jwks",
    "strict_json",
]

logger = logging.getLogger(__name__)


MIN_RSA_BITS = 2048
MIN_RSA_EXPONENT = 65537
_EC_CURVES = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class JwksUnavailableError(FleetdeckError):
    """The JWKS could not be fetched and no usable cached key covers the request."""

    http_status = 401


class UnknownKeyError(FleetdeckError):
    """The JWKS (fresh, or refetched within the cooldown rules) has no key with this ``kid``."""

    http_status = 401


class _DuplicateKeyError(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        duplicate = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise _DuplicateKeyError(f"duplicate JSON member {duplicate[:64]!r}")
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)


_FROM_BASE64URL = bytes.maketrans(b"-_+/=", b"+/!!!")  # "+", "/" and "=" are not base64url: make them invalid


def base64url_decode(segment: str) -> bytes:
    """Strict unpadded base64url (RFC 7515 §2); ValueError on any other character or a bad length."""
    data = segment.encode("ascii").translate(_FROM_BASE64URL)
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)


def strict_json(data: bytes | str) -> Any:
    """Parse JSON refusing duplicate object members, NaN/Infinity and deep nesting (ValueError).

    Fast path: a document that ``orjson`` parses and re-serialises to exactly the same bytes is in
    canonical form, which cannot hold a duplicate member (the re-serialised value has none). Every
    other document — spaces, escapes, big numbers, duplicates, errors — takes the strict parser.
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    try:
        value = orjson.loads(raw)
        if orjson.dumps(value) == raw:
            return value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        return _STRICT_DECODER.decode(text)
    except RecursionError:  # a few kB of "[[[[" would otherwise escape as an unexpected error
        raise ValueError("JSON nested too deeply") from None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One verified-usable public key from the JWKS.

    ``family`` is ``RSA``, ``EC`` or ``OKP``; ``alg`` is the JWK's optional ``alg`` member, which (when
    present) pins the token algorithm; the curve lives in ``key`` (and so in ``checks``).
    """

    kid: str
    family: str
    alg: str | None
    key: PublicKey
    checks: Mapping[str, Check] = field(init=False, repr=False, compare=False)
    """The algorithms this key may verify, each check bound to it (see :func:`checks_for`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", checks_for(self.key, self.alg))

    def accepts(self, alg: str) -> bool:
        """Whether this key may verify a token signed with ``alg`` (key type and curve match)."""
        return alg in self.checks


def _parse_key(jwk: Mapping[str, Any]) -> SigningKey | str:
    """A :class:`SigningKey`, or the reason this JWK is skipped."""
    kid, kty, use, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("use"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        return "missing or invalid kid"
    if use is not None and use != "sig":
        return f"use is {str(use)[:16]!r}, not 'sig'"
    if alg is not None and not isinstance(alg, str):
        return "alg is not a string"
    if _PRIVATE_MEMBERS & jwk.keys():
        return "carries private key material"
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return "key_ops does not allow verify"
    try:
        if kty == "RSA":
            rsa = RSAAlgorithm.from_jwk(dict(jwk))
            if not isinstance(rsa, RSAPublicKey):
                return "not an RSA public key"
            if rsa.key_size < MIN_RSA_BITS:
                return f"RSA key of {rsa.key_size} bits is too short"
            if rsa.public_numbers().e < MIN_RSA_EXPONENT:
                return f"RSA public exponent below {MIN_RSA_EXPONENT}"
            return SigningKey(kid, "RSA", alg, rsa)
        if kty == "EC":
            crv = jwk.get("crv")
            if crv not in _EC_CURVES:
                return "unsupported EC curve"
            ec = ECAlgorithm.from_jwk(dict(jwk))
            if not isinstance(ec, EllipticCurvePublicKey) or ec.curve.name != _EC_CURVES[str(crv)]:
                return "not an EC public key on its declared curve"
            return SigningKey(kid, "EC", alg, ec)
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                return "unsupported OKP curve"
            okp = OKPAlgorithm.from_jwk(dict(jwk))
            if not isinstance(okp, Ed25519PublicKey):
                return "not an Ed25519 public key"
            return SigningKey(kid, "OKP", alg, okp)
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        return f"malformed {str(kty)[:8]} key ({type(exc).__name__})"
    return f"unsupported kty {str(kty)[:16]!r}"


def parse_jwks(document: Any) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS document by ``kid``; raises ValueError if it has none."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set (no 'keys' array)")
    keys: dict[str, SigningKey] = {}
    ambiguous: set[str] = set()
    for index, jwk in enumerate(document["keys"]):
        parsed = _parse_key(jwk) if isinstance(jwk, dict) else "not an object"
        if isinstance(parsed, str):
            logger.info("JWKS key skipped", extra={"jwk_index": index, "reason": parsed})
            continue
        if parsed.kid in keys or parsed.kid in ambiguous:
            ambiguous.add(parsed.kid)
            keys.pop(parsed.kid, None)
            logger.warning("JWKS kid is not unique; refusing it", extra={"jwk_index": index})
            continue
        keys[parsed.kid] = parsed
    if not keys:
        raise ValueError("the JWK Set has no usable signing key")
    return keys


class JwksCache:
    """Cached, rate-limited access to one issuer's signing keys. Use from a single event loop.

    ``ttl_s``: how long a fetched set is fresh. ``cooldown_s``: the minimum time between two fetch
    attempts (successful or not), whatever the reason. ``max_stale_s``: how long past its TTL a set
    still serves while refreshes fail. ``clock`` (monotonic seconds) is injectable for tests. The
    default HTTP client ignores proxy and ``.netrc`` settings from the environment; pass ``client``
    (with ``follow_redirects=False``) to reach the issuer through a proxy.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 600.0,
        cooldown_s: float = 30.0,
        timeout_s: float = 3.0,
        max_bytes: int = 64 * 1024,
        max_stale_s: float = 86_400.0,
        client: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.cooldown_s = cooldown_s
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_stale_s = max_stale_s
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_error: str | None = None
        self._inflight: asyncio.Task[None] | None = None
        self.fetch_attempts = 0
        """Fetch attempts made so far (observability and tests)."""

    def fresh(self, kid: str) -> SigningKey | None:
        """The key for ``kid`` if it is cached and fresh (no I/O); else None: ask :meth:`get`."""
        key = self._keys.get(kid)
        if key is None or self._fetched_at is None or self._clock() - self._fetched_at >= self.ttl_s:
            return None
        return key

    async def get(self, kid: str) -> SigningKey:
        """The key for ``kid``; raises :class:`UnknownKeyError` or :class:`JwksUnavailableError`."""
        key = self.fresh(kid)
        if key is not None:
            return key
        now = self._clock()
        key = self.usable_keys().get(kid)
        if key is not None:  # stale, but still allowed to serve while a refresh runs
            self._refresh_in_background(now)
            return key
        if self._inflight is None and not self._may_fetch(now):
            return self._answer_without_fetch(kid, now)
        await self._shared_fetch(now)
        return self._answer_without_fetch(kid, self._clock())

    async def refresh(self) -> None:
        """Fetch now (joining an in-flight fetch), ignoring the cooldown; failures are recorded."""
        await self._shared_fetch(self._clock(), force=True)

    @property
    def last_error(self) -> str | None:
        """Why the most recent fetch failed, or None if it succeeded (for ``fleetdeck doctor``)."""
        return self._last_error

    def usable_keys(self) -> Mapping[str, SigningKey]:
        """The cached keys while they may serve (fresh, or stale within ``max_stale_s``); else none."""
        if self._fetched_at is None or self._clock() - self._fetched_at >= self.ttl_s + self.max_stale_s:
            return {}
        return self._keys

    def kids(self) -> frozenset[str]:
        """The ``kid``\\ s currently cached."""
        return frozenset(self._keys)

    async def aclose(self) -> None:
        """Cancel an in-flight fetch and close the HTTP client if this cache created it."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.cooldown_s

    def _answer_without_fetch(self, kid: str, now: float) -> SigningKey:
        usable = self._fetched_at is not None and now - self._fetched_at < self.ttl_s + self.max_stale_s
        if usable and kid in self._keys:
            return self._keys[kid]
        if not usable:
            raise JwksUnavailableError(f"signing keys unavailable: {self._last_error or 'not fetched yet'}")
        raise UnknownKeyError("no signing key with this kid")

    def _refresh_in_background(self, now: float) -> None:
        if self._inflight is None and self._may_fetch(now):
            self._start_fetch(now)

    def _start_fetch(self, now: float) -> asyncio.Task[None]:
        self._attempted_at = now
        self.fetch_attempts += 1
        task = asyncio.get_running_loop().create_task(self._fetch(), name="fleetdeck-jwks-fetch")
        self._inflight = task
        task.add_done_callback(self._fetch_done)
        return task

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _shared_fetch(self, now: float, *, force: bool = False) -> None:
        task = self._inflight
        if task is None:
            if not force and not self._may_fetch(now):
                return
            task = self._start_fetch(now)
        # shield: one waiter being cancelled must not cancel the fetch the others wait on
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._download()
            keys = parse_jwks(strict_json(body))
        except TimeoutError:
            self._fail(f"no answer within {self.timeout_s:g} s")
        except (httpx2.HTTPError, httpx2.InvalidURL, OSError) as exc:
            self._fail(f"HTTP error {type(exc).__name__}")
        except ValueError as exc:
            self._fail(f"invalid JWKS: {exc}")
        else:
            self._keys = keys
            self._fetched_at = self._clock()
            self._last_error = None
            logger.info("JWKS fetched", extra={"jwks_url": self.url, "jwks_keys": len(keys)})

    def _fail(self, reason: str) -> None:
        self._last_error = reason
        logger.warning(
            "JWKS fetch failed; serving cached keys", extra={"jwks_url": self.url, "reason": reason}
        )

    async def _download(self) -> bytes:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                follow_redirects=False, timeout=httpx2.Timeout(self.timeout_s), trust_env=False
            )
        # identity encoding only: the size cap applies to the bytes parsed, no decompression bomb
        headers = {"Accept": "application/jwk-set+json, application/json", "Accept-Encoding": "identity"}
        async with self._client.stream("GET", self.url, headers=headers, follow_redirects=False) as response:
            if response.status_code != 200:
                raise ValueError(f"status {response.status_code} (redirects are not followed)")
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise ValueError("compressed response refused")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise ValueError(f"response larger than {self.max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ValueError(f"response larger than {self.max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks)
