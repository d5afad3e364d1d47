"""JWS signature checks (RFC 7518) straight on ``cryptography``, one function per algorithm family.

The verifier has already parsed and checked the header and payload, so it needs only the signature
check itself — not a second full decode (PyJWT's ``decode`` re-validates and re-parses everything in
Python, which cost more than the signature). Each check raises :class:`InvalidSignature` on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fleetdeck.auth.jwks import PublicKey

__all__ = ["InvalidSignature", "verify_signature"]

_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def _rsa(pss: bool, hash_type: type[hashes.HashAlgorithm]) -> Callable[[PublicKey, bytes, bytes], None]:
    algorithm = hash_type()
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=algorithm.digest_size)
        if pss
        else padding.PKCS1v15()
    )

    def check(key: PublicKey, message: bytes, signature: bytes) -> None:
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature("not an RSA key")
        key.verify(signature, message, pad, algorithm)

    return check


def _ecdsa(
    hash_type: type[hashes.HashAlgorithm], curve_bits: int
) -> Callable[[PublicKey, bytes, bytes], None]:
    """ECDSA on the curve of ``curve_bits`` (P-256, P-384 or P-521), as RFC 7518 pairs them with hashes."""
    scheme = ec.ECDSA(hash_type())
    size = (curve_bits + 7) // 8

    def check(key: PublicKey, message: bytes, signature: bytes) -> None:
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.key_size != curve_bits:
            raise InvalidSignature("not an EC key of the algorithm's curve")
        if len(signature) != 2 * size:  # JWS carries R || S, each exactly the curve's size
            raise InvalidSignature("wrong ECDSA signature length")
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), message, scheme)

    return check


def _eddsa(key: PublicKey, message: bytes, signature: bytes) -> None:
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InvalidSignature("not an Ed25519 key")
    key.verify(signature, message)


_CHECKS: Final[dict[str, Callable[[PublicKey, bytes, bytes], None]]] = {
    **{f"RS{bits}": _rsa(False, hash_type) for bits, hash_type in _HASHES.items()},
    **{f"PS{bits}": _rsa(True, hash_type) for bits, hash_type in _HASHES.items()},
    "ES256": _ecdsa(hashes.SHA256, 256),
    "ES384": _ecdsa(hashes.SHA384, 384),
    "ES512": _ecdsa(hashes.SHA512, 521),
    "EdDSA": _eddsa,
}


def verify_signature(alg: str, key: PublicKey, message: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``message`` for ``alg``; raises :class:`InvalidSignature` if it fails."""
    check = _CHECKS.get(alg)
    if check is None:
        raise InvalidSignature(f"unsupported algorithm {alg[:16]!r}")
    check(key, message, signature)
