"""JWS signature checks (RFC 7518) straight on ``cryptography``, bound to a key when the JWKS is loaded.

The verifier has already parsed and checked the header and payload, so it needs only the signature
check itself — not a second full decode (PyJWT's ``decode`` re-validates and re-parses everything in
Python, which cost more than the signature). :func:`checks_for` pairs a public key with the
algorithms it may verify, once per key: the key's type and curve are checked there, not per token.
A check raises :class:`InvalidSignature` on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = ["Check", "InvalidSignature", "PublicKey", "checks_for"]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Check = Callable[[bytes, bytes], None]
"""``check(message, signature)``: returns, or raises :class:`InvalidSignature`."""

_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_EC_ALGORITHMS: Final[dict[str, tuple[str, type[hashes.HashAlgorithm]]]] = {
    "secp256r1": ("ES256", hashes.SHA256),
    "secp384r1": ("ES384", hashes.SHA384),
    "secp521r1": ("ES512", hashes.SHA512),
}


def _rsa(key: rsa.RSAPublicKey, pss: bool, hash_type: type[hashes.HashAlgorithm]) -> Check:
    algorithm = hash_type()
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=algorithm.digest_size)
        if pss
        else padding.PKCS1v15()
    )

    def check(message: bytes, signature: bytes) -> None:
        key.verify(signature, message, pad, algorithm)

    return check


def _ecdsa(key: ec.EllipticCurvePublicKey, hash_type: type[hashes.HashAlgorithm]) -> Check:
    """ECDSA on the key's curve with the hash RFC 7518 pairs it with; JWS carries R || S."""
    scheme = ec.ECDSA(hash_type())
    size = (key.key_size + 7) // 8
    from_bytes = int.from_bytes

    def check(message: bytes, signature: bytes) -> None:
        if len(signature) != 2 * size:  # R and S, each exactly the curve's size
            raise InvalidSignature("wrong ECDSA signature length")
        r, s = from_bytes(signature[:size], "big"), from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), message, scheme)

    return check


def _eddsa(key: ed25519.Ed25519PublicKey) -> Check:
    def check(message: bytes, signature: bytes) -> None:
        key.verify(signature, message)

    return check


def checks_for(key: PublicKey, pinned: str | None = None) -> dict[str, Check]:
    """The JWS algorithms ``key`` may verify, each with its check bound to the key.

    RSA keys verify ``RS*`` and ``PS*``; an EC key the one ``ES*`` of its curve; an Ed25519 key
    ``EdDSA``. ``pinned`` (the JWK's own ``alg``) narrows that to one algorithm — or to none when the
    key cannot verify it.
    """
    checks: dict[str, Check]
    if isinstance(key, rsa.RSAPublicKey):
        checks = {f"RS{bits}": _rsa(key, False, hash_type) for bits, hash_type in _HASHES.items()}
        checks |= {f"PS{bits}": _rsa(key, True, hash_type) for bits, hash_type in _HASHES.items()}
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        name, hash_type = _EC_ALGORITHMS[key.curve.name]
        checks = {name: _ecdsa(key, hash_type)}
    elif isinstance(key, ed25519.Ed25519PublicKey):
        checks = {"EdDSA": _eddsa(key)}
    else:
        checks = {}
    if pinned is not None:
        return {pinned: checks[pinned]} if pinned in checks else {}
    return checks
