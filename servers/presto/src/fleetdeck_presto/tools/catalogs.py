"""Browsing tools: which catalogs and schemas exist."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from fleetdeck.server import FleetServer
from fleetdeck_presto.backend import WarehouseBackend

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class CatalogList(BaseModel):
    """The catalogs the caller can browse."""

    catalogs: list[str]


class SchemaList(BaseModel):
    """The schemas of one catalog."""

    catalog: str
    schemas: list[str]


def register(server: FleetServer, backend: WarehouseBackend) -> None:
    """Add the browsing tools to ``server``."""

    @server.tool(minutes_saved=1, read_only=True, destructive=False, idempotent=True)
    async def list_catalogs() -> CatalogList:
        """List the catalogs of the warehouse you can query.

        Start here to find where data lives; then call list_schemas on a catalog.
        """
        return CatalogList(catalogs=await backend.list_catalogs())

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    async def list_schemas(catalog: Identifier) -> SchemaList:
        """List the schemas in one catalog.

        Fails with the list of valid catalogs when the catalog does not exist.
        """
        return SchemaList(catalog=catalog, schemas=await backend.list_schemas(catalog))
