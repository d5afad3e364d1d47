"""The user layer refuses every bad-token family with its exact reason, and accepts good tokens.

Everything is real: RSA/EC/Ed25519 keys, signed JWTs, and a JWKS served over loopback HTTP by the
testkit (which can be switched to down, slow, redirecting, huge or garbage).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import RSAAlgorithm
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from pydantic import AnyHttpUrl, ValidationError

from fleetdeck.auth.jwks import JwksCache, parse_jwks
from fleetdeck.auth.jwt import AuthenticationError, AuthFailure, JwtVerifier, UserAuthSettings, VerifiedUser
from fleetdeck.auth.signature import InvalidSignature, checks_for
from fleetdeck.errors import ConfigError
from fleetdeck_testkit.identity import (
    ELSEWHERE_PATH,
    OMIT,
    IssuerKey,
    JwksMode,
    JwksServer,
    TestIssuer,
    b64url,
)

SIBLING = "http://127.0.0.1:8001/mcp"
COOLDOWN_S = 30.0
TTL_S = 600.0


class FakeClock:
    """Monotonic time the test moves by hand (no sleeps)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeVerifier = Callable[..., JwtVerifier]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_verifier(test_issuer: TestIssuer, clock: FakeClock) -> AsyncIterator[MakeVerifier]:
    """Build verifiers for the test issuer (JWKS cache on the fake clock); closed after the test."""
    made: list[JwtVerifier] = []

    def make(issuer: TestIssuer | None = None, timeout_s: float = 1.0, **overrides: Any) -> JwtVerifier:
        source = issuer or test_issuer
        settings = UserAuthSettings(
            issuer=source.issuer, jwks_url=source.jwks_url, jwks_timeout_s=timeout_s, **overrides
        )
        cache = JwksCache(
            source.jwks_url, ttl_s=TTL_S, cooldown_s=COOLDOWN_S, timeout_s=timeout_s, clock=clock
        )
        verifier = JwtVerifier(settings, resource_url=source.audience, jwks=cache)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()


@pytest.fixture
def verifier(make_verifier: MakeVerifier) -> JwtVerifier:
    return make_verifier()


async def refusal(verifier: JwtVerifier, token: str) -> AuthFailure:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)
    assert caught.value.http_status == 401
    return caught.value.reason


# -- good tokens --------------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


GOOD_TOKENS: dict[str, Callable[[TestIssuer], str]] = {
    "rs256": lambda i: i.mint(key="rsa"),
    "es256": lambda i: i.mint(key="ec"),
    "eddsa": lambda i: i.mint(key="ed25519"),
    "typ_at_jwt": lambda i: i.mint(header_overrides={"typ": "at+jwt"}),
    "typ_application_at_jwt": lambda i: i.mint(header_overrides={"typ": "application/at+JWT"}),
    "audience_list_with_ours": lambda i: i.mint(audience=[SIBLING, i.audience]),
    "expired_within_leeway": lambda i: i.mint(iat=_now() - 600, exp=_now() - 5),
    "issued_slightly_ahead_within_leeway": lambda i: i.mint(iat=_now() + 10),
}


@pytest.mark.parametrize("variant", list(GOOD_TOKENS))
async def test_valid_token_is_accepted(verifier: JwtVerifier, test_issuer: TestIssuer, variant: str) -> None:
    user = await verifier.verify(GOOD_TOKENS[variant](test_issuer))

    assert (user.subject, user.audience) == ("alice", test_issuer.audience)


async def test_verified_user_carries_identity_groups_and_roles(
    verifier: JwtVerifier, test_issuer: TestIssuer
) -> None:
    user = await verifier.verify(test_issuer.mint("alice", groups=["data-infra"], roles=["analyst"]))

    assert isinstance(user, VerifiedUser)
    assert (user.issuer, user.subject, user.email) == (test_issuer.issuer, "alice", "alice@example.com")
    assert (user.groups, user.roles, user.claims["sub"]) == (("data-infra",), ("analyst",), "alice")
    assert user.to_user().groups == frozenset({"data-infra"})


async def test_verify_token_returns_the_sdk_access_token(
    verifier: JwtVerifier, test_issuer: TestIssuer
) -> None:
    token = test_issuer.mint("alice", scope="openid tables:read")

    access = await verifier.verify_token(token)

    assert access is not None
    assert access.claims is not None
    assert (access.subject, access.client_id, access.scopes, access.resource, access.expires_at) == (
        "alice", "fleetdeck-tests", ["openid", "tables:read"], test_issuer.audience, access.claims["exp"]
    )  # fmt: skip


