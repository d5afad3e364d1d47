"""SPIFFE IDs are parsed strictly: every rule of the specification is refused with its own reason."""

from __future__ import annotations

import pytest

from fleetdeck.auth.spiffe import InvalidSpiffeIdError, SpiffeId, parse_trust_domain
from fleetdeck.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "trust_domain", "path"),
    [
        ("spiffe://example.org/ns/prod/sa/presto", "example.org", "/ns/prod/sa/presto"),
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://k8s-west_1.example.org/Web.FE-2_x", "k8s-west_1.example.org", "/Web.FE-2_x"),
        ("spiffe://10.0.0.1/a/..b/c..", "10.0.0.1", "/a/..b/c.."),
    ],
)
def test_a_valid_id_parses_into_its_parts_and_prints_back(text: str, trust_domain: str, path: str) -> None:
    spiffe_id = SpiffeId.parse(text)
    assert (spiffe_id.trust_domain, spiffe_id.path) == (trust_domain, path)
    assert str(spiffe_id) == text
    assert spiffe_id == SpiffeId(trust_domain, path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("SPIFFE://example.org/a", "scheme must be lowercase 'spiffe'"),
        ("Spiffe://example.org/a", "scheme must be lowercase 'spiffe'"),
        ("https://example.org/a", "scheme must be 'spiffe://'"),
        ("spiffe:/example.org/a", "scheme must be 'spiffe://'"),
        ("spiffe://example.org/a/../admin", "relative path segment ('.' or '..') is not allowed"),
        ("spiffe://example.org/a/./b", "relative path segment ('.' or '..') is not allowed"),
        ("spiffe://example.org/..", "relative path segment ('.' or '..') is not allowed"),
        ("spiffe://example.org/a/%2e%2e/admin", "percent-encoding is not allowed"),
        ("spiffe://example.org/%61", "percent-encoding is not allowed"),
        ("spiffe://exa%6Dple.org/a", "percent-encoding is not allowed"),
        ("spiffe://example.org/a/", "trailing '/' is not allowed"),
        ("spiffe://example.org/", "trailing '/' is not allowed"),
        ("spiffe://example.org/a?x=1", "a query is not allowed"),
        ("spiffe://example.org?x", "a query is not allowed"),
        ("spiffe://example.org/a#frag", "a fragment is not allowed"),
        ("spiffe://example.org:443/a", "a port is not allowed"),
        ("spiffe://example.org:/a", "a port is not allowed"),
        ("spiffe://admin@example.org/a", "user info is not allowed"),
        ("spiffe://admin:pw@example.org/a", "user info is not allowed"),
        ("spiffe://example.org//a", "empty path segment"),
        ("spiffe://example.org/a//b", "empty path segment"),
        ("spiffe://", "trust domain is missing"),
        ("spiffe:///a", "trust domain is missing"),
        ("spiffe://Example.org/a", "trust domain must be lowercase"),
        ("spiffe://exa mple.org/a", "trust domain may only contain a-z, 0-9, '.', '-' and '_'"),
        ("spiffe://[::1]/a", "trust domain may only contain a-z, 0-9, '.', '-' and '_'"),
        ("spiffe://exämple.org/a", "trust domain may only contain a-z, 0-9, '.', '-' and '_'"),
        ("spiffe://example.org/a b", "path segments may only contain a-z, A-Z, 0-9, '.', '-' and '_'"),
        ("spiffe://example.org/a~b", "path segments may only contain a-z, A-Z, 0-9, '.', '-' and '_'"),
        ("spiffe://example.org/a\\b", "path segments may only contain a-z, A-Z, 0-9, '.', '-' and '_'"),
        ("spiffe://example.org/a\nb", "path segments may only contain a-z, A-Z, 0-9, '.', '-' and '_'"),
        ("spiffe://example.org/é", "path segments may only contain a-z, A-Z, 0-9, '.', '-' and '_'"),
        ("spiffe://" + "a" * 256 + "/x", "trust domain is longer than 255 bytes"),
        ("spiffe://example.org/" + "a" * 2028, "longer than 2048 bytes"),
    ],
)
def test_a_malformed_id_is_refused_with_the_rule_it_broke(text: str, reason: str) -> None:
    with pytest.raises(InvalidSpiffeIdError) as caught:
        SpiffeId.parse(text)
    assert caught.value.reason == reason
    assert str(caught.value) == f"invalid SPIFFE ID: {reason}"


def test_the_longest_allowed_id_is_exactly_2048_bytes() -> None:
    text = "spiffe://example.org/" + "a" * (2048 - len("spiffe://example.org/"))
    assert len(text) == 2048
    assert str(SpiffeId.parse(text)) == text


def test_constructing_an_id_directly_applies_the_same_rules() -> None:
    with pytest.raises(InvalidSpiffeIdError, match=r"relative path segment"):
        SpiffeId("example.org", "/a/..")
    with pytest.raises(InvalidSpiffeIdError, match=r"path must start with '/'"):
        SpiffeId("example.org", "a")
    with pytest.raises(InvalidSpiffeIdError, match=r"a port is not allowed"):
        SpiffeId("example.org:8443", "/a")


def test_an_id_is_immutable_and_hashable() -> None:
    spiffe_id = SpiffeId.parse("spiffe://example.org/a")
    with pytest.raises(AttributeError):
        spiffe_id.path = "/admin"  # type: ignore[misc]
    assert {spiffe_id, SpiffeId.parse("spiffe://example.org/a")} == {spiffe_id}


def test_a_trust_domain_id_has_no_path() -> None:
    assert SpiffeId.parse("spiffe://example.org").is_trust_domain_id
    assert not SpiffeId.parse("spiffe://example.org/a").is_trust_domain_id


def test_trust_domain_names_follow_the_same_rules() -> None:
    assert parse_trust_domain("prod.example.org") == "prod.example.org"
    for name, reason in [
        ("", "missing"),
        ("Example.org", "lowercase"),
        ("a:1", "port"),
        ("a@b", "user info"),
    ]:
        with pytest.raises(InvalidSpiffeIdError, match=reason):
            parse_trust_domain(name)


def test_the_error_is_an_invalid_input_and_a_value_error_and_never_echoes_the_text() -> None:
    with pytest.raises(InvalidSpiffeIdError) as caught:
        SpiffeId.parse("spiffe://example.org/secret-token-123?x")
    assert isinstance(caught.value, InvalidInputError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.http_status == 400
    assert "secret-token-123" not in str(caught.value)
