"""The registry's live state: the current catalog and index, load problems, latest probe results.

Readers take ``state.current`` (one attribute read) and use that snapshot for the whole request;
a reload builds a new :class:`Snapshot` off the event loop and swaps it in, so no request waits
for or sees half a load. A failed load keeps the last good snapshot and marks health degraded.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetdeck.auth.principal import Principal
from fleetdeck_registry.access import principal_key, server_decision
from fleetdeck_registry.catalog import EMPTY, Catalog, ServerEntry
from fleetdeck_registry.history import ProbeResult
from fleetdeck_registry.loader import Loader, fingerprint
from fleetdeck_registry.search import SearchIndex

logger = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
_VISIBLE_CACHE = 256


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A catalog with its search index and the sorted names the paged API walks."""

    catalog: Catalog
    index: SearchIndex
    names: tuple[str, ...]


class RegistryState:
    """Current snapshot, load health, and probe status; the one object every view reads."""

    def __init__(self, root: Path, *, max_servers: int = 10_000, clock: Clock = utc_now) -> None:
        self.root = root
        self.clock = clock
        self._loader = Loader(root, max_servers=max_servers)
        self.current = Snapshot(EMPTY, SearchIndex(EMPTY), ())
        self.problems: tuple[str, ...] = ()
        self.loaded_once = False
        self._fingerprint: tuple[object, ...] | None = None
        self._status: dict[str, ProbeResult] = {}
        self._drift_version = 0
        self._visible: OrderedDict[tuple[object, ...], frozenset[str]] = OrderedDict()

    # -- loading -----------------------------------------------------------------------------------

    def needs_reload(self) -> bool:
        """Whether the folder changed, or the day did (reviews expire at midnight UTC)."""
        return (
            fingerprint(self.root) != self._fingerprint or self.clock().date() != self.current.catalog.as_of
        )

    def reload(self) -> bool:
        """Load the folder (blocking; run it in a worker thread). True if a new catalog was swapped in."""
        generation = self.current.catalog.generation + 1
        with _collector_paused():
            result = self._loader.load(generation, self.clock())
        self._fingerprint = result.fingerprint
        if result.catalog is None:
            if result.problems != self.problems:
                for problem in result.problems[:20]:
                    logger.warning("manifest load failed: %s", problem)
            self.problems = result.problems
            return False
        catalog = result.catalog
        with _collector_paused():
            index = SearchIndex(catalog)
        self.current = Snapshot(catalog, index, tuple(entry.name for entry in catalog.entries))
        self.problems = ()
        self.loaded_once = True
        self._visible.clear()
        logger.info("catalog loaded", extra=catalog.summary())
        return True

    @property
    def degraded(self) -> bool:
        """A load failed: the last good catalog (or none) is being served."""
        return bool(self.problems) or not self.loaded_once

    def health(self) -> dict[str, object]:
        catalog = self.current.catalog
        return {
            "status": "degraded" if self.degraded else "ok",
            "catalog": catalog.summary(),
            "loaded_at": catalog.loaded_at.isoformat() if self.loaded_once else None,
            "problems": list(self.problems),
            "drifted": sorted(key for key in self._status if self.drift(key) is not None),
        }

    # -- live status ---------------------------------------------------------------------------------

    def record(self, result: ProbeResult) -> None:
        """Note the latest probe of a server."""
        before = self.drift(result.server)
        self._status[result.server] = result
        if (before is None) != (self.drift(result.server) is None):
            self._drift_version += 1
            self._visible.clear()

    def status(self, key: str) -> ProbeResult | None:
        return self._status.get(key)

    def drift(self, key: str) -> str | None:
        """A summary of the drift of server ``key`` against its current approved digest, if any."""
        result = self._status.get(key)
        entry = self.current.catalog.by_key.get(key)
        if (
            result is None
            or not result.drift
            or entry is None
            or result.approved_digest != entry.manifest.digest
        ):
            return None
        more = f" (+{len(result.drift) - 3} more)" if len(result.drift) > 3 else ""
        return "; ".join(result.drift[:3]) + more

    # -- who sees what -----------------------------------------------------------------------------

    def in_agent_catalog(self, entry: ServerEntry) -> bool:
        """Approved by every track, none expired, and no drift."""
        return entry.approved and self.drift(entry.key) is None

    def visible_keys(self, principal: Principal) -> frozenset[str]:
        """Keys of the agent-catalog servers ``principal`` may use (cached per kind of principal)."""
        cache_key = (self.current.catalog.generation, self._drift_version, principal_key(principal))
        hit = self._visible.get(cache_key)
        if hit is not None:
            self._visible.move_to_end(cache_key)
            return hit
        visible = frozenset(
            entry.key
            for entry in self.current.catalog.entries
            if self.in_agent_catalog(entry) and server_decision(principal, entry).allowed
        )
        self._visible[cache_key] = visible
        if len(self._visible) > _VISIBLE_CACHE:
            self._visible.popitem(last=False)
        return visible


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a catalog is built.

    A load allocates hundreds of thousands of long-lived objects; each allocation burst would start
    a collection that walks all of them (a third of a 2,000-server load's time). Nothing built here
    is garbage, and reference counting still frees what is dropped.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
