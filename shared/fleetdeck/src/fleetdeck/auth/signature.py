"""JWS signature checks (RFC 7518) on Google Tink (BoringSSL), bound to a key when the JWKS is loaded.

The verifier has already parsed and checked the header and payload, so it needs only the signature
check itself. :func:`checks_for` pairs a public key with the algorithms it may verify, once per key:
the key's type and curve are checked there, and each check is a Tink ``PublicKeyVerify`` primitive
built for exactly that key, algorithm and hash — nothing about the key is decided per token.

Why Tink rather than ``cryptography`` (which still parses the JWKs): side by side in
``bench/bench_jwt.py``, the same check took about a fifth less time for RSA-2048 and P-256 and half
for Ed25519 than through ``cryptography``'s OpenSSL 4 (BENCHMARKS.md). Tink also takes JWS's
``R || S`` ECDSA signatures as they are (no DER re-encoding) and refuses any of the wrong length.

A check raises :class:`InvalidSignature` on failure. Tink refuses RSA keys whose public exponent is
below 65537; :mod:`fleetdeck.auth.jwks` skips such keys, saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import tink
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tink import signature as tink_signature
from tink.proto import common_pb2, ecdsa_pb2, ed25519_pb2, rsa_ssa_pkcs1_pb2, rsa_ssa_pss_pb2, tink_pb2

__all__ = ["Check", "InvalidSignature", "PublicKey", "checks_for"]

tink_signature.register()

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Check = Callable[[bytes, bytes], None]
"""``check(message, signature)``: returns, or raises :class:`InvalidSignature`."""


class InvalidSignature(Exception):
    """The signature does not verify with this key and algorithm."""


_TYPE_URL: Final = "type.googleapis.com/google.crypto.tink."
_HASHES: Final[dict[str, Any]] = {
    "256": common_pb2.SHA256,
    "384": common_pb2.SHA384,
    "512": common_pb2.SHA512,
}
_EC_ALGORITHMS: Final[dict[str, tuple[str, Any, Any]]] = {
    "secp256r1": ("ES256", common_pb2.NIST_P256, common_pb2.SHA256),
    "secp384r1": ("ES384", common_pb2.NIST_P384, common_pb2.SHA384),
    "secp521r1": ("ES512", common_pb2.NIST_P521, common_pb2.SHA512),
}


def _bound(type_name: str, public_key: Any) -> Check:
    """A check by Tink's verify primitive for one public key.

    The primitive comes straight from Tink's registry: a single key needs no keyset, whose wrapper
    looks up key-id prefixes on every call (1.2 µs more per P-256 check, measured side by side).
    """
    key_data = tink_pb2.KeyData(
        type_url=_TYPE_URL + type_name,
        value=public_key.SerializeToString(),
        key_material_type=tink_pb2.KeyData.ASYMMETRIC_PUBLIC,
    )
    try:
        verify = tink.core.Registry.primitive(key_data, tink_signature.PublicKeyVerify).verify
    except tink.TinkError as exc:
        raise ValueError(f"key refused: {exc}") from None
    tink_error = tink.TinkError

    def check(message: bytes, signature: bytes) -> None:
        try:
            verify(signature, message)
        except tink_error:
            raise InvalidSignature from None

    return check


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _rsa(key: rsa.RSAPublicKey) -> dict[str, Check]:
    numbers = key.public_numbers()
    n, e = _unsigned(numbers.n), _unsigned(numbers.e)
    checks: dict[str, Check] = {}
    for bits, hash_type in _HASHES.items():
        pkcs1 = rsa_ssa_pkcs1_pb2.RsaSsaPkcs1Params(hash_type=hash_type)
        checks[f"RS{bits}"] = _bound(
            "RsaSsaPkcs1PublicKey", rsa_ssa_pkcs1_pb2.RsaSsaPkcs1PublicKey(params=pkcs1, n=n, e=e)
        )
        pss = rsa_ssa_pss_pb2.RsaSsaPssParams(
            sig_hash=hash_type, mgf1_hash=hash_type, salt_length=int(bits) // 8
        )  # RFC 7518 §3.5: the salt is as long as the hash
        checks[f"PS{bits}"] = _bound(
            "RsaSsaPssPublicKey", rsa_ssa_pss_pb2.RsaSsaPssPublicKey(params=pss, n=n, e=e)
        )
    return checks


def _ecdsa(key: ec.EllipticCurvePublicKey) -> dict[str, Check]:
    """ECDSA on the key's curve with the hash RFC 7518 pairs it with; JWS carries R || S (IEEE P1363)."""
    name, curve, hash_type = _EC_ALGORITHMS[key.curve.name]
    size = (key.key_size + 7) // 8
    numbers = key.public_numbers()
    params = ecdsa_pb2.EcdsaParams(hash_type=hash_type, curve=curve, encoding=ecdsa_pb2.IEEE_P1363)
    public = ecdsa_pb2.EcdsaPublicKey(
        params=params, x=numbers.x.to_bytes(size, "big"), y=numbers.y.to_bytes(size, "big")
    )
    return {name: _bound("EcdsaPublicKey", public)}


def _eddsa(key: ed25519.Ed25519PublicKey) -> dict[str, Check]:
    public = ed25519_pb2.Ed25519PublicKey(key_value=key.public_bytes_raw())
    return {"EdDSA": _bound("Ed25519PublicKey", public)}


def checks_for(key: PublicKey, pinned: str | None = None) -> dict[str, Check]:
    """The JWS algorithms ``key`` may verify, each with its check bound to the key.

    RSA keys verify ``RS*`` and ``PS*``; an EC key the one ``ES*`` of its curve; an Ed25519 key
    ``EdDSA``. ``pinned`` (the JWK's own ``alg``) narrows that to one algorithm — or to none when the
    key cannot verify it. Raises ValueError for a key Tink refuses (e.g. an RSA exponent below 65537).
    """
    checks: dict[str, Check]
    if isinstance(key, rsa.RSAPublicKey):
        checks = _rsa(key)
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        checks = _ecdsa(key)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        checks = _eddsa(key)
    else:
        checks = {}
    if pinned is not None:
        return {pinned: checks[pinned]} if pinned in checks else {}
    return checks