async def test_client_id_falls_back_to_client_id_claim_then_subject(
    verifier: JwtVerifier, test_issuer: TestIssuer
) -> None:
    by_claim = await verifier.verify(test_issuer.mint("alice", azp=OMIT, client_id="cli"))
    by_sub = await verifier.verify(test_issuer.mint("alice", azp=OMIT, scope=OMIT, scp=["a", "b"]))

    assert by_claim.client_id == "cli"
    assert (by_sub.client_id, by_sub.scopes) == ("alice", ("a", "b"))


async def test_roles_are_read_from_a_nested_claim_path(
    make_verifier: MakeVerifier, test_issuer: TestIssuer
) -> None:
    verifier = make_verifier(
        roles_claim="realm_access.roles", groups_claim="https://fleetdeck.example/groups"
    )
    namespaced: dict[str, Any] = {"https://fleetdeck.example/groups": ["finance"]}
    token = test_issuer.mint(
        "alice", roles=["ignored"], realm_access={"roles": ["operator", "analyst"]}, **namespaced
    )

    user = await verifier.verify(token)

    assert user.roles == ("operator", "analyst")
    assert user.groups == ("finance",)
    assert (await verifier.verify(test_issuer.mint("alice", roles=["x"]))).roles == ()  # path absent


# -- bad tokens -----------------------------------------------------------------------------------


def _nested_duplicate(issuer: TestIssuer) -> str:
    claims = json.dumps(issuer.claims("alice"))[:-1] + ', "realm_access": {"roles": [], "roles": ["admin"]}}'
    return issuer.sign_raw(issuer.header(issuer.key()), claims)


def _tampered(issuer: TestIssuer) -> str:
    head, _, sig = issuer.mint("alice").split(".")
    return f"{head}.{b64url(json.dumps(issuer.claims('admin')).encode())}.{sig}"


def _all_zero_es256(issuer: TestIssuer) -> str:  # CVE-2022-21449
    head, body, _ = issuer.mint("admin", key="ec").split(".")
    return f"{head}.{body}.{b64url(bytes(64))}"


def _foreign_key_under_our_kid(issuer: TestIssuer) -> str:
    foreign = IssuerKey.generate("rsa", "rsa-1")
    return issuer.sign_raw(issuer.header(issuer.key("rsa")), issuer.claims("admin"), key=foreign)


def _with_alg(kind: str, alg: str) -> Callable[[TestIssuer], str]:
    return lambda i: i.mint(key=kind, header_overrides={"alg": alg})


def _with_header(**members: Any) -> Callable[[TestIssuer], str]:
    return lambda i: i.mint(header_overrides=members)


F = AuthFailure
# family -> (forge a token, the exact reason, refused before any key lookup)
BAD_TOKENS: dict[str, tuple[Callable[[TestIssuer], str], AuthFailure, bool]] = {
    "alg_none": (lambda i: i.mint_alg_none(), F.ALG_NONE, True),
    "alg_none_with_signature": (lambda i: i.mint_alg_none(signature="c2ln"), F.ALG_NONE, True),
    "hs256_keyed_with_rsa_public_key": (
        lambda i: i.mint_hs256_with_public_key("admin"),
        F.ALG_SYMMETRIC,
        True,
    ),
    "es256_header_on_rsa_key": (_with_alg("rsa", "ES256"), F.KEY_MISMATCH, False),
    "rs256_header_on_ec_key": (_with_alg("ec", "RS256"), F.KEY_MISMATCH, False),
    "eddsa_header_on_ec_key": (_with_alg("ec", "EdDSA"), F.KEY_MISMATCH, False),
    "ps256_on_key_pinned_to_rs256": (_with_alg("rsa", "PS256"), F.KEY_MISMATCH, False),
    "wrong_issuer": (lambda i: i.mint(iss="https://evil.example"), F.WRONG_ISSUER, True),
    "sibling_server_audience": (lambda i: i.mint(audience=SIBLING), F.WRONG_AUDIENCE, False),
    "expired": (lambda i: i.mint(iat=_now() - 600, exp=_now() - 60), F.EXPIRED, False),
    "not_yet_valid": (lambda i: i.mint(nbf=_now() + 600), F.NOT_YET_VALID, False),
    "issued_in_future_beyond_leeway": (lambda i: i.mint(iat=_now() + 600), F.ISSUED_IN_FUTURE, False),
    "duplicate_sub": (lambda i: i.mint_duplicate_claim("sub", "alice", "admin"), F.DUPLICATE_MEMBER, True),
    "duplicate_nested_member": (_nested_duplicate, F.DUPLICATE_MEMBER, True),
    "duplicate_header_kid": (
        lambda i: i.mint_duplicate_header("kid", "rsa-1", "ec-1"),
        F.DUPLICATE_MEMBER,
        True,
    ),
    "duplicate_header_alg": (
        lambda i: i.mint_duplicate_header("alg", "RS256", "none"),
        F.DUPLICATE_MEMBER,
        True,
    ),
    "crit": (_with_header(crit=["exp"], exp=1), F.CRIT, True),
    "typ_dpop": (_with_header(typ="dpop+jwt"), F.TYP, True),
    "typ_not_a_string": (_with_header(typ=1), F.TYP, True),
    "no_kid": (_with_header(kid=OMIT), F.KID, True),
    "subject_not_a_string": (lambda i: i.mint(sub=42), F.CLAIM_TYPE, True),
    "groups_not_strings": (lambda i: i.mint(groups=[1, 2]), F.CLAIM_TYPE, False),
    "tampered_payload": (_tampered, F.BAD_SIGNATURE, False),
    "all_zero_es256_signature": (_all_zero_es256, F.BAD_SIGNATURE, False),
    "foreign_key_under_our_kid": (_foreign_key_under_our_kid, F.BAD_SIGNATURE, False),
}


