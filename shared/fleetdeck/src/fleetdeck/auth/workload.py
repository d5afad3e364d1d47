"""The workload layer: which SPIFFE identity is calling, and how it was proven.

Three proofs, in this order of precedence:

1. ``mtls`` — the TLS peer certificate, when this server terminates mTLS itself and the TLS stack
   has already verified the chain against the trust bundle. It must be a leaf (not a CA) with
   exactly one URI SAN, a SPIFFE ID.
2. ``xfcc`` — Envoy's ``x-forwarded-client-cert``, trusted **only** when the TCP peer is one of
   ``trusted_proxies``. From any other address the header is ignored entirely (treated as absent,
   logged as a warning) — a client cannot know whether it is behind a proxy, and refusing would let
   anyone probe the rule. Sidecars append, so only the *last* element counts; its ``By=`` must be
   this workload's own SPIFFE ID and it must carry exactly one ``URI=``.
3. ``jwt-svid`` — a JWT-SVID in its own header (``settings.jwt_svid_header``, default
   ``x-spiffe-jwt-svid``; ``Authorization`` stays with the user layer): an asymmetric algorithm,
   ``aud`` containing ``settings.jwt_svid_audience``, integer ``exp``, ``sub`` a SPIFFE ID, verified
   with the keys of the ``sub``'s own trust domain.

Every proof that is present is checked; a bad one is an error, never a fallback to the next, and
two proofs naming different workloads are refused. Every identity must be a workload (a path under
the trust domain) in an allowed trust domain (``trust_domains``; empty allows none). Errors are
:class:`WorkloadAuthError` (HTTP 401) whose message names the proof and the rule it broke.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Self, TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fleetdeck.auth.jwks import SigningKey, base64url_decode, parse_jwks, strict_json
from fleetdeck.auth.principal import Workload, WorkloadProof
from fleetdeck.auth.signature import InvalidSignature
from fleetdeck.auth.spiffe import InvalidSpiffeIdError, SpiffeId, parse_trust_domain
from fleetdeck.errors import ConfigError, FleetdeckError, Outcome

logger = logging.getLogger(__name__)

XFCC_HEADER = "x-forwarded-client-cert"
DEFAULT_JWT_SVID_HEADER = "x-spiffe-jwt-svid"
JwtSvidAlgorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
"""The JWT-SVID specification's algorithms (§2.1) — asymmetric only; HS*, EdDSA and ``none`` never."""

_ALL_ALGORITHMS: tuple[JwtSvidAlgorithm, ...] = (
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
)  # fmt: skip
_JWT_SVID_HEADER_FIELDS = frozenset({"alg", "kid", "typ"})
_RESERVED_HEADERS = frozenset({"authorization", "cookie", "host", XFCC_HEADER})
_HEADER_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_XFCC_SINGLE_KEYS = frozenset({"by", "hash", "cert", "chain", "subject"})
_OWS = " \t"
_E = TypeVar("_E", bound=x509.ExtensionType)


class WorkloadAuthError(FleetdeckError):
    """A workload proof was presented and is not acceptable; the message names proof and rule."""

    outcome = Outcome.DENIED
    http_status = 401

    def __init__(self, source: WorkloadProof | Literal["conflict"], reason: str) -> None:
        super().__init__(f"workload identity ({source}) refused: {reason}")
        self.source = source
        self.reason = reason


def _spiffe_id(value: Any) -> SpiffeId:
    return value if isinstance(value, SpiffeId) else SpiffeId.parse(value)


SpiffeIdField = Annotated[
    SpiffeId,
    BeforeValidator(_spiffe_id),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^spiffe://"}),
]


