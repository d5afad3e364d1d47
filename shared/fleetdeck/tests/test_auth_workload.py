"""Workload identities: XFCC only from trusted sidecars, strict JWT-SVIDs, real X.509-SVID leaf checks."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from fleetdeck.auth.spiffe import SpiffeId
from fleetdeck.auth.workload import (
    JwtSvidBundles,
    WorkloadAuthError,
    WorkloadIdentity,
    WorkloadSettings,
    XfccSyntaxError,
    is_trusted_proxy,
    parse_xfcc,
    peer_certificate_from_scope,
    resolve_workload,
    workload_from_jwt_svid,
    workload_from_peer_certificate,
    workload_from_xfcc,
)
from fleetdeck.errors import ConfigError, FleetdeckError

OWN = "spiffe://example.org/mcp/presto"
CALLER = "spiffe://example.org/ns/agents/sa/planner"
PROXY = "10.1.2.3"
AUDIENCE = "spiffe://example.org/mcp/presto"


@pytest.fixture
def settings() -> WorkloadSettings:
    return WorkloadSettings(
        own_id=OWN,
        trust_domains=["example.org", "partner.org"],
        trusted_proxies=["10.1.2.0/24", "::1"],
        jwt_svid_audience=AUDIENCE,
    )


def xfcc(uri: str = CALLER, by: str = OWN, extra: str = "") -> str:
    return f"By={by};Hash=abc123{extra};URI={uri}"


def refused(source: str, reason: str) -> Any:
    return pytest.raises(WorkloadAuthError, match=f"^workload identity \\({source}\\) refused: {reason}")


# --- XFCC ------------------------------------------------------------------------------------


def test_xfcc_from_the_trusted_sidecar_proves_the_caller(settings: WorkloadSettings) -> None:
    assert workload_from_xfcc(xfcc(), PROXY, settings) == SpiffeId.parse(CALLER)


def test_xfcc_spoofed_from_an_untrusted_address_is_ignored(
    settings: WorkloadSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fleetdeck.auth.workload"):
        assert workload_from_xfcc(xfcc(), "203.0.113.9", settings) is None
        assert workload_from_xfcc(xfcc(), None, settings) is None
        assert workload_from_xfcc('garbage ,;"', "203.0.113.9", settings) is None
    assert "not a trusted proxy" in caplog.text


def test_xfcc_is_never_trusted_when_no_proxy_is_configured() -> None:
    plain = WorkloadSettings(own_id=OWN, trust_domains=["example.org"])
    assert workload_from_xfcc(xfcc(), "127.0.0.1", plain) is None


def test_an_ipv4_mapped_ipv6_peer_matches_its_ipv4_network(settings: WorkloadSettings) -> None:
    assert is_trusted_proxy("::ffff:10.1.2.77", settings)
    assert is_trusted_proxy("::1", settings)
    assert not is_trusted_proxy("10.1.3.1", settings)
    assert not is_trusted_proxy("not-an-ip", settings)


def test_xfcc_whose_by_is_not_this_workload_is_refused(settings: WorkloadSettings) -> None:
    with refused("xfcc", "last element's By= is not this workload's SPIFFE ID"):
        workload_from_xfcc(xfcc(by="spiffe://example.org/mcp/spark"), PROXY, settings)
    with refused("xfcc", "last element has no By="):
        workload_from_xfcc(f"Hash=abc;URI={CALLER}", PROXY, settings)


def test_only_the_last_xfcc_element_counts(settings: WorkloadSettings) -> None:
    header = f"{xfcc(uri='spiffe://example.org/attacker/choice')},{xfcc()}"
    assert workload_from_xfcc(header, PROXY, settings) == SpiffeId.parse(CALLER)
    earlier_by_elsewhere = f"{xfcc(by='spiffe://example.org/edge')},{xfcc()}"
    assert workload_from_xfcc(earlier_by_elsewhere, PROXY, settings) == SpiffeId.parse(CALLER)
    last_is_foreign = f"{xfcc()},{xfcc(by='spiffe://example.org/edge')}"
    with refused("xfcc", "last element's By="):
        workload_from_xfcc(last_is_foreign, PROXY, settings)


def test_quoted_xfcc_values_may_hold_commas_semicolons_equals_and_quotes(settings: WorkloadSettings) -> None:
    subject = '"CN=planner,O=Acme; Inc.,OU=\\"agents\\""'
    header = f"By={OWN};Subject={subject};URI={CALLER};DNS=a.example.org;DNS=b.example.org"
    assert parse_xfcc(header) == [
        (
            ("by", OWN),
            ("subject", 'CN=planner,O=Acme; Inc.,OU="agents"'),
            ("uri", CALLER),
            ("dns", "a.example.org"),
            ("dns", "b.example.org"),
        )
    ]
    assert workload_from_xfcc(f"{xfcc(uri='spiffe://example.org/x')},{header}", PROXY, settings) == (
        SpiffeId.parse(CALLER)
    )


def test_xfcc_keys_are_case_insensitive_and_envoy_cert_values_parse(settings: WorkloadSettings) -> None:
    header = f'by={OWN};HASH=468ed33b;Cert="-----BEGIN%20CERTIFICATE-----%0AMIIB";Uri={CALLER}'
    assert workload_from_xfcc(header, PROXY, settings) == SpiffeId.parse(CALLER)


def test_xfcc_without_a_uri_or_with_two_is_refused(settings: WorkloadSettings) -> None:
    with refused("xfcc", "last element has no URI="):
        workload_from_xfcc(f"By={OWN};Hash=abc;DNS=a.example.org", PROXY, settings)
    with refused("xfcc", "last element has more than one URI="):
        workload_from_xfcc(xfcc(extra=";URI=spiffe://example.org/admin"), PROXY, settings)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (f'By={OWN};Subject="CN=a;URI={CALLER}', "unterminated quoted value"),
        (f'By={OWN};Subject=CN"a;URI={CALLER}', "unquoted '\"' in the value of Subject"),
        (f"By={OWN};Subject=CN=a;URI={CALLER}", "unquoted '=' in the value of Subject"),
        (f'By={OWN};Subject="a"b;URI={CALLER}', "unexpected character after a quoted value"),
        (f"By={OWN};;URI={CALLER}", "expected Key=Value"),
        (f"By={OWN};URI={CALLER},", "expected Key=Value"),
        (f"By={OWN};By={OWN};URI={CALLER}", "by appears twice in one element"),
        ("", "expected Key=Value"),
    ],
)
def test_malformed_xfcc_from_a_trusted_proxy_is_refused(
    settings: WorkloadSettings, header: str, reason: str
) -> None:
    with pytest.raises(XfccSyntaxError, match=reason.replace("'", ".")):
        parse_xfcc(header)
    with refused("xfcc", "malformed header"):
        workload_from_xfcc(header, PROXY, settings)


def test_xfcc_uri_must_be_a_valid_workload_id_in_an_allowed_trust_domain(settings: WorkloadSettings) -> None:
    with refused("xfcc", "invalid SPIFFE ID: relative path segment"):
        workload_from_xfcc(xfcc(uri="spiffe://example.org/a/../admin"), PROXY, settings)
    with refused("xfcc", "trust domain evil.org is not allowed"):
        workload_from_xfcc(xfcc(uri="spiffe://evil.org/a"), PROXY, settings)
    with refused("xfcc", "SPIFFE ID names a trust domain, not a workload"):
        workload_from_xfcc(xfcc(uri="spiffe://example.org"), PROXY, settings)


def test_an_oversized_xfcc_header_is_refused(settings: WorkloadSettings) -> None:
    with refused("xfcc", "header is longer than 65536 bytes"):
        workload_from_xfcc(xfcc(extra=";Cert=" + "A" * 70_000), PROXY, settings)


# --- JWT-SVID --------------------------------------------------------------------------------


class Issuer:
    """One trust domain's JWT-SVID signing key, and its bundle entry."""

    def __init__(self, kid: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self.kid, self.key = kid, key
        public = key.public_key()
        jwk = (
            ECAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, ec.EllipticCurvePublicKey)
            else RSAAlgorithm.to_jwk(public, as_dict=True)
        )
        self.jwk: dict[str, Any] = {**jwk, "kid": kid, "use": "jwt-svid"}

    def sign(
        self, claims: dict[str, Any] | bytes, alg: str = "ES256", headers: dict[str, Any] | None = None
    ) -> str:
        payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
        return jwt.api_jws.encode(
            payload, self.key, algorithm=alg, headers={"kid": self.kid, **(headers or {})}
        )


