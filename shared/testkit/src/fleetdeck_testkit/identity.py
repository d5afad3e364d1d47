"""A real identity provider for tests: signing keys, token minting, and a misbehaving JWKS server.

:class:`TestIssuer` holds real RSA, EC (P-256) and Ed25519 keys, publishes them as a JWKS, rotates
them, and mints real signed JWTs — including the malicious ones a strict verifier must refuse
(``alg: none``, HS256 signed with the public key, duplicate members written by hand, oversized
tokens, non-integer dates, header-supplied keys).

:class:`JwksServer` serves a JWKS on a loopback port from a background thread (uvicorn), counts
every request per path, and can be switched to misbehave: ``down`` (connection refused), ``slow``
(answers after ``slow_delay_s``), ``redirect`` (302 to a valid copy elsewhere), ``huge`` (a valid
JWKS padded past any sane cap, streamed), ``garbage`` (not JSON).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Literal, Self

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from fleetdeck_testkit.backends import free_port

__all__ = ["OMIT", "IssuerKey", "JwksMode", "JwksServer", "TestIssuer", "b64url"]

JWKS_PATH: Final = "/.well-known/jwks.json"
ELSEWHERE_PATH: Final = "/elsewhere/jwks.json"
DEFAULT_AUDIENCE: Final = "http://127.0.0.1:8000/mcp"
START_TIMEOUT_S: Final = 10.0

KeyKind = Literal["rsa", "ec", "ed25519"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()
"""Pass as a claim or header value to leave that member out of the token."""


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS compact serialisation writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(value: str | Mapping[str, Any]) -> str:
    text = value if isinstance(value, str) else json.dumps(dict(value), separators=(",", ":"))
    return b64url(text.encode("utf-8"))


@dataclass(frozen=True)
class IssuerKey:
    """One signing key of the test issuer: its ``kid``, the ``alg`` it signs with, both halves."""

    kid: str
    alg: str
    private_key: PrivateKey

    @classmethod
    def generate(cls, kind: KeyKind, kid: str) -> IssuerKey:
        """A fresh key: RSA 2048 (RS256), EC P-256 (ES256) or Ed25519 (EdDSA)."""
        if kind == "rsa":
            return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
        if kind == "ec":
            return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))
        return cls(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``use: sig`` and ``alg``."""
        public = self.private_key.public_key()
        jwk: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        """The public key as PEM (what a key-confusion attacker uses as an HMAC secret)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, signing_input: bytes) -> bytes:
        """The raw JWS signature of ``signing_input`` with this key's algorithm."""
        algorithm = get_default_algorithms()[self.alg]
        return algorithm.sign(signing_input, self.private_key)