@pytest.mark.parametrize("family", list(BAD_TOKENS))
async def test_bad_token_family_is_refused_with_its_exact_reason(
    verifier: JwtVerifier, test_issuer: TestIssuer, family: str
) -> None:
    forge, reason, before_key = BAD_TOKENS[family]

    assert await refusal(verifier, forge(test_issuer)) is reason
    assert verifier.jwks.fetch_attempts == (0 if before_key else 1)


async def test_lenient_decoder_would_take_the_last_duplicate_claim(test_issuer: TestIssuer) -> None:
    token = test_issuer.mint_duplicate_claim("sub", "alice", "admin")
    public = test_issuer.key("rsa").private_key.public_key()

    lenient = pyjwt.decode(token, public, algorithms=["RS256"], audience=test_issuer.audience)

    assert lenient["sub"] == "admin"  # why the verifier parses the segments itself


async def test_alg_outside_the_allowlist_is_refused(
    make_verifier: MakeVerifier, test_issuer: TestIssuer
) -> None:
    verifier = make_verifier(algorithms=("ES256",))

    assert await refusal(verifier, test_issuer.mint("alice", key="rsa")) is AuthFailure.ALG_NOT_ALLOWED


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_settings_refuse_symmetric_or_none_algorithms(alg: str) -> None:
    with pytest.raises(ValidationError):
        UserAuthSettings(algorithms=("RS256", alg))


@pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud", "iat"])
async def test_missing_required_claim_is_refused(
    verifier: JwtVerifier, test_issuer: TestIssuer, claim: str
) -> None:
    omitted: dict[str, Any] = {claim: OMIT}
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(test_issuer.mint(**omitted))

    assert (caught.value.reason, caught.value.detail) == (AuthFailure.MISSING_CLAIM, claim)


@pytest.mark.parametrize(
    "value", ["2000000000", 2000000000.0, 2000000000.5, True, 10**30, -1, None, [2000000000]], ids=repr
)
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_numeric_dates_must_be_plain_integers(
    verifier: JwtVerifier, test_issuer: TestIssuer, claim: str, value: Any
) -> None:
    assert await refusal(verifier, test_issuer.mint("alice", **{claim: value})) is AuthFailure.CLAIM_TYPE
    assert verifier.jwks.fetch_attempts == 0


async def test_huge_token_is_refused_before_any_key_or_signature_work(
    verifier: JwtVerifier, test_issuer: TestIssuer
) -> None:
    token = test_issuer.mint_huge(1 << 20)

    started = time.perf_counter()
    assert await refusal(verifier, token) is AuthFailure.TOO_LARGE
    elapsed = time.perf_counter() - started

    assert verifier.jwks.fetch_attempts == 0  # no key was even looked up
    assert elapsed < 0.05


async def test_token_at_the_size_cap_is_still_verified(
    make_verifier: MakeVerifier, test_issuer: TestIssuer
) -> None:
    verifier = make_verifier(max_token_bytes=4096)
    token = test_issuer.mint("alice", padding="x" * 2000)

    assert len(token) <= 4096
    assert (await verifier.verify(token)).subject == "alice"


