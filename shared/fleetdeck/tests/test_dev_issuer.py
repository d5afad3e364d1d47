"""The local development issuer: one key per data dir, a real JWKS over HTTP, never in production."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from fleetdeck import fleet
from fleetdeck.auth.dev_issuer import BANNER, DEFAULT_PORT, DevIssuer, jwk_thumbprint, serve
from fleetdeck.auth.jwt import AuthenticationError, AuthFailure, JwtVerifier, UserAuthSettings
from fleetdeck.errors import ConfigError
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.http import free_port, serving

AUDIENCE = "http://127.0.0.1:8101/mcp"


def settings(data_dir: Path, **overrides: object) -> FleetdeckSettings:
    return FleetdeckSettings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]


def test_the_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = DevIssuer(settings(tmp_path))
    key = tmp_path / "dev-issuer" / "key.pem"
    assert first.key_path == key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    pem = key.read_bytes()
    second = DevIssuer(settings(tmp_path))
    assert key.read_bytes() == pem
    assert second.kid == first.kid
    assert second.jwks() == first.jwks()
    assert [p.name for p in key.parent.iterdir()] == ["key.pem"], "no scratch file is left behind"


def test_concurrent_starters_share_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        kids = set(pool.map(lambda _: DevIssuer(settings(tmp_path)).kid, range(16)))
    assert len(kids) == 1
    assert [p.name for p in (tmp_path / "dev-issuer").iterdir()] == ["key.pem"]


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    issuer = DevIssuer(settings(tmp_path))
    os.chmod(issuer.key_path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        DevIssuer(settings(tmp_path))


def test_the_jwks_publishes_the_public_key_only_with_its_rfc7638_thumbprint(tmp_path: Path) -> None:
    issuer = DevIssuer(settings(tmp_path))
    (jwk,) = issuer.jwks()["keys"]
    assert {jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]} == {"EC", "P-256", "ES256", "sig"}
    assert "d" not in jwk
    assert jwk["kid"] == jwk_thumbprint(jwk) == issuer.kid


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    example = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQM"
        "icAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr"
        "3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_a_minted_token_verifies_against_the_jwks_served_over_http(tmp_path: Path) -> None:
    port = free_port()
    issuer = DevIssuer(settings(tmp_path), port=port)
    assert issuer.issuer == f"http://127.0.0.1:{port}"
    token = issuer.mint(
        "alice", ["data-infra", "finance"], ["admin"], [AUDIENCE, "http://127.0.0.1:8102/mcp"]
    )
    async with serving(issuer.app(), port) as base:
        async with httpx2.AsyncClient(timeout=5) as client:
            discovery = (await client.get(f"{base}/.well-known/openid-configuration")).json()
        assert discovery["issuer"] == issuer.issuer
        assert discovery["jwks_uri"] == issuer.jwks_url == f"{base}/.well-known/jwks.json"
        auth = UserAuthSettings(issuer=issuer.issuer, jwks_url=issuer.jwks_url)
        verifier = JwtVerifier(auth, resource_url=AUDIENCE)
        try:
            user = await verifier.verify(token)
            elsewhere = JwtVerifier(auth, resource_url="http://127.0.0.1:9999/mcp")
            with pytest.raises(AuthenticationError) as refused:
                await elsewhere.verify(token)
            assert refused.value.reason is AuthFailure.WRONG_AUDIENCE
            await elsewhere.jwks.aclose()
        finally:
            await verifier.jwks.aclose()
    assert (user.issuer, user.subject, user.email) == (issuer.issuer, "alice", "alice@localhost")
    assert set(user.groups) == {"data-infra", "finance"}
    assert user.roles == ("admin",)
    assert user.audience == AUDIENCE
    claims = user.claims
    assert claims["exp"] - claims["iat"] == 8 * 3600
    assert claims["nbf"] == claims["iat"]
    assert len(claims["jti"]) == 32


def test_a_token_needs_a_user_an_audience_and_a_sane_lifetime(tmp_path: Path) -> None:
    issuer = DevIssuer(settings(tmp_path))
    with pytest.raises(ConfigError, match="audience"):
        issuer.mint("alice", audience=[])
    with pytest.raises(ConfigError, match="user"):
        issuer.mint(" ", audience=[AUDIENCE])
    with pytest.raises(ConfigError, match="lives between"):
        issuer.mint("alice", audience=[AUDIENCE], ttl_s=0)


def test_production_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refused in a production configuration"):
        DevIssuer(settings(tmp_path, environment="production"))
    assert not (tmp_path / "dev-issuer").exists()


def test_the_cli_default_port_is_the_issuers() -> None:
    assert fleet.DEV_ISSUER_PORT == DEFAULT_PORT  # duplicated so that the CLI imports no PyJWT


def test_the_issuer_binds_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        serve(DevIssuer(settings(tmp_path)), host="0.0.0.0")


def fleetdeck(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetdeck", *args],
        env={**os.environ, "FLEETDECK_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dev_token_prints_only_the_token_on_stdout_and_a_banner_on_stderr(tmp_path: Path) -> None:
    done = fleetdeck(
        tmp_path, "dev", "token", "--user", "bob", "--groups", "data-infra, finance", "--audience", AUDIENCE
    )
    assert done.returncode == 0, done.stderr
    (token,) = done.stdout.splitlines()
    assert BANNER in done.stderr
    verifier = JwtVerifier(
        UserAuthSettings(
            issuer="http://127.0.0.1:8100", jwks_url="http://127.0.0.1:8100/.well-known/jwks.json"
        ),
        resource_url=AUDIENCE,
    )
    header, claims = verifier.preparse(token)  # structure only: no JWKS is served here
    assert header["kid"] == DevIssuer(settings(tmp_path)).kid
    assert (claims["sub"], claims["groups"], claims["roles"], claims["aud"]) == (
        "bob",
        ["data-infra", "finance"],
        [],
        [AUDIENCE],
    )


def test_dev_token_is_refused_in_production(tmp_path: Path) -> None:
    done = fleetdeck(
        tmp_path, "dev", "token", "--user", "bob", "--groups", "g", FLEETDECK_ENVIRONMENT="production"
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "refused in a production configuration" in done.stderr
    assert not (tmp_path / "dev-issuer").exists()
