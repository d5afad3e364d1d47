"""Serve HTTPS with required client certificates, and hand each verified peer certificate to the app.

uvicorn verifies client certificates (``ssl_cert_reqs=CERT_REQUIRED`` against ``tls_client_ca``)
but does not fill the ASGI TLS extension, so the workload layer could not see who connected.
:class:`PeerCertificateProtocol` reads the certificate the TLS handshake verified and puts it, as
PEM, into ``scope["extensions"]["tls"]["client_cert_chain"]`` of every request on that connection,
where :func:`fleetdeck.auth.workload.peer_certificate_from_scope` finds it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from fleetdeck.settings import HttpSettings


def with_peer_certificate(app: ASGIApp, pem: str) -> ASGIApp:
    """``app`` with the connection's verified client certificate in every HTTP scope."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [pem], "client_cert_error": None}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return wrapped


class PeerCertificateProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, passing the verified peer certificate to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
        if der:
            self.app = with_peer_certificate(self.app, ssl.DER_cert_to_PEM_cert(der))


def uvicorn_tls_options(http: HttpSettings) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments for ``http``'s TLS settings (none when it serves plain HTTP)."""
    if http.tls_certfile is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(http.tls_certfile), "ssl_keyfile": str(http.tls_keyfile)}
    if http.tls_client_ca is not None:
        options |= {
            "ssl_ca_certs": str(http.tls_client_ca),
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "http": PeerCertificateProtocol,
        }
    return options
