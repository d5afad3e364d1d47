"""JWT-SVID verification keys fetched from each trust domain's JWKS URL and kept fresh in the background.

The workload resolver runs synchronously inside a request, so it never fetches: it reads the keys a
background task (:meth:`JwtSvidJwks.run`, started by the server for its lifetime) fetched at start
and refetches every half TTL. A JWKS endpoint that is down keeps its last keys serving for
``max_stale_s`` (see :class:`fleetdeck.auth.jwks.JwksCache`); before the first successful fetch a
trust domain has no keys, so its JWT-SVIDs are refused — closed, never open.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import anyio

from fleetdeck.auth.jwks import JwksCache, SigningKey
from fleetdeck.auth.spiffe import parse_trust_domain

if TYPE_CHECKING:
    from fleetdeck.auth.workload import JwtSvidKeySource

logger = logging.getLogger(__name__)


class JwtSvidJwks:
    """A :class:`~fleetdeck.auth.workload.JwtSvidKeySource` over one JWKS URL per trust domain.

    ``files`` serves the trust domains whose keys come from bundle files instead.
    """

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        files: JwtSvidKeySource | None = None,
        ttl_s: float = 300.0,
        timeout_s: float = 3.0,
    ) -> None:
        self.ttl_s = ttl_s
        self._files = files
        self._caches = {
            parse_trust_domain(domain): JwksCache(url, ttl_s=ttl_s, cooldown_s=0.0, timeout_s=timeout_s)
            for domain, url in urls.items()
        }

    def jwt_svid_keys(self, trust_domain: str) -> Mapping[str, SigningKey]:
        cache = self._caches.get(trust_domain)
        if cache is not None:
            return cache.usable_keys()
        return self._files.jwt_svid_keys(trust_domain) if self._files is not None else {}

    async def refresh(self) -> None:
        """Fetch every trust domain's keys once (failures are logged and keep the last keys)."""
        for domain, cache in self._caches.items():
            await cache.refresh()
            if cache.last_error:
                logger.warning("JWT-SVID keys of %s not refreshed: %s", domain, cache.last_error)

    async def run(self) -> None:
        """Refresh now and then every half TTL, until cancelled."""
        try:
            while True:
                await self.refresh()
                await anyio.sleep(self.ttl_s / 2)
        finally:
            with anyio.CancelScope(shield=True):
                for cache in self._caches.values():
                    await cache.aclose()
