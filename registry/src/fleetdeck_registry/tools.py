"""The registry's MCP tools: discover the fleet through MCP itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from fleetdeck.auth.principal import current_principal
from fleetdeck.errors import InvalidInputError
from fleetdeck_registry.access import check_access as decide_access

if TYPE_CHECKING:
    from fleetdeck_registry.server import RegistryServer


def register(server: RegistryServer) -> None:
    """Add ``find_tools``, ``get_server`` and ``check_access`` to ``server``."""
    from fleetdeck_registry.api import Api

    api = Api(server)
    state = server.state

    @server.tool(minutes_saved=5, read_only=True, destructive=False, idempotent=True)
    async def find_tools(
        query: Annotated[str, Field(min_length=1, max_length=500, description="Words describing the task.")],
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        """Find the approved tools (and their servers) that fit a task, best match first.

        Lists only tools of reviewed, non-drifted servers you may use; load just the few you need.
        """
        results = api.search_results(current_principal.get(), query, ("tool", "server"), limit)
        return {"results": results}

    @server.tool(minutes_saved=2, read_only=True, destructive=False, idempotent=True)
    async def get_server(
        name: Annotated[str, Field(min_length=1, max_length=200, description="Registry name or short key.")],
    ) -> dict[str, Any]:
        """Get one server's card: URL, owner, support channel and the tools you may call.

        Fails for servers you may not use or that are not approved for agents.
        """
        principal = current_principal.get()
        entry = api.visible_entry(principal, name)
        if entry is None:
            raise InvalidInputError(f"no server called {name!r} in your catalog")
        card = api.card(entry, principal)
        status = state.status(entry.key)
        card["status"] = status.as_json() if status else None
        return card

    @server.tool(minutes_saved=3, read_only=True, destructive=False, idempotent=True)
    async def check_access(
        server_name: Annotated[str, Field(min_length=1, max_length=200, description="Registry name or key.")],
        tool: Annotated[str | None, Field(max_length=128, description="A tool of that server.")] = None,
    ) -> dict[str, Any]:
        """Check whether you may use a server (or one of its tools), with the deciding rule and reason.

        Answers from the review state, drift, business groups and the tool's policy.
        """
        principal = current_principal.get()
        entry = state.current.catalog.find(server_name)
        if entry is not None and not api.may_see(principal, entry):
            entry = None
        drift = state.drift(entry.key) if entry is not None else None
        return decide_access(principal, entry, server_name, tool, drift).as_json()
