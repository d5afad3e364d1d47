"""The verifier's cache of recent verifications: one signature check per token per minute, not per call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from fleetdeck.auth.jwt import AuthenticationError, AuthFailure, JwtVerifier, UserAuthSettings, VerifiedUser
from fleetdeck_testkit.identity import TestIssuer


@pytest.fixture
async def verifier(test_issuer: TestIssuer) -> AsyncIterator[JwtVerifier]:
    settings = UserAuthSettings(issuer=test_issuer.issuer, jwks_url=test_issuer.jwks_url)
    verifier = JwtVerifier(settings, resource_url=test_issuer.audience)
    yield verifier
    await verifier.aclose()


async def refusal(verifier: JwtVerifier, token: str) -> AuthFailure:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)
    return caught.value.reason


async def test_a_token_verified_once_is_not_checked_again_for_a_minute(
    verifier: JwtVerifier, test_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = test_issuer.mint("alice", ["ads"])
    first = await verifier.verify(token)

    def parse(token: str) -> VerifiedUser:
        raise AssertionError("the token was checked again")

    monkeypatch.setattr(verifier, "_parse", parse)
    assert await verifier.verify(token) is first


async def test_a_cached_token_is_refused_once_it_expires(
    verifier: JwtVerifier, test_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = test_issuer.mint("alice", ["ads"], lifetime_s=5)
    await verifier.verify(token)
    later = time.time() + 5 + verifier.settings.leeway_s + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert await refusal(verifier, token) == AuthFailure.EXPIRED


async def test_forgetting_verifications_checks_every_token_afresh(
    verifier: JwtVerifier, test_issuer: TestIssuer
) -> None:
    token = test_issuer.mint("alice", ["ads"])
    await verifier.verify(token)
    test_issuer.rotate("rsa", retire_old=True)  # the signing key is gone from the JWKS
    assert (await verifier.verify(token)).subject == "alice"  # still cached
    verifier.forget_verified()
    await verifier.jwks.refresh()
    assert await refusal(verifier, token) == AuthFailure.UNKNOWN_KID