@pytest.fixture(scope="module")
def home() -> Issuer:
    return Issuer("home-1", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def partner() -> Issuer:
    return Issuer("partner-1", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def home_rsa() -> Issuer:
    return Issuer("home-rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def bundles(home: Issuer, partner: Issuer, home_rsa: Issuer) -> JwtSvidBundles:
    x509_entry = {**partner.jwk, "kid": "x509", "use": "x509-svid"}
    return JwtSvidBundles.from_documents(
        {
            "example.org": {"keys": [home.jwk, home_rsa.jwk], "spiffe_sequence": 7},
            "partner.org": {"keys": [partner.jwk, x509_entry]},
        }
    )


def claims(sub: str = CALLER, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": sub, "aud": [AUDIENCE], "exp": int(time.time()) + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_a_valid_jwt_svid_proves_its_subject(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer, home_rsa: Issuer, partner: Issuer
) -> None:
    assert workload_from_jwt_svid(home.sign(claims()), settings, bundles) == SpiffeId.parse(CALLER)
    assert workload_from_jwt_svid(home_rsa.sign(claims(aud=AUDIENCE), "PS256"), settings, bundles) == (
        SpiffeId.parse(CALLER)
    )
    partner_id = "spiffe://partner.org/billing"
    assert workload_from_jwt_svid(partner.sign(claims(partner_id)), settings, bundles) == (
        SpiffeId.parse(partner_id)
    )


def test_a_jwt_svid_without_a_kid_is_tried_against_its_trust_domains_keys(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer
) -> None:
    token = jwt.encode(claims(), home.key, algorithm="ES256")
    assert workload_from_jwt_svid(token, settings, bundles) == SpiffeId.parse(CALLER)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": None}, "aud is required"),
        ({"aud": []}, "aud is required"),
        ({"aud": [1]}, "aud is required"),
        ({"aud": ["spiffe://example.org/mcp/spark"]}, "aud does not include this server"),
        ({"exp": None}, "exp is required"),
        ({"exp": "9999999999"}, "exp must be an integer NumericDate"),
        ({"exp": 9.9e9}, "exp must be an integer NumericDate"),
        ({"exp": True}, "exp must be an integer NumericDate"),
        ({"exp": 10**30}, "exp is more than 86400s away"),
        ({"exp": int(time.time()) - 3600}, "token has expired"),
        ({"nbf": "0"}, "nbf must be an integer NumericDate"),
        ({"nbf": int(time.time()) + 3600}, r"token is not yet valid \(nbf\)"),
        ({"iat": int(time.time()) + 3600}, r"token was issued in the future \(iat\)"),
        ({"sub": None}, "sub is required"),
        ({"sub": "spiffe://evil.org/a"}, "trust domain evil.org is not allowed"),
        ({"sub": "spiffe://example.org/a/%2e%2e"}, r"invalid SPIFFE ID: percent-encoding is not allowed"),
        ({"sub": "spiffe://example.org"}, "SPIFFE ID names a trust domain, not a workload"),
    ],
)
def test_a_jwt_svid_with_bad_claims_is_refused(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer, overrides: dict[str, Any], reason: str
) -> None:
    with refused("jwt-svid", reason):
        workload_from_jwt_svid(home.sign(claims(**overrides)), settings, bundles)


def test_a_symmetric_jwt_svid_is_refused(settings: WorkloadSettings, bundles: JwtSvidBundles) -> None:
    token = jwt.encode(claims(), "a-shared-secret-that-is-long-enough!!", algorithm="HS256")
    with refused("jwt-svid", "alg is not an allowed asymmetric algorithm"):
        workload_from_jwt_svid(token, settings, bundles)
    header, payload = (
        jwt.utils.base64url_encode(json.dumps(part).encode()) for part in ({"alg": "none"}, claims())
    )
    unsigned = (header + b"." + payload + b".").decode()
    with refused("jwt-svid", "alg is not an allowed asymmetric algorithm"):
        workload_from_jwt_svid(unsigned, settings, bundles)


def test_an_algorithm_outside_the_configured_list_is_refused(
    bundles: JwtSvidBundles, home_rsa: Issuer
) -> None:
    only_es = WorkloadSettings(
        trust_domains=["example.org"], jwt_svid_audience=AUDIENCE, jwt_svid_algorithms=["ES256"]
    )
    with refused("jwt-svid", "alg is not an allowed asymmetric algorithm"):
        workload_from_jwt_svid(home_rsa.sign(claims(), "RS256"), only_es, bundles)


def test_a_jwt_svid_signed_by_another_trust_domain_is_refused(
    settings: WorkloadSettings, bundles: JwtSvidBundles, partner: Issuer
) -> None:
    with refused("jwt-svid", "no usable ES256 key for trust domain example.org"):
        workload_from_jwt_svid(partner.sign(claims()), settings, bundles)
    without_kid = jwt.encode(claims(), partner.key, algorithm="ES256")
    with refused("jwt-svid", "signature does not verify with the keys of example.org"):
        workload_from_jwt_svid(without_kid, settings, bundles)


def test_an_x509_bundle_entry_never_verifies_a_jwt_svid(
    settings: WorkloadSettings, bundles: JwtSvidBundles, partner: Issuer
) -> None:
    token = jwt.api_jws.encode(
        json.dumps(claims("spiffe://partner.org/a")).encode(), partner.key, "ES256", headers={"kid": "x509"}
    )
    with refused("jwt-svid", "no usable ES256 key for trust domain partner.org"):
        workload_from_jwt_svid(token, settings, bundles)


def test_an_rsa_key_never_verifies_an_ec_token_and_vice_versa(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home_rsa: Issuer
) -> None:
    token = home_rsa.sign(claims(), "RS256", headers={"kid": "home-1"})
    with refused("jwt-svid", "no usable RS256 key for trust domain example.org"):
        workload_from_jwt_svid(token, settings, bundles)


def test_duplicate_claims_and_header_fields_are_refused(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer
) -> None:
    exp = int(time.time()) + 300
    raw = f'{{"sub":"{CALLER}","aud":"{AUDIENCE}","exp":{exp},"sub":"spiffe://example.org/admin"}}'
    with refused("jwt-svid", "payload is not strict JSON: duplicate JSON member 'sub'"):
        workload_from_jwt_svid(home.sign(raw.encode()), settings, bundles)
    with refused("jwt-svid", "header fields other than alg, kid and typ are not allowed"):
        workload_from_jwt_svid(
            home.sign(claims(), headers={"jku": "https://evil.example/jwks"}), settings, bundles
        )
    with refused("jwt-svid", "typ must be JWT or JOSE"):
        workload_from_jwt_svid(home.sign(claims(), headers={"typ": "at+jwt"}), settings, bundles)


def test_a_tampered_or_malformed_jwt_svid_is_refused(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer
) -> None:
    header, payload, signature = home.sign(claims()).split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims("spiffe://example.org/admin")).encode()).decode()
    with refused("jwt-svid", "signature does not verify"):
        workload_from_jwt_svid(f"{header}.{forged}.{signature}", settings, bundles)
    with refused("jwt-svid", "not a JWS compact serialization"):
        workload_from_jwt_svid(f"{header}.{payload}", settings, bundles)
    with refused("jwt-svid", "payload is not base64url"):
        workload_from_jwt_svid(f"{header}.{payload}+.{signature}", settings, bundles)
    with refused("jwt-svid", "token is longer than 8192 bytes"):
        workload_from_jwt_svid(home.sign(claims(pad="x" * 9000)), settings, bundles)


