"""The local development issuer: an ES256 key per data dir, a JWKS on loopback, minted tokens.

``fleetdeck up`` runs :func:`serve` (as ``fleetdeck dev issuer``) and points every server at it with
``FLEETDECK_AUTH__ISSUER`` / ``FLEETDECK_AUTH__JWKS_URL``, so the local fleet verifies real bearer
tokens exactly as a deployment does; ``fleetdeck dev token`` mints more of them. The private key
lives in ``<data_dir>/dev-issuer/key.pem`` (mode 0600), created once — atomically, so concurrent
starters all end up with the same key — and reused, so tokens survive restarts of the fleet.

Nothing here works in a production configuration: :class:`DevIssuer` refuses to exist when
``environment`` is ``production``, and :func:`serve` binds loopback addresses only. Tokens minted
here prove nothing about anyone; they are for a developer's own machine.

Import cost: PyJWT and ``cryptography`` only; Starlette and uvicorn are imported when serving.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from fleetdeck.errors import ConfigError
from fleetdeck.keyfile import read_or_create
from fleetdeck.settings import FleetdeckSettings, is_loopback_host

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "BANNER",
    "DEFAULT_PORT",
    "DEFAULT_TTL_S",
    "JWKS_PATH",
    "OPENID_CONFIGURATION_PATH",
    "DevIssuer",
    "jwk_thumbprint",
    "serve",
]

DEFAULT_PORT: Final = 8100
DEFAULT_TTL_S: Final = 8 * 3600
MAX_TTL_S: Final = 7 * 24 * 3600
ALGORITHM: Final = "ES256"
JWKS_PATH: Final = "/.well-known/jwks.json"
OPENID_CONFIGURATION_PATH: Final = "/.well-known/openid-configuration"
KEY_DIR: Final = "dev-issuer"
KEY_FILE: Final = "key.pem"
BANNER: Final = "DEVELOPMENT TOKEN — not for production"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an EC, RSA or OKP public JWK (base64url, unpadded)."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    members = required[str(jwk["kty"])]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _refuse_production(settings: FleetdeckSettings) -> None:
    if settings.environment == "production":
        raise ConfigError(
            "the development issuer is refused in a production configuration (setting environment, "
            "env FLEETDECK_ENVIRONMENT, is 'production'): use the company identity provider "
            "(auth.issuer and auth.jwks_url)"
        )


def _new_pem_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 key at ``path``, created once (0600, atomic link) if it does not exist yet."""
    read_or_create(path, _new_pem_key)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"the development issuer key {path} is readable by others (mode {mode:04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"the development issuer key {path} is not an unencrypted PEM private key; delete it "
            "to generate a new one"
        ) from exc
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(loaded.curve, ec.SECP256R1):
        raise ConfigError(f"the development issuer key {path} is not a P-256 key; delete it to generate one")
    return loaded


class DevIssuer:
    """The local development identity provider of one data dir; see the module docstring.

    ``issuer`` defaults to ``http://127.0.0.1:<port>``, where :func:`serve` publishes the JWKS.
    Raises :class:`ConfigError` in a production configuration, before touching anything.
    """

    def __init__(
        self, settings: FleetdeckSettings, *, port: int = DEFAULT_PORT, issuer: str | None = None
    ) -> None:
        _refuse_production(settings)
        self.port = port
        self.issuer = (issuer or f"http://127.0.0.1:{port}").rstrip("/")
        self.key_path = settings.data_dir / KEY_DIR / KEY_FILE
        self._key = _load_or_create_key(self.key_path)
        public: dict[str, Any] = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.kid = jwk_thumbprint(public)
        self._public_jwk = {**public, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    @property
    def jwks_url(self) -> str:
        """Where the public key is published (``FLEETDECK_AUTH__JWKS_URL``)."""
        return f"{self.issuer}{JWKS_PATH}"

    def jwks(self) -> dict[str, Any]:
        """The JWK Set: the one public key, ``kid`` = its RFC 7638 thumbprint."""
        return {"keys": [dict(self._public_jwk)]}

    def openid_configuration(self) -> dict[str, Any]:
        """The minimal discovery document: who the issuer is and where its keys are."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
            "response_types_supported": [],
        }

    def mint(
        self,
        user: str,
        groups: Sequence[str] = (),
        roles: Sequence[str] = (),
        audience: Sequence[str] = (),
        ttl_s: int = DEFAULT_TTL_S,
    ) -> str:
        """A signed ES256 access token for ``user``, valid ``ttl_s`` seconds for every ``audience``."""
        if not user.strip():
            raise ConfigError("a development token needs a user")
        if isinstance(audience, str):
            audience = [audience]
        if not audience:
            raise ConfigError("a development token needs at least one audience (a server's /mcp URL)")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ConfigError(f"a development token lives between 1 s and {MAX_TTL_S} s, not {ttl_s} s")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": list(audience),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            "email": f"{user}@localhost",
            "groups": list(groups),
            "roles": list(roles),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "JWT"})

    def app(self) -> Starlette:
        """The Starlette app publishing the JWKS, the discovery document and ``/healthz``."""
        from starlette.applications import Starlette  # only when serving
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        jwks, discovery = self.jwks(), self.openid_configuration()
        headers = {"Cache-Control": "no-store"}

        async def jwks_route(request: Request) -> JSONResponse:
            return JSONResponse(jwks, headers=headers)

        async def discovery_route(request: Request) -> JSONResponse:
            return JSONResponse(discovery, headers=headers)

        async def healthz(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok", "issuer": self.issuer, "kid": self.kid})

        return Starlette(
            routes=[
                Route(JWKS_PATH, jwks_route, methods=["GET"]),
                Route(OPENID_CONFIGURATION_PATH, discovery_route, methods=["GET"]),
                Route("/healthz", healthz, methods=["GET"]),
            ]
        )


def serve(issuer: DevIssuer, host: str = "127.0.0.1") -> None:
    """Publish ``issuer``'s keys with uvicorn on ``host:issuer.port`` until SIGINT/SIGTERM."""
    if not is_loopback_host(host):
        raise ConfigError(f"the development issuer binds loopback addresses only, not {host!r}")
    import uvicorn  # only when serving

    uvicorn.run(issuer.app(), host=host, port=issuer.port, log_level="warning", lifespan="off")