class TestIssuer:
    """A development identity provider with real keys; see the module docstring."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, server: JwksServer | None = None, *, issuer: str | None = None, audience: str = DEFAULT_AUDIENCE
    ) -> None:
        self.server = server
        self.issuer = issuer or (server.base_url if server else "https://issuer.test")
        self.jwks_url = server.jwks_url if server else f"{self.issuer}{JWKS_PATH}"
        self.audience = audience
        self._initial = {
            "rsa": IssuerKey.generate("rsa", "rsa-1"),
            "ec": IssuerKey.generate("ec", "ec-1"),
            "ed25519": IssuerKey.generate("ed25519", "ed-1"),
        }
        self._generation = 1
        self.keys: dict[str, IssuerKey] = {}
        self.current: dict[str, IssuerKey] = {}
        self.retired: dict[str, IssuerKey] = {}
        self.extra_jwks: list[dict[str, Any]] = []
        self.reset()
        if server is not None:
            server.document = self.jwks

    def reset(self) -> None:
        """Back to the initial keys, nothing extra published; the server (if any) reset too."""
        self.keys = {key.kid: key for key in self._initial.values()}
        self.current = dict(self._initial)
        self.retired = {}
        self.extra_jwks = []
        self._generation = 1
        if self.server is not None:
            self.server.reset()

    def jwks(self) -> dict[str, Any]:
        """The published JWK Set: every key in :attr:`keys`, then :attr:`extra_jwks` as given."""
        return {"keys": [key.public_jwk() for key in self.keys.values()] + list(self.extra_jwks)}

    def key(self, key: str | IssuerKey | None = None) -> IssuerKey:
        """A signing key by kind (``rsa``/``ec``/``ed25519``, current generation), by kid, or itself."""
        if isinstance(key, IssuerKey):
            return key
        if key is None:
            return self.current["rsa"]
        return self.current.get(key) or self.keys.get(key) or self.retired[key]

    def rotate(self, kind: KeyKind = "rsa", *, retire_old: bool = False) -> IssuerKey:
        """Publish a new key of ``kind`` and make it current; optionally unpublish the old one.

        A retired key is no longer in the JWKS but can still sign (a revoked key's old tokens).
        """
        self._generation += 1
        new = IssuerKey.generate(kind, f"{kind}-{self._generation}-{uuid.uuid4().hex[:6]}")
        old = self.current[kind]
        if retire_old:
            self.retired[old.kid] = self.keys.pop(old.kid, old)
        self.keys[new.kid] = new
        self.current[kind] = new
        return new

    def claims(
        self,
        sub: Any = "alice",
        groups: Any = (),
        roles: Any = (),
        audience: str | list[str] | None = None,
        *,
        lifetime_s: int = 300,
        **overrides: Any,
    ) -> dict[str, Any]:
        """The payload :meth:`mint` would sign; ``overrides`` replace claims (``OMIT`` drops one).

        ``sub``, ``groups`` and ``roles`` are typed loosely on purpose: tests pass wrong types and
        ``OMIT`` through them.
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience if audience is not None else self.audience,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
            "azp": "fleetdeck-tests",
            "scope": "openid profile",
            "email": f"{sub}@example.com",
            "groups": list(groups) if isinstance(groups, (list, tuple)) else groups,
            "roles": list(roles) if isinstance(roles, (list, tuple)) else roles,
        }
        payload.update(overrides)
        return {name: value for name, value in payload.items() if value is not OMIT}

    def header(self, key: IssuerKey, header_overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JOSE header :meth:`mint` writes (``OMIT`` drops a member)."""
        header: dict[str, Any] = {"alg": key.alg, "typ": "JWT", "kid": key.kid, **(header_overrides or {})}
        return {name: value for name, value in header.items() if value is not OMIT}

    def mint(
        self,
        sub: Any = "alice",
        groups: Any = (),
        roles: Any = (),
        audience: str | list[str] | None = None,
        *,
        key: str | IssuerKey | None = None,
        header_overrides: Mapping[str, Any] | None = None,
        lifetime_s: int = 300,
        **overrides: Any,
    ) -> str:
        """A real signed JWT; the signature always uses ``key``'s own algorithm."""
        signer = self.key(key)
        payload = self.claims(sub, groups, roles, audience, lifetime_s=lifetime_s, **overrides)
        return self.sign_raw(self.header(signer, header_overrides), payload, key=signer)

    def sign_raw(
        self,
        header: str | Mapping[str, Any],
        payload: str | Mapping[str, Any],
        *,
        key: str | IssuerKey | None = None,
    ) -> str:
        """Sign hand-written header and payload JSON text (or objects) exactly as given."""
        signing_input = f"{_json_segment(header)}.{_json_segment(payload)}"
        signature = self.key(key).sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"

    # -- malicious tokens -----------------------------------------------------------------------

    def mint_alg_none(self, sub: str = "alice", *, signature: str = "", **overrides: Any) -> str:
        """An unsigned token (``alg: none``), by default with the empty signature RFC 7519 uses."""
        header = {"alg": "none", "typ": "JWT", "kid": self.key().kid}
        return f"{_json_segment(header)}.{_json_segment(self.claims(sub, **overrides))}.{signature}"

    def mint_hs256_with_public_key(self, sub: str = "alice", **overrides: Any) -> str:
        """RS→HS key confusion: HS256 keyed with the RSA public key's PEM, with that key's ``kid``."""
        victim = self.key("rsa")
        header = {"alg": "HS256", "typ": "JWT", "kid": victim.kid}
        signing_input = f"{_json_segment(header)}.{_json_segment(self.claims(sub, **overrides))}"
        mac = hmac.new(victim.public_pem(), signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def mint_duplicate_claim(self, name: str, first: Any, second: Any, **overrides: Any) -> str:
        """A validly signed token whose payload has ``name`` twice (``"sub":"alice","sub":"admin"``)."""
        payload = {k: v for k, v in self.claims(**overrides).items() if k != name}
        body = json.dumps(payload, separators=(",", ":"))
        text = f"{{{json.dumps(name)}:{json.dumps(first)},{json.dumps(name)}:{json.dumps(second)},{body[1:]}"
        return self.sign_raw(self.header(self.key()), text)

    def mint_duplicate_header(self, name: str, first: Any, second: Any, **overrides: Any) -> str:
        """A validly signed token whose header has ``name`` twice."""
        header = {k: v for k, v in self.header(self.key()).items() if k != name}
        body = json.dumps(header, separators=(",", ":"))
        text = f"{{{json.dumps(name)}:{json.dumps(first)},{json.dumps(name)}:{json.dumps(second)},{body[1:]}"
        return self.sign_raw(text, self.claims(**overrides))

    def mint_huge(self, size_bytes: int = 1 << 20, **overrides: Any) -> str:
        """A validly signed token of at least ``size_bytes`` characters (a padding claim)."""
        return self.mint(padding="x" * size_bytes, **overrides)


class JwksMode(StrEnum):
    """How the JWKS endpoint behaves."""

    NORMAL = "normal"
    DOWN = "down"
    SLOW = "slow"
    REDIRECT = "redirect"
    HUGE = "huge"
    GARBAGE = "garbage"


class JwksServer:
    """A JWKS endpoint on loopback, served by uvicorn in a background thread; see the module doc."""

    def __init__(
        self, document: Callable[[], Mapping[str, Any]] | None = None, *, port: int | None = None
    ) -> None:
        self.document: Callable[[], Mapping[str, Any]] = document or (lambda: {"keys": []})
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.jwks_url = f"{self.base_url}{JWKS_PATH}"
        self.slow_delay_s = 10.0
        self.huge_bytes = 4 << 20
        self.requests: Counter[str] = Counter()
        self._mode = JwksMode.NORMAL
        self._release = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def fetches(self) -> int:
        """How many requests reached the JWKS path."""
        return self.requests[JWKS_PATH]

    @property
    def total_requests(self) -> int:
        """How many requests reached any path."""
        return sum(self.requests.values())

    @property
    def mode(self) -> JwksMode:
        """The current behaviour; ``down`` stops listening, any other mode listens again."""
        return self._mode

    @mode.setter
    def mode(self, mode: JwksMode) -> None:
        self._mode = JwksMode(mode)
        if self._mode is JwksMode.DOWN:
            self.stop()
        else:
            self.start()

    def reset(self) -> None:
        """Normal mode, listening, counters at zero."""
        self.mode = JwksMode.NORMAL
        self.requests.clear()

    def start(self) -> None:
        """Listen (no-op if already listening); waits until uvicorn has bound the port."""
        if self._server is not None:
            return
        self._release.clear()
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"jwks-{self.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the JWKS server did not start on port {self.port}")
            time.sleep(0.005)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop listening (connections are refused); releases slow requests first."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return
        self._release.set()
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        self.requests[path] += 1
        response = await self._respond(path)
        await response(scope, receive, send)

    async def _respond(self, path: str) -> Response:
        if path == ELSEWHERE_PATH:
            return JSONResponse(dict(self.document()))
        if path != JWKS_PATH:
            return JSONResponse(dict(self.document()))  # a rogue issuer serves its keys anywhere
        mode = self._mode
        if mode is JwksMode.SLOW:
            await self._wait_released(self.slow_delay_s)
        if mode is JwksMode.REDIRECT:
            return RedirectResponse(f"{self.base_url}{ELSEWHERE_PATH}", status_code=302)
        if mode is JwksMode.GARBAGE:
            return PlainTextResponse('{"keys": [ this is not json', media_type="application/json")
        if mode is JwksMode.HUGE:
            return StreamingResponse(self._huge_body(), media_type="application/json")
        return JSONResponse(dict(self.document()))

    async def _wait_released(self, delay_s: float) -> None:
        deadline = time.monotonic() + delay_s
        while time.monotonic() < deadline and self._mode is JwksMode.SLOW and not self._release.is_set():
            await asyncio.sleep(0.02)

    async def _huge_body(self) -> AsyncIterator[bytes]:
        keys = json.dumps(dict(self.document())["keys"])
        yield f'{{"keys": {keys}, "padding": "'.encode()
        chunk = b"x" * 65536
        for _ in range(self.huge_bytes // len(chunk)):
            if self._release.is_set():
                return
            yield chunk
        yield b'"}'