def _payload_json(document: str) -> str:
    return b64url(document.encode())


MALFORMED = "two_segments four_segments padded non_base64 trailing_newline payload_array payload_not_json"
MALFORMED += " payload_nan payload_deeply_nested header_not_utf8 empty_signature"


@pytest.mark.parametrize("shape", MALFORMED.split())
async def test_malformed_tokens_are_refused(
    verifier: JwtVerifier, test_issuer: TestIssuer, shape: str
) -> None:
    good = test_issuer.mint("alice")
    head, body, sig = good.split(".")
    nan_payload = _payload_json('{"exp": NaN}')
    latin_header = b64url(b"\xff\xfe{}")
    deep_payload = _payload_json('{"a":' + "[" * 2500 + "]" * 2500 + "}")
    token = {
        "two_segments": f"{head}.{body}",
        "four_segments": f"{good}.{sig}",
        "padded": f"{head}.{body}=.{sig}",
        "non_base64": f"{head}.{body}+/.{sig}",
        "trailing_newline": f"{good}\n",
        "payload_array": f"{head}.{_payload_json('[1, 2]')}.{sig}",
        "payload_not_json": f"{head}.{_payload_json('not json')}.{sig}",
        "payload_nan": f"{head}.{nan_payload}.{sig}",
        "payload_deeply_nested": f"{head}.{deep_payload}.{sig}",
        "header_not_utf8": f"{latin_header}.{body}.{sig}",
        "empty_signature": f"{head}.{body}.",
    }[shape]

    assert await refusal(verifier, token) is AuthFailure.MALFORMED


# -- header-supplied keys and extensions -------------------------------------------------------


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c"])
async def test_header_supplied_key_material_is_refused_and_never_fetched(
    verifier: JwtVerifier,
    test_issuer: TestIssuer,
    jwks_server: JwksServer,
    rogue_issuer: TestIssuer,
    member: str,
) -> None:
    rogue_key = rogue_issuer.key("rsa")
    value: Any = {
        "jku": rogue_issuer.jwks_url,
        "x5u": f"{rogue_issuer.issuer}/cert.pem",
        "jwk": rogue_key.public_jwk(),
        "x5c": [base64.b64encode(b"not really a certificate").decode()],
    }[member]
    header = {**rogue_issuer.header(rogue_key), member: value}
    token = rogue_issuer.sign_raw(header, test_issuer.claims("admin"), key=rogue_key)

    assert await refusal(verifier, token) is AuthFailure.HEADER_KEY_MATERIAL
    assert rogue_issuer.server is not None
    assert (rogue_issuer.server.total_requests, jwks_server.fetches) == (0, 0)


# -- the JWKS --------------------------------------------------------------------------------------


async def test_unknown_kid_flood_fetches_the_jwks_at_most_once_per_cooldown(
    verifier: JwtVerifier, test_issuer: TestIssuer, jwks_server: JwksServer, clock: FakeClock
) -> None:
    await verifier.verify(test_issuer.mint("alice"))  # warm: fetch 1
    assert jwks_server.fetches == 1

    async def flood() -> list[AuthFailure]:
        tokens = [test_issuer.mint(header_overrides={"kid": uuid.uuid4().hex}) for _ in range(1000)]
        results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
        return [r.reason for r in results if isinstance(r, AuthenticationError)]

    within_cooldown = await flood()
    clock.advance(COOLDOWN_S)
    after_cooldown = await flood()

    assert within_cooldown == [AuthFailure.UNKNOWN_KID] * 1000
    assert after_cooldown == [AuthFailure.UNKNOWN_KID] * 1000
    assert jwks_server.fetches == 2  # none within the cooldown, one shared fetch after it
    assert (await verifier.verify(test_issuer.mint("alice"))).subject == "alice"


async def test_concurrent_first_lookups_share_one_fetch(
    verifier: JwtVerifier, test_issuer: TestIssuer, jwks_server: JwksServer
) -> None:
    tokens = [test_issuer.mint(f"user{i}", key=("rsa", "ec", "ed25519")[i % 3]) for i in range(60)]

    users = await asyncio.gather(*(verifier.verify(t) for t in tokens))

    assert (len(users), jwks_server.fetches) == (60, 1)


