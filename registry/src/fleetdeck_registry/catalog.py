"""The immutable catalog: every loaded server with its reviews and whether the governance gate passes.

A :class:`Catalog` is built once per load and never changed; a reload builds a new one and swaps
it in with one assignment, so a request always sees one consistent catalog.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fleetdeck.auth.policy import AccessPolicy, ToolFacts, ToolPolicy
from fleetdeck.manifest.model import Manifest, ManifestTool
from fleetdeck.manifest.reviews import Reviews, review_state


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """One server: its manifest, its review records and the gate's verdict on them."""

    key: str
    """The folder name (``presto``): short name in URLs, telemetry and reviews."""
    manifest: Manifest
    reviews: Reviews | None
    approved: bool
    reasons: tuple[str, ...]
    access: AccessPolicy
    tool_facts: Mapping[str, ToolFacts]
    modified: dt.datetime

    @property
    def name(self) -> str:
        """The official reverse-DNS name (``io.fleetdeck/presto``)."""
        return self.manifest.name

    @property
    def tools(self) -> list[ManifestTool]:
        """The approved tool surface, sorted by name."""
        return self.manifest.tools

    def tool(self, name: str) -> ManifestTool | None:
        """The declared tool called ``name``."""
        return next((tool for tool in self.manifest.tools if tool.name == name), None)


def make_entry(
    key: str, manifest: Manifest, reviews: Reviews | None, today: dt.date, modified: dt.datetime
) -> ServerEntry:
    """A catalog entry, judged by the governance gate as of ``today``."""
    approved, reasons = review_state(reviews, manifest.digest, today)
    if reviews is None:
        reasons = ["no reviews.yaml: security, legal-privacy and genai reviews are missing"]
    access = AccessPolicy.model_validate(manifest.governance.access_policy)
    tool_facts = {
        tool.name: ToolFacts(
            name=tool.name,
            read_only=tool.annotations.read_only_hint,
            policy=ToolPolicy.model_validate(tool.policy) if tool.policy is not None else None,
        )
        for tool in manifest.tools
    }
    return ServerEntry(
        key=key,
        manifest=manifest,
        reviews=reviews,
        approved=approved,
        reasons=tuple(reasons),
        access=access,
        tool_facts=MappingProxyType(tool_facts),
        modified=modified,
    )


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every loaded server, by folder key and by official name; ``generation`` counts swaps."""

    entries: tuple[ServerEntry, ...]
    generation: int
    loaded_at: dt.datetime
    as_of: dt.date
    by_key: Mapping[str, ServerEntry] = field(default_factory=dict)
    by_name: Mapping[str, ServerEntry] = field(default_factory=dict)

    @classmethod
    def build(
        cls, entries: list[ServerEntry], generation: int, loaded_at: dt.datetime, as_of: dt.date
    ) -> Catalog:
        """A catalog sorted by official name."""
        ordered = tuple(sorted(entries, key=lambda entry: entry.name))
        return cls(
            entries=ordered,
            generation=generation,
            loaded_at=loaded_at,
            as_of=as_of,
            by_key=MappingProxyType({entry.key: entry for entry in ordered}),
            by_name=MappingProxyType({entry.name: entry for entry in ordered}),
        )

    def find(self, name_or_key: str) -> ServerEntry | None:
        """The entry with this official name or folder key."""
        return self.by_name.get(name_or_key) or self.by_key.get(name_or_key)

    def summary(self) -> dict[str, Any]:
        """Counts for health answers."""
        approved = sum(1 for entry in self.entries if entry.approved)
        return {
            "generation": self.generation,
            "servers": len(self.entries),
            "approved": approved,
            "in_review": len(self.entries) - approved,
            "tools": sum(len(entry.tools) for entry in self.entries),
        }


EMPTY = Catalog.build([], 0, dt.datetime.fromtimestamp(0, dt.UTC), dt.date(1970, 1, 1))