class WorkloadSettings(BaseModel):
    """How this server recognises calling workloads (``[workload]``, env ``FLEETDECK_WORKLOAD__*``)."""

    model_config = ConfigDict(extra="forbid")

    own_id: SpiffeIdField | None = Field(
        default=None, description="This server's own SPIFFE ID; an XFCC element's By= must equal it."
    )
    trust_domains: list[str] = Field(
        default_factory=list, description="Trust domains whose workloads are accepted (empty: none)."
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Addresses/CIDRs of the sidecars allowed to set x-forwarded-client-cert (empty: never).",
    )
    xfcc_max_bytes: int = Field(default=65_536, ge=1024, description="Longest XFCC header accepted.")
    jwt_svid_header: str = Field(
        default=DEFAULT_JWT_SVID_HEADER, description="Request header carrying a JWT-SVID (the bare token)."
    )
    jwt_svid_audience: str | None = Field(
        default=None, description="The aud value this server identifies with; unset disables JWT-SVIDs."
    )
    jwt_svid_algorithms: list[JwtSvidAlgorithm] = Field(default_factory=lambda: list(_ALL_ALGORITHMS))
    jwt_svid_bundle_paths: dict[str, Path] = Field(
        default_factory=dict, description="Trust domain -> SPIFFE bundle or JWKS file with JWT-SVID keys."
    )
    jwt_svid_jwks_urls: dict[str, str] = Field(
        default_factory=dict, description="Trust domain -> HTTPS URL of its JWT-SVID keys (JWKS)."
    )
    jwt_svid_leeway_s: int = Field(default=30, ge=0, le=300)
    jwt_svid_max_ttl_s: int = Field(
        default=86_400, ge=60, description="Refuse JWT-SVIDs whose exp is further away than this."
    )
    jwt_svid_max_bytes: int = Field(default=8_192, ge=512, le=65_536)

    @field_validator("trust_domains")
    @classmethod
    def _valid_trust_domains(cls, value: list[str]) -> list[str]:
        return [parse_trust_domain(name) for name in value]

    @field_validator("jwt_svid_header")
    @classmethod
    def _valid_header(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError("must be a lowercase header name")
        if value in _RESERVED_HEADERS:
            raise ValueError(f"{value} is reserved for another purpose")
        return value

    @field_validator("jwt_svid_jwks_urls")
    @classmethod
    def _https_only(cls, value: dict[str, str]) -> dict[str, str]:
        for url in value.values():
            parts = urlsplit(url)
            loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
            if not ((parts.scheme == "https" and parts.hostname) or loopback):
                raise ValueError("JWKS URLs must use https:// (plain http only on loopback)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.trusted_proxies and self.own_id is None:
            raise ValueError(
                "own_id is required when trusted_proxies is set (XFCC By= is checked against it)"
            )
        for name in (*self.jwt_svid_bundle_paths, *self.jwt_svid_jwks_urls):
            if parse_trust_domain(name) not in self.trust_domains:
                raise ValueError(f"JWT-SVID keys configured for {name}, which is not in trust_domains")
        both = set(self.jwt_svid_bundle_paths) & set(self.jwt_svid_jwks_urls)
        if both:
            raise ValueError(f"both a bundle path and a JWKS URL for: {', '.join(sorted(both))}")
        return self


@dataclass(frozen=True, slots=True)
class WorkloadIdentity:
    """A proven workload: its SPIFFE ID and the proof that established it."""

    spiffe_id: SpiffeId
    proven_by: WorkloadProof

    def as_principal_workload(self) -> Workload:
        """The :class:`~fleetdeck.auth.principal.Workload` that policies see."""
        return Workload(spiffe_id=str(self.spiffe_id), proven_by=self.proven_by)


def _accept(text: str, source: WorkloadProof, settings: WorkloadSettings) -> SpiffeId:
    """``text`` as a workload SPIFFE ID in an allowed trust domain, or :class:`WorkloadAuthError`."""
    try:
        spiffe_id = SpiffeId.parse(text)
    except InvalidSpiffeIdError as exc:
        raise WorkloadAuthError(source, str(exc)) from exc
    if spiffe_id.is_trust_domain_id:
        raise WorkloadAuthError(source, "SPIFFE ID names a trust domain, not a workload")
    if spiffe_id.trust_domain not in settings.trust_domains:
        raise WorkloadAuthError(source, f"trust domain {spiffe_id.trust_domain} is not allowed")
    return spiffe_id


# --- x-forwarded-client-cert -------------------------------------------------------------------


class XfccSyntaxError(ValueError):
    """The XFCC header does not follow Envoy's format."""


XfccElement = tuple[tuple[str, str], ...]
"""One proxy's element: ``(key, value)`` pairs in order, keys lowercased, values unquoted."""


def parse_xfcc(header: str) -> list[XfccElement]:
    """Split an XFCC header into elements, exactly as Envoy writes it, or raise :class:`XfccSyntaxError`.

    Elements are separated by ``,`` and pairs by ``;`` outside double quotes; each pair is
    ``Key=Value``; a quoted value may contain ``,;=`` and ``\\"`` for a quote. Keys are
    case-insensitive. Single-valued keys (By, Hash, Cert, Chain, Subject) may appear once per element.
    """
    elements: list[XfccElement] = []
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(header)
    while True:
        while i < n and header[i] in _OWS:
            i += 1
        eq = header.find("=", i)
        key = header[i:eq] if eq >= 0 else ""
        if not key.isascii() or not key.isalpha():
            raise XfccSyntaxError("expected Key=Value")
        i = eq + 1
        if i < n and header[i] == '"':
            value, i = _quoted(header, i + 1)
            while i < n and header[i] in _OWS:
                i += 1
        else:
            end = i
            while end < n and header[end] not in ";,":
                if header[end] in '"=':
                    raise XfccSyntaxError(f"unquoted {header[end]!r} in the value of {key[:32]}")
                end += 1
            value, i = header[i:end].rstrip(_OWS), end
        key = key.lower()
        if key in _XFCC_SINGLE_KEYS and any(k == key for k, _ in pairs):
            raise XfccSyntaxError(f"{key} appears twice in one element")
        pairs.append((key, value))
        if i >= n:
            elements.append(tuple(pairs))
            return elements
        if header[i] == ",":
            elements.append(tuple(pairs))
            pairs = []
        elif header[i] != ";":
            raise XfccSyntaxError("unexpected character after a quoted value")
        i += 1


def _quoted(header: str, i: int) -> tuple[str, int]:
    """The unescaped quoted value starting after its opening quote, and the index after the closing one."""
    out: list[str] = []
    n = len(header)
    while i < n:
        char = header[i]
        if char == "\\" and i + 1 < n and header[i + 1] == '"':
            out.append('"')
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise XfccSyntaxError("unterminated quoted value")


def is_trusted_proxy(peer_ip: str | None, settings: WorkloadSettings) -> bool:
    """Whether the TCP peer ``peer_ip`` is one of the sidecars allowed to set XFCC."""
    if not peer_ip or not settings.trusted_proxies:
        return False
    try:
        address = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    candidates = (address,) if mapped is None else (address, mapped)
    return any(a in network for a in candidates for network in settings.trusted_proxies)


def workload_from_xfcc(
    header_value: str | None, peer_ip: str | None, settings: WorkloadSettings
) -> SpiffeId | None:
    """The caller's SPIFFE ID from the sidecar's XFCC header, or ``None`` if there is none to trust.

    ``None`` when the header is absent, and when the peer is not a trusted proxy: then the header
    is ignored entirely (a warning is logged). From a trusted proxy, the last element must have
    ``By=`` equal to ``own_id`` and exactly one ``URI=``, a SPIFFE ID in an allowed trust domain.
    """
    if header_value is None:
        return None
    if not is_trusted_proxy(peer_ip, settings):
        logger.warning(
            "x-forwarded-client-cert ignored: peer is not a trusted proxy", extra={"peer": peer_ip}
        )
        return None
    if len(header_value) > settings.xfcc_max_bytes:
        raise WorkloadAuthError("xfcc", f"header is longer than {settings.xfcc_max_bytes} bytes")
    try:
        last = parse_xfcc(header_value)[-1]
    except XfccSyntaxError as exc:
        raise WorkloadAuthError("xfcc", f"malformed header: {exc}") from exc
    by = [value for key, value in last if key == "by"]
    if not by:
        raise WorkloadAuthError("xfcc", "last element has no By=")
    if settings.own_id is None or by[0] != str(settings.own_id):
        raise WorkloadAuthError("xfcc", "last element's By= is not this workload's SPIFFE ID")
    uris = [value for key, value in last if key == "uri"]
    if not uris:
        raise WorkloadAuthError("xfcc", "last element has no URI=")
    if len(uris) > 1:
        raise WorkloadAuthError("xfcc", "last element has more than one URI=")
    return _accept(uris[0], "xfcc", settings)


# --- JWT-SVID ----------------------------------------------------------------------------------


class JwtSvidKeySource(Protocol):
    """Where JWT-SVID verification keys come from: one trust domain's keys at a time."""

    def jwt_svid_keys(self, trust_domain: str) -> Mapping[str, SigningKey]:
        """The public keys of ``trust_domain`` by ``kid`` (empty when it has none)."""


class JwtSvidBundles:
    """Static JWT-SVID keys per trust domain, from SPIFFE bundles or plain JWKS documents.

    SPIFFE bundle entries marked ``"use": "x509-svid"`` are skipped; the rest go through
    :func:`fleetdeck.auth.jwks.parse_jwks` (asymmetric public keys with a ``kid`` only).
    """

    def __init__(self, keys: Mapping[str, Mapping[str, SigningKey]]) -> None:
        self._keys = {parse_trust_domain(td): dict(by_kid) for td, by_kid in keys.items()}

    @classmethod
    def from_documents(cls, documents: Mapping[str, Any]) -> JwtSvidBundles:
        """Keys from one bundle / JWKS document (parsed JSON) per trust domain."""
        keys: dict[str, Mapping[str, SigningKey]] = {}
        for trust_domain, document in documents.items():
            entries = document.get("keys") if isinstance(document, Mapping) else None
            jwks = {"keys": [_as_sig(e) for e in entries or () if _jwt_svid_entry(e)]}
            try:
                keys[trust_domain] = parse_jwks(jwks)
            except ValueError as exc:
                raise ConfigError(f"JWT-SVID bundle for {trust_domain}: {exc}") from exc
        return cls(keys)

    @classmethod
    def from_files(cls, paths: Mapping[str, Path]) -> JwtSvidBundles:
        """Read one bundle file per trust domain (``settings.jwt_svid_bundle_paths``)."""
        documents: dict[str, Any] = {}
        for trust_domain, path in paths.items():
            try:
                documents[trust_domain] = strict_json(path.read_bytes())
            except OSError as exc:
                raise ConfigError(f"cannot read the JWT-SVID bundle {path}: {exc.strerror}") from exc
            except ValueError as exc:
                raise ConfigError(f"JWT-SVID bundle {path} is not strict JSON: {exc}") from exc
        return cls.from_documents(documents)

    def jwt_svid_keys(self, trust_domain: str) -> Mapping[str, SigningKey]:
        return self._keys.get(trust_domain, {})


def _jwt_svid_entry(entry: Any) -> bool:
    return not isinstance(entry, Mapping) or entry.get("use") in (None, "sig", "jwt-svid")


def _as_sig(entry: Any) -> Any:
    """A SPIFFE bundle's ``use: jwt-svid`` key as the plain signature key it is."""
    return {**entry, "use": "sig"} if isinstance(entry, Mapping) and "use" in entry else entry


def _decoded(segment: str, what: str) -> bytes:
    try:
        raw = base64url_decode(segment) if segment else b""
    except ValueError:
        raw = b""
    if not raw:
        raise WorkloadAuthError("jwt-svid", f"{what} is not base64url")
    return raw


def _segment(segment: str, what: str) -> dict[str, Any]:
    raw = _decoded(segment, what)
    try:
        value = strict_json(raw)
    except ValueError as exc:
        raise WorkloadAuthError("jwt-svid", f"{what} is not strict JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise WorkloadAuthError("jwt-svid", f"{what} is not a JSON object")
    return value


def _numeric_date(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise WorkloadAuthError("jwt-svid", f"{name} must be an integer NumericDate")
    return value


def workload_from_jwt_svid(token: str, settings: WorkloadSettings, keys: JwtSvidKeySource | None) -> SpiffeId:
    """The SPIFFE ID a JWT-SVID proves, or :class:`WorkloadAuthError` naming the rule it broke.

    The token is size-capped and parsed strictly (duplicate JSON keys, non-integer dates and
    header fields other than alg/kid/typ are refused) and its claims checked before the signature is
    verified with the keys of the ``sub``'s trust domain only (each key's bound checks, as for
    end-user tokens: :mod:`fleetdeck.auth.signature`).
    """
    if settings.jwt_svid_audience is None:
        raise WorkloadAuthError("jwt-svid", "JWT-SVIDs are not accepted here (no jwt_svid_audience)")
    if len(token) > settings.jwt_svid_max_bytes:
        raise WorkloadAuthError("jwt-svid", f"token is longer than {settings.jwt_svid_max_bytes} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise WorkloadAuthError("jwt-svid", "not a JWS compact serialization")
    header, claims = _segment(parts[0], "header"), _segment(parts[1], "payload")
    if not _JWT_SVID_HEADER_FIELDS.issuperset(header):
        raise WorkloadAuthError("jwt-svid", "header fields other than alg, kid and typ are not allowed")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in settings.jwt_svid_algorithms:
        raise WorkloadAuthError("jwt-svid", "alg is not an allowed asymmetric algorithm")
    if header.get("typ", "JWT") not in ("JWT", "JOSE"):
        raise WorkloadAuthError("jwt-svid", "typ must be JWT or JOSE")
    if kid is not None and not isinstance(kid, str):
        raise WorkloadAuthError("jwt-svid", "kid must be a string")
    _check_claims(claims, settings)
    spiffe_id = _accept(claims["sub"], "jwt-svid", settings)
    by_kid = keys.jwt_svid_keys(spiffe_id.trust_domain) if keys is not None else {}
    chosen = list(by_kid.values()) if kid is None else [by_kid[kid]] if kid in by_kid else []
    candidates = [key for key in chosen if key.accepts(alg)]
    if not candidates:
        raise WorkloadAuthError("jwt-svid", f"no usable {alg} key for trust domain {spiffe_id.trust_domain}")
    signing_input, signature = token.rpartition(".")[0].encode("ascii"), _decoded(parts[2], "signature")
    for key in candidates:
        try:
            key.checks[alg](signing_input, signature)
        except InvalidSignature:
            continue
        return spiffe_id
    raise WorkloadAuthError(
        "jwt-svid", f"signature does not verify with the keys of {spiffe_id.trust_domain}"
    )


def _check_claims(claims: Mapping[str, Any], settings: WorkloadSettings) -> None:
    if not isinstance(claims.get("sub"), str):
        raise WorkloadAuthError("jwt-svid", "sub is required")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not audiences or not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise WorkloadAuthError("jwt-svid", "aud is required (a string or a list of strings)")
    if settings.jwt_svid_audience not in audiences:
        raise WorkloadAuthError("jwt-svid", "aud does not include this server")
    exp = _numeric_date(claims, "exp")
    nbf = _numeric_date(claims, "nbf")
    iat = _numeric_date(claims, "iat")
    if exp is None:
        raise WorkloadAuthError("jwt-svid", "exp is required")
    now, leeway = int(time.time()), settings.jwt_svid_leeway_s
    if exp <= now - leeway:
        raise WorkloadAuthError("jwt-svid", "token has expired")
    if exp > now + settings.jwt_svid_max_ttl_s + leeway:
        raise WorkloadAuthError("jwt-svid", f"exp is more than {settings.jwt_svid_max_ttl_s}s away")
    if nbf is not None and nbf > now + leeway:
        raise WorkloadAuthError("jwt-svid", "token is not yet valid (nbf)")
    if iat is not None and iat > now + leeway:
        raise WorkloadAuthError("jwt-svid", "token was issued in the future (iat)")


# --- TLS peer certificate ----------------------------------------------------------------------


def workload_from_peer_certificate(
    der: bytes, settings: WorkloadSettings, *, now: datetime | None = None
) -> SpiffeId:
    """The SPIFFE ID of a TLS client certificate the TLS stack has already verified.

    Only the identity is checked here (the chain was verified in the handshake): not a CA
    (basicConstraints cA, keyCertSign/cRLSign), within its validity period, exactly one URI SAN,
    a SPIFFE ID of a workload in an allowed trust domain.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        constraints = _extension(cert, x509.BasicConstraints)
        usage = _extension(cert, x509.KeyUsage)
        san = _extension(cert, x509.SubjectAlternativeName)
        uris = san.get_values_for_type(x509.UniformResourceIdentifier) if san else []
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise WorkloadAuthError("mtls", "peer certificate cannot be parsed") from exc
    if constraints is not None and constraints.ca:
        raise WorkloadAuthError("mtls", "peer certificate is a CA certificate")
    if usage is not None and (usage.key_cert_sign or usage.crl_sign):
        raise WorkloadAuthError("mtls", "peer certificate may sign certificates (keyCertSign/cRLSign)")
    moment = now or datetime.now(UTC)
    if not not_before <= moment <= not_after:
        raise WorkloadAuthError("mtls", "peer certificate is outside its validity period")
    if not uris:
        raise WorkloadAuthError("mtls", "peer certificate has no URI SAN")
    if len(uris) > 1:
        raise WorkloadAuthError("mtls", "peer certificate has more than one URI SAN")
    return _accept(uris[0], "mtls", settings)


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def peer_certificate_from_scope(scope: Mapping[str, Any]) -> bytes | None:
    """The verified client certificate (DER) from the ASGI TLS extension, if the server provides it.

    Reads ``scope["extensions"]["tls"]["client_cert_chain"][0]`` (PEM) and ignores it when
    ``client_cert_error`` is set. uvicorn (0.54) does not populate this extension, so under uvicorn
    this returns ``None``; the server must also require and verify client certificates
    (``ssl.CERT_REQUIRED`` with the trust bundle as CA file), since the extension does not say
    whether verification happened.
    """
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    if not isinstance(tls, Mapping) or tls.get("client_cert_error") is not None:
        return None
    chain = list(tls.get("client_cert_chain") or ())
    if not chain or not isinstance(chain[0], str):
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(chain[0])
    except ValueError as exc:
        raise WorkloadAuthError("mtls", "peer certificate in the TLS extension is not PEM") from exc


# --- all proofs together -----------------------------------------------------------------------


def _proof_headers(headers: Iterable[tuple[bytes, bytes]], svid_header: str) -> tuple[list[str], list[str]]:
    """The XFCC and JWT-SVID header values, in order, from one pass over the raw headers."""
    xfcc_name, svid_name = XFCC_HEADER.encode("latin-1"), svid_header.lower().encode("latin-1")
    xfcc: list[str] = []
    svids: list[str] = []
    for key, value in headers:
        name = key.lower()
        if name == xfcc_name:
            xfcc.append(value.decode("latin-1"))
        elif name == svid_name:
            svids.append(value.decode("latin-1"))
    return xfcc, svids


def resolve_workload(
    headers: Iterable[tuple[bytes, bytes]],
    peer_ip: str | None,
    peer_cert_der: bytes | None,
    settings: WorkloadSettings,
    jwt_svid_keys: JwtSvidKeySource | None,
) -> WorkloadIdentity | None:
    """The calling workload from every proof present, or ``None`` when none is.

    ``headers`` are the raw ASGI headers (repeated XFCC lines are joined in order, as HTTP list
    headers are); ``peer_ip`` is the TCP peer address, not one rewritten from X-Forwarded-For.
    Precedence: mtls > xfcc > jwt-svid; every present proof must be valid and name the same
    workload, otherwise :class:`WorkloadAuthError`.
    """
    xfcc, svids = _proof_headers(headers, settings.jwt_svid_header)
    found: list[WorkloadIdentity] = []
    if peer_cert_der is not None:
        found.append(WorkloadIdentity(workload_from_peer_certificate(peer_cert_der, settings), "mtls"))
    from_xfcc = workload_from_xfcc(",".join(xfcc), peer_ip, settings) if xfcc else None
    if from_xfcc is not None:
        found.append(WorkloadIdentity(from_xfcc, "xfcc"))
    if len(svids) > 1:
        raise WorkloadAuthError("jwt-svid", f"more than one {settings.jwt_svid_header} header")
    if svids:
        found.append(
            WorkloadIdentity(workload_from_jwt_svid(svids[0].strip(), settings, jwt_svid_keys), "jwt-svid")
        )
    if not found:
        return None
    chosen = found[0]
    for other in found[1:]:
        if other.spiffe_id != chosen.spiffe_id:
            proofs = f"{chosen.proven_by} proves {chosen.spiffe_id}, {other.proven_by} {other.spiffe_id}"
            raise WorkloadAuthError("conflict", f"the proofs disagree: {proofs}")
    return chosen