FAILING = {
    JwksMode.DOWN: "HTTP error",
    JwksMode.REDIRECT: "status 302",
    JwksMode.HUGE: "larger than",
    JwksMode.GARBAGE: "invalid JWKS",
}


@pytest.mark.parametrize("mode", list(FAILING))
async def test_cached_keys_keep_verifying_while_the_jwks_fails(
    verifier: JwtVerifier, test_issuer: TestIssuer, jwks_server: JwksServer, clock: FakeClock, mode: JwksMode
) -> None:
    await verifier.verify(test_issuer.mint("alice"))
    jwks_server.mode = mode
    clock.advance(TTL_S + 1)  # the set is stale: a background refresh starts, and fails

    assert (await verifier.verify(test_issuer.mint("bob"))).subject == "bob"
    await verifier.jwks.refresh()
    assert FAILING[mode] in (verifier.jwks.last_error or "")
    assert (await verifier.verify(test_issuer.mint("carol", key="ec"))).subject == "carol"


@pytest.mark.parametrize("mode", list(FAILING))
async def test_failing_jwks_with_no_cache_refuses_clearly_and_backs_off(
    verifier: JwtVerifier, test_issuer: TestIssuer, jwks_server: JwksServer, mode: JwksMode
) -> None:
    jwks_server.mode = mode

    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(test_issuer.mint("alice"))
    again = await refusal(verifier, test_issuer.mint("alice"))

    assert caught.value.reason is again is AuthFailure.JWKS_UNAVAILABLE
    assert FAILING[mode] in caught.value.detail
    assert verifier.jwks.fetch_attempts == 1  # the second refusal waited for the cooldown
    assert jwks_server.requests[ELSEWHERE_PATH] == 0  # a redirect is never followed


async def test_slow_jwks_is_bounded_by_the_timeout(
    make_verifier: MakeVerifier, test_issuer: TestIssuer, jwks_server: JwksServer
) -> None:
    verifier = make_verifier(timeout_s=0.3)
    jwks_server.mode = JwksMode.SLOW

    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(test_issuer.mint("alice"))
    elapsed = time.monotonic() - started

    assert caught.value.reason is AuthFailure.JWKS_UNAVAILABLE
    assert "no answer within" in caught.value.detail
    assert 0.25 <= elapsed < 1.5
    assert jwks_server.fetches == 1


async def test_rotated_key_is_fetched_after_the_cooldown(
    verifier: JwtVerifier, test_issuer: TestIssuer, jwks_server: JwksServer, clock: FakeClock
) -> None:
    await verifier.verify(test_issuer.mint("alice"))
    new_key = test_issuer.rotate("rsa", retire_old=True)
    old_token = test_issuer.mint("alice", key="rsa-1")
    new_token = test_issuer.mint("alice", key=new_key)

    assert await refusal(verifier, new_token) is AuthFailure.UNKNOWN_KID  # within the cooldown
    clock.advance(COOLDOWN_S)
    assert (await verifier.verify(new_token)).subject == "alice"

    assert jwks_server.fetches == 2
    assert await refusal(verifier, old_token) is AuthFailure.UNKNOWN_KID  # retired key is gone


def test_jwks_parser_keeps_only_asymmetric_signing_keys() -> None:
    good = IssuerKey.generate("ec", "good").public_jwk()
    ed = IssuerKey.generate("ed25519", "ed").public_jwk()
    twin = IssuerKey.generate("rsa", "twin").public_jwk()
    private_rsa = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048), as_dict=True)
    weak_rsa = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 1024).public_key(), as_dict=True)
    small_exponent = RSAAlgorithm.to_jwk(rsa.generate_private_key(3, 2048).public_key(), as_dict=True)
    document = {
        "keys": [
            good,
            ed,
            twin,
            {**twin, "n": IssuerKey.generate("rsa", "y").public_jwk()["n"]},  # same kid, other key
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**IssuerKey.generate("rsa", "enc").public_jwk(), "use": "enc"},  # an encryption key
            {**private_rsa, "kid": "private"},
            {**weak_rsa, "kid": "weak"},
            {**small_exponent, "kid": "e3"},
            {**good, "kid": "nokeyops", "key_ops": ["encrypt"]},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": good["x"], "y": good["y"]},
            {"kty": "RSA", "kid": "broken", "n": 5, "e": "AQAB"},
            {**good, "kid": ""},
            "not an object",
        ]
    }

    assert set(parse_jwks(document)) == {"good", "ed"}
    with pytest.raises(ValueError, match="no usable signing key"):
        parse_jwks({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]})