def test_jwt_svids_are_refused_when_not_configured(bundles: JwtSvidBundles, home: Issuer) -> None:
    plain = WorkloadSettings(trust_domains=["example.org"])
    with refused("jwt-svid", r"JWT-SVIDs are not accepted here \(no jwt_svid_audience\)"):
        workload_from_jwt_svid(home.sign(claims()), plain, bundles)


def test_bundles_load_from_files_and_refuse_private_keys(tmp_path: Path, home: Issuer) -> None:
    good = tmp_path / "example.org.json"
    good.write_text(json.dumps({"keys": [home.jwk]}))
    assert set(JwtSvidBundles.from_files({"example.org": good}).jwt_svid_keys("example.org")) == {"home-1"}
    assert isinstance(home.key, ec.EllipticCurvePrivateKey)
    private = ECAlgorithm.to_jwk(home.key, as_dict=True)
    leaky = tmp_path / "leaky.json"
    leaky.write_text(json.dumps({"keys": [{**private, "kid": "k"}]}))
    with pytest.raises(ConfigError, match="no usable signing key"):
        JwtSvidBundles.from_files({"example.org": leaky})
    duplicated = tmp_path / "dup.json"
    duplicated.write_text('{"keys": [], "keys": []}')
    with pytest.raises(ConfigError, match="not strict JSON"):
        JwtSvidBundles.from_files({"example.org": duplicated})


# --- X.509-SVID peer certificates ------------------------------------------------------------


def certificate(
    sans: Sequence[x509.GeneralName] | None = (x509.UniformResourceIdentifier(CALLER),),
    *,
    ca: bool = False,
    key_cert_sign: bool = False,
    days: int = 1,
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_a_leaf_with_one_spiffe_uri_san_proves_its_id(settings: WorkloadSettings) -> None:
    with_dns = certificate([x509.DNSName("planner.example.org"), x509.UniformResourceIdentifier(CALLER)])
    assert workload_from_peer_certificate(certificate(), settings) == SpiffeId.parse(CALLER)
    assert workload_from_peer_certificate(with_dns, settings) == SpiffeId.parse(CALLER)


def test_a_ca_certificate_is_not_a_workload(settings: WorkloadSettings) -> None:
    with refused("mtls", "peer certificate is a CA certificate"):
        workload_from_peer_certificate(certificate(ca=True, key_cert_sign=True), settings)
    with refused("mtls", r"peer certificate may sign certificates \(keyCertSign/cRLSign\)"):
        workload_from_peer_certificate(certificate(key_cert_sign=True), settings)


@pytest.mark.parametrize(
    ("sans", "reason"),
    [
        (
            [
                x509.UniformResourceIdentifier(CALLER),
                x509.UniformResourceIdentifier("spiffe://example.org/b"),
            ],
            "peer certificate has more than one URI SAN",
        ),
        (None, "peer certificate has no URI SAN"),
        ([x509.DNSName("planner.example.org")], "peer certificate has no URI SAN"),
        (
            [x509.UniformResourceIdentifier("https://example.org/a")],
            "invalid SPIFFE ID: scheme must be 'spiffe://'",
        ),
        ([x509.UniformResourceIdentifier("spiffe://evil.org/a")], "trust domain evil.org is not allowed"),
        ([x509.UniformResourceIdentifier("spiffe://example.org/a/")], "invalid SPIFFE ID: trailing '/'"),
    ],
)
def test_a_certificate_without_exactly_one_good_uri_san_is_refused(
    settings: WorkloadSettings, sans: list[x509.GeneralName] | None, reason: str
) -> None:
    with refused("mtls", reason):
        workload_from_peer_certificate(certificate(sans), settings)


def test_an_expired_or_garbled_certificate_is_refused(settings: WorkloadSettings) -> None:
    with refused("mtls", "peer certificate is outside its validity period"):
        workload_from_peer_certificate(certificate(days=-1), settings)
    with refused("mtls", "peer certificate cannot be parsed"):
        workload_from_peer_certificate(b"\x30\x03\x02\x01\x00", settings)


def test_the_peer_certificate_comes_from_the_asgi_tls_extension_when_present() -> None:
    der = certificate()
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()
    assert peer_certificate_from_scope({"extensions": {"tls": {"client_cert_chain": [pem]}}}) == der
    failed = {"client_cert_chain": [pem], "client_cert_error": "unknown ca"}
    assert peer_certificate_from_scope({"extensions": {"tls": failed}}) is None
    assert peer_certificate_from_scope({"extensions": {"tls": {"client_cert_chain": []}}}) is None
    assert peer_certificate_from_scope({"type": "http", "client": ("127.0.0.1", 1)}) is None


# --- all proofs together ---------------------------------------------------------------------


def raw(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in pairs]


def test_no_proof_means_no_workload(settings: WorkloadSettings) -> None:
    assert resolve_workload(raw(("accept", "*/*")), PROXY, None, settings, None) is None


def test_each_proof_alone_is_named(settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer) -> None:
    caller = SpiffeId.parse(CALLER)
    assert resolve_workload([], None, certificate(), settings, None) == WorkloadIdentity(caller, "mtls")
    from_proxy = raw(("x-forwarded-client-cert", xfcc()))
    assert resolve_workload(from_proxy, PROXY, None, settings, None) == WorkloadIdentity(caller, "xfcc")
    svid = raw(("x-spiffe-jwt-svid", home.sign(claims())))
    assert resolve_workload(svid, "203.0.113.9", None, settings, bundles) == WorkloadIdentity(
        caller, "jwt-svid"
    )


def test_agreeing_proofs_report_the_strongest(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer
) -> None:
    headers = raw(("x-forwarded-client-cert", xfcc()), ("x-spiffe-jwt-svid", home.sign(claims())))
    identity = resolve_workload(headers, PROXY, certificate(), settings, bundles)
    assert identity == WorkloadIdentity(SpiffeId.parse(CALLER), "mtls")
    assert identity.as_principal_workload().spiffe_id == CALLER


def test_conflicting_proofs_are_refused(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer
) -> None:
    headers = raw(("x-forwarded-client-cert", xfcc(uri="spiffe://example.org/other")))
    with refused("conflict", "the proofs disagree: mtls proves .*planner, xfcc spiffe://example.org/other"):
        resolve_workload(headers, PROXY, certificate(), settings, None)
    svid = raw(("x-spiffe-jwt-svid", home.sign(claims("spiffe://example.org/other"))))
    with refused("conflict", "the proofs disagree"):
        resolve_workload(svid, PROXY, certificate(), settings, bundles)


def test_a_spoofed_xfcc_beside_a_jwt_svid_is_ignored_not_conflicting(
    settings: WorkloadSettings, bundles: JwtSvidBundles, home: Issuer
) -> None:
    headers = raw(
        ("x-forwarded-client-cert", xfcc(uri="spiffe://example.org/admin")),
        ("x-spiffe-jwt-svid", home.sign(claims())),
    )
    identity = resolve_workload(headers, "203.0.113.9", None, settings, bundles)
    assert identity == WorkloadIdentity(SpiffeId.parse(CALLER), "jwt-svid")


def test_repeated_xfcc_lines_are_one_list_and_the_proxys_last_element_wins(
    settings: WorkloadSettings,
) -> None:
    headers = raw(
        ("x-forwarded-client-cert", xfcc(uri="spiffe://example.org/admin")),
        ("X-Forwarded-Client-Cert", xfcc()),
    )
    identity = resolve_workload(headers, PROXY, None, settings, None)
    assert identity == WorkloadIdentity(SpiffeId.parse(CALLER), "xfcc")


def test_two_jwt_svid_headers_or_one_without_keys_are_refused(
    settings: WorkloadSettings, home: Issuer
) -> None:
    token = home.sign(claims())
    with refused("jwt-svid", "more than one x-spiffe-jwt-svid header"):
        resolve_workload(
            raw(("x-spiffe-jwt-svid", token), ("x-spiffe-jwt-svid", token)), None, None, settings, None
        )
    with refused("jwt-svid", "no usable ES256 key for trust domain example.org"):
        resolve_workload(raw(("x-spiffe-jwt-svid", token)), None, None, settings, None)


def test_the_error_is_a_401_fleetdeck_error(settings: WorkloadSettings) -> None:
    with pytest.raises(FleetdeckError) as caught:
        resolve_workload([], None, certificate(ca=True), settings, None)
    assert isinstance(caught.value, WorkloadAuthError)
    assert caught.value.http_status == 401
    assert caught.value.source == "mtls"


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"trusted_proxies": ["127.0.0.1"]}, "own_id is required when trusted_proxies is set"),
        ({"own_id": "spiffe://example.org/a/"}, "trailing '/'"),
        ({"trust_domains": ["Example.org"]}, "trust domain must be lowercase"),
        ({"trusted_proxies": ["not-an-address"], "own_id": OWN}, "trusted_proxies"),
        ({"jwt_svid_header": "authorization"}, "reserved"),
        ({"jwt_svid_header": "X-Svid"}, "lowercase header name"),
        ({"jwt_svid_algorithms": ["HS256"]}, "jwt_svid_algorithms"),
        ({"jwt_svid_algorithms": ["EdDSA"]}, "jwt_svid_algorithms"),
        ({"jwt_svid_jwks_urls": {"example.org": "http://spire.example.org/keys"}}, "https"),
        ({"jwt_svid_jwks_urls": {"example.org": "http://localhost.evil.example/keys"}}, "https"),
        ({"jwt_svid_bundle_paths": {"other.org": "/b.json"}}, "not in trust_domains"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_wrong_workload_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkloadSettings(trust_domains=values.pop("trust_domains", ["example.org"]), **values)


def test_loopback_jwks_urls_may_use_plain_http() -> None:
    urls = {"example.org": "http://127.0.0.1:8081/keys"}
    assert WorkloadSettings(trust_domains=["example.org"], jwt_svid_jwks_urls=urls).jwt_svid_jwks_urls == urls


def test_settings_round_trip_through_json() -> None:
    settings = WorkloadSettings(own_id=OWN, trust_domains=["example.org"], trusted_proxies=["127.0.0.1"])
    dumped = settings.model_dump(mode="json")
    assert dumped["own_id"] == OWN
    assert WorkloadSettings.model_validate(dumped) == settings