# -- the SDK hook, logging and settings -----------------------------------------------------------


async def test_verify_token_answers_none_and_logs_the_reason_without_the_token(
    verifier: JwtVerifier, test_issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    token = test_issuer.mint("alice", audience=SIBLING)

    with caplog.at_level(logging.INFO, logger="fleetdeck.auth.jwt"):
        assert await verifier.verify_token(token) is None

    assert "wrong_audience" in caplog.text
    assert token.split(".")[2] not in caplog.text
    assert token.split(".")[1] not in caplog.text


def test_settings_require_https_jwks_and_the_core_claims() -> None:
    assert UserAuthSettings(jwks_url="http://127.0.0.1:9/jwks").jwks_url  # http on loopback only
    assert UserAuthSettings(jwks_url="https://idp.example/jwks").jwks_url
    with pytest.raises(ValidationError):
        UserAuthSettings(jwks_url="http://idp.example/jwks")
    settings = UserAuthSettings(required_claims=("jti",))
    assert set(settings.required_claims) == {"iss", "sub", "aud", "exp", "jti"}
    assert settings.leeway_s == 30


def test_verifier_needs_an_issuer_a_jwks_and_an_audience() -> None:
    with pytest.raises(ConfigError):
        JwtVerifier(UserAuthSettings(issuer="https://idp.example", jwks_url="https://idp.example/jwks"))


async def test_sdk_answers_401_with_resource_metadata_and_serves_a_good_token(
    verifier: JwtVerifier, test_issuer: TestIssuer
) -> None:
    server = MCPServer(
        "auth-probe",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=AnyHttpUrl(test_issuer.issuer),
            resource_server_url=AnyHttpUrl(test_issuer.audience),
            validate_token_resource=True,
        ),
    )
    app = server.streamable_http_app(json_response=True)
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    transport = httpx2.ASGITransport(app=app)
    async with (
        server.session_manager.run(),
        httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):

        async def post(token: str) -> httpx2.Response:
            headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {token}"}
            return await client.post("/mcp", json=initialize, headers=headers)

        sibling = await post(test_issuer.mint("alice", audience=SIBLING))
        duplicate = await post(test_issuer.mint_duplicate_claim("sub", "alice", "admin"))
        good = await post(test_issuer.mint("alice"))

    metadata = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
    for refused in (sibling, duplicate):
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        assert f'resource_metadata="{metadata}"' in challenge
    assert good.status_code == 200
    assert good.json()["result"]["serverInfo"]["name"] == "auth-probe"


SIGNERS: dict[str, Callable[[], Any]] = {
    "RS": lambda: rsa.generate_private_key(65537, 2048),
    "PS": lambda: rsa.generate_private_key(65537, 3072),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ES512": lambda: ec.generate_private_key(ec.SECP521R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


@pytest.mark.parametrize(
    "alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
)
def test_every_algorithm_verifies_a_real_signature_and_refuses_a_tampered_one(alg: str) -> None:
    private = SIGNERS[alg if alg in SIGNERS else alg[:2]]()
    token = pyjwt.encode({"sub": "alice"}, private, algorithm=alg)  # signed by PyJWT (cryptography)
    signing_input, _, encoded = token.rpartition(".")
    signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    check = checks_for(private.public_key())[alg]

    check(signing_input.encode(), signature)
    with pytest.raises(InvalidSignature):
        check(signing_input.encode() + b"x", signature)


def test_each_key_verifies_only_the_algorithms_of_its_type_and_curve() -> None:
    rsa_key = rsa.generate_private_key(65537, 2048).public_key()
    signer, stranger = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())

    assert set(checks_for(rsa_key)) == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    assert set(checks_for(signer.public_key())) == {"ES384"}
    assert set(checks_for(rsa_key, "PS384")) == {"PS384"}  # the JWK's alg pins one
    assert checks_for(signer.public_key(), "ES256") == {}  # a pin the key cannot honour: nothing

    message = b"header.payload"
    r, s = decode_dss_signature(signer.sign(message, ec.ECDSA(hashes.SHA384())))
    raw = r.to_bytes(48, "big") + s.to_bytes(48, "big")  # JWS form: R || S
    checks_for(signer.public_key())["ES384"](message, raw)
    with pytest.raises(InvalidSignature):
        checks_for(stranger.public_key())["ES384"](message, raw)  # bound to its own key
    with pytest.raises(InvalidSignature):
        checks_for(signer.public_key())["ES384"](message, raw[:-1])
