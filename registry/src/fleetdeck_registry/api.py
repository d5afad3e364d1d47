"""The JSON API for agents, behind the shared bearer authentication.

- the official MCP registry read API: ``/v0.1/servers`` (``search`` = name substring, ``cursor``,
  ``limit``), ``/v0.1/servers/{name}/versions`` and ``/v0.1/servers/{name}/versions/{version}``;
  the detail answers carry the whole manifest (Fleetdeck's data under its ``_meta``), pages carry
  it without the tool definitions (names only, in the response ``_meta``), and the registry's own
  data is under the response's ``_meta["io.fleetdeck/registry"]``;
- ``/.well-known/mcp/catalog.json`` and a card per server;
- ``/api/search`` (ranked, servers and tools), ``POST /api/access/check``, ``/api/roi``,
  ``/api/health``; ``/openapi.json`` describes them.

Every answer lists only agent-catalog servers (approved, not drifted) the caller may use.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from fleetdeck.auth.policy import decide
from fleetdeck.auth.principal import Principal
from fleetdeck.errors import FleetdeckError, InvalidInputError
from fleetdeck.manifest.model import GOVERNANCE_KEY
from fleetdeck_registry.access import check_access, server_decision, subject_principal
from fleetdeck_registry.catalog import ServerEntry
from fleetdeck_registry.openapi import openapi_document
from fleetdeck_registry.search import Kind

if TYPE_CHECKING:
    from fleetdeck_registry.server import RegistryServer

OFFICIAL_META = "io.modelcontextprotocol.registry/official"
REGISTRY_META = "io.fleetdeck/registry"
DEFAULT_LIMIT, MAX_LIMIT = 30, 100
SUMMARY_CACHE = 50_000
MAX_BODY_BYTES = 16_384
Handler = Callable[[Request], Awaitable[Response]]


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem answer."""
    titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Content Too Large"}
    body = {"title": titles.get(status, "Error"), "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def _cursor(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.urlsafe_b64decode(value.encode() + b"==").decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError("cursor is not one this registry issued") from exc


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


class Api:
    """Route handlers bound to one registry server."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.state = server.state
        self._summaries: dict[tuple[int, str], bytes] = {}
        self._items: dict[tuple[int, str, float | None, bool], bytes] = {}

    def guarded(self, handler: Callable[[Request, Principal], Awaitable[Response]]) -> Handler:
        """Refuse anonymous callers (401 with ``resource_metadata``) and map input errors to 400."""

        async def endpoint(request: Request) -> Response:
            principal = self.server.principal_of(request)
            if principal.is_anonymous:
                base = str(request.base_url).rstrip("/")
                challenge = f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
                return problem(401, "a bearer token is required", {"WWW-Authenticate": challenge})
            try:
                return await handler(request, principal)
            except InvalidInputError as exc:
                return problem(400, str(exc))

        return endpoint

    def response_meta(self, entry: ServerEntry) -> dict[str, Any]:
        """The response ``_meta``: the official registry's fields and the registry's live data."""
        status = self.state.status(entry.key)
        stamp = entry.modified.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            OFFICIAL_META: {"status": "active", "publishedAt": stamp, "updatedAt": stamp, "isLatest": True},
            REGISTRY_META: {
                "key": entry.key,
                "agent_catalog": self.state.in_agent_catalog(entry),
                "reviews": "approved" if entry.approved else "; ".join(entry.reasons),
                "status": status.as_json() if status else None,
                "card": f"/.well-known/mcp/servers/{entry.key}.json",
                "tools": [tool.name for tool in entry.tools],
            },
        }

    def server_response(self, entry: ServerEntry) -> dict[str, Any]:
        """One official ``ServerResponse``: the whole manifest plus registry metadata."""
        return {"server": entry.manifest.document(), "_meta": self.response_meta(entry)}

    def item_json(self, entry: ServerEntry) -> bytes:
        """One page item's JSON, cached until the catalog, the server's status or its drift changes."""
        status = self.state.status(entry.key)
        cache_key = (
            self.state.current.catalog.generation,
            entry.key,
            status.ts if status is not None else None,
            self.state.in_agent_catalog(entry),
        )
        cached = self._items.get(cache_key)
        if cached is None:
            meta = json.dumps(self.response_meta(entry), separators=(",", ":")).encode()
            cached = b'{"server":' + self.summary_json(entry) + b',"_meta":' + meta + b"}"
            if len(self._items) > SUMMARY_CACHE:
                self._items.clear()
            self._items[cache_key] = cached
        return cached

    def summary_json(self, entry: ServerEntry) -> bytes:
        """The manifest as listed in pages: official fields, governance without tool definitions.

        Pages stay small (a manifest's tool schemas are most of its bytes); the full manifest is
        ``/v0.1/servers/{name}/versions/{version}``. Rendered once per catalog generation.
        """
        cache_key = (self.state.current.catalog.generation, entry.key)
        cached = self._summaries.get(cache_key)
        if cached is None:
            document = entry.manifest.document()
            governance = dict(document["_meta"][GOVERNANCE_KEY])
            governance.pop("tools", None)
            document["_meta"] = {**document["_meta"], GOVERNANCE_KEY: governance}
            cached = json.dumps(document, separators=(",", ":")).encode()
            if len(self._summaries) > SUMMARY_CACHE:
                self._summaries.clear()
            self._summaries[cache_key] = cached
        return cached

    def visible_entry(self, principal: Principal, name: str) -> ServerEntry | None:
        entry = self.state.current.catalog.find(name)
        if entry is None or entry.key not in self.state.visible_keys(principal):
            return None
        return entry

    async def list_servers(self, request: Request, principal: Principal) -> Response:
        snapshot = self.state.current
        visible = self.state.visible_keys(principal)
        limit, after = _limit(request), _cursor(request.query_params.get("cursor"))
        search = (request.query_params.get("search") or "").strip().casefold()
        version = request.query_params.get("version")
        updated_since = request.query_params.get("updated_since")
        start = bisect.bisect_right(snapshot.names, after) if after is not None else 0
        page: list[bytes] = []
        last: str | None = None
        more = False
        for name in snapshot.names[start:]:
            entry = snapshot.catalog.by_name[name]
            if entry.key not in visible or (search and search not in name.casefold()):
                continue
            if version not in (None, "", "latest") and entry.manifest.version != version:
                continue
            if updated_since and entry.modified.isoformat() < updated_since:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(self.item_json(entry))
            last = name
        metadata: dict[str, Any] = {"count": len(page)}
        if more and last is not None:
            metadata["nextCursor"] = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
        body = b'{"servers":[' + b",".join(page) + b'],"metadata":' + json.dumps(metadata).encode() + b"}"
        return Response(body, media_type="application/json")

    async def versions(self, request: Request, principal: Principal) -> Response:
        entry = self.visible_entry(principal, request.path_params["name"])
        if entry is None:
            return problem(404, "no such server in your catalog")
        return JSONResponse({"servers": [self.server_response(entry)], "metadata": {"count": 1}})

    async def version(self, request: Request, principal: Principal) -> Response:
        entry = self.visible_entry(principal, request.path_params["name"])
        wanted = request.path_params["version"]
        if entry is None or wanted not in ("latest", entry.manifest.version):
            return problem(404, "no such server version in your catalog")
        return JSONResponse(self.server_response(entry))

    def card(self, entry: ServerEntry, principal: Principal) -> dict[str, Any]:
        """A server card: how to reach the server and the tools this caller may call."""
        governance = entry.manifest.governance
        tools = [
            {
                "name": tool.name,
                "title": tool.title,
                "description": tool.description,
                "inputSchema": tool.input_schema,
                "annotations": tool.annotations.model_dump(),
                "minutes_saved": tool.minutes_saved,
                "requires_approval": tool.requires_approval,
            }
            for tool in entry.tools
            if decide(principal, entry.tool_facts[tool.name], entry.access).allowed
        ]
        return {
            "name": entry.name,
            "title": entry.manifest.title,
            "description": entry.manifest.description,
            "version": entry.manifest.version,
            "remotes": [remote.model_dump() for remote in entry.manifest.remotes],
            "owner_team": governance.owner_team,
            "support_channel": governance.support_channel,
            "docs_url": governance.docs_url,
            "data_classification": governance.data_classification,
            "instructions": governance.instructions,
            "tool_surface_digest": entry.manifest.digest,
            "tools": tools,
        }

    async def catalog_json(self, request: Request, principal: Principal) -> Response:
        visible = self.state.visible_keys(principal)
        servers = [
            {
                "name": entry.name,
                "title": entry.manifest.title,
                "description": entry.manifest.description,
                "url": entry.manifest.remotes[0].url if entry.manifest.remotes else None,
                "card": f"/.well-known/mcp/servers/{entry.key}.json",
            }
            for entry in self.state.current.catalog.entries
            if entry.key in visible
        ]
        return JSONResponse({"version": "1", "servers": servers})

    async def server_card(self, request: Request, principal: Principal) -> Response:
        entry = self.visible_entry(principal, request.path_params["key"])
        if entry is None:
            return problem(404, "no such server in your catalog")
        return JSONResponse(self.card(entry, principal))

    def search_results(
        self, principal: Principal, query: str, kinds: tuple[Kind, ...], limit: int
    ) -> list[Any]:
        """Ranked hits the caller may use, as JSON."""
        snapshot, visible = self.state.current, self.state.visible_keys(principal)

        def allowed(kind: Kind, key: str, tool: str | None) -> bool:
            entry = snapshot.catalog.by_key[key]
            return tool is None or decide(principal, entry.tool_facts[tool], entry.access).allowed

        results = []
        for hit in snapshot.index.search(query, kinds=kinds, limit=limit, servers=visible, allowed=allowed):
            entry = snapshot.catalog.by_key[hit.server]
            item: dict[str, Any] = {
                "kind": hit.kind,
                "score": hit.score,
                "server": entry.name,
                "server_title": entry.manifest.title,
                "key": entry.key,
                "url": entry.manifest.remotes[0].url if entry.manifest.remotes else None,
            }
            tool = entry.tool(hit.tool) if hit.tool else None
            if tool is not None:
                item |= {
                    "tool": tool.name,
                    "description": tool.description,
                    "annotations": tool.annotations.model_dump(),
                    "minutes_saved": tool.minutes_saved,
                }
            else:
                item["description"] = entry.manifest.description
            results.append(item)
        return results

    async def search(self, request: Request, principal: Principal) -> Response:
        query = request.query_params.get("q", "")
        kind = request.query_params.get("kind")
        if kind not in (None, "server", "tool"):
            raise InvalidInputError("kind must be server or tool")
        kinds: tuple[Kind, ...] = ("server", "tool") if kind is None else (kind,)  # type: ignore[assignment]
        results = self.search_results(principal, query[:500], kinds, min(_limit(request), MAX_LIMIT))
        return JSONResponse({"query": query, "results": results})

    async def access_check(self, request: Request, principal: Principal) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return problem(413, f"the body is limited to {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise InvalidInputError("the body must be JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("server"), str):
            raise InvalidInputError(
                'the body must be an object with "server" (and "tool", "user", "workload")'
            )
        tool = body.get("tool")
        if tool is not None and not isinstance(tool, str):
            raise InvalidInputError("tool must be a string")
        name = body["server"]
        entry = self.state.current.catalog.find(name)
        if entry is not None and not principal.is_anonymous and not self.may_see(principal, entry):
            entry = None  # never confirm a server the caller cannot see
        subject = subject_principal(body, principal)
        answer = check_access(subject, entry, name, tool, self.state.drift(entry.key) if entry else None)
        return JSONResponse(answer.as_json())

    def may_see(self, principal: Principal, entry: ServerEntry) -> bool:
        return server_decision(principal, entry).allowed

    async def roi(self, request: Request, principal: Principal) -> Response:
        visible = self.state.visible_keys(principal)
        try:
            report = await self.server.roi_report()
        except FleetdeckError as exc:
            return problem(503, str(exc))
        month = request.query_params.get("month")
        months = []
        for roi in report.months:
            if month and roi.month != month:
                continue
            months.append(
                {
                    "month": roi.month,
                    "servers": [
                        {
                            "server": s.server,
                            "team": s.team,
                            "invocations": s.figures.invocations,
                            "monthly_active_users": s.figures.monthly_active_users,
                            "hours_saved": round(s.figures.hours_saved, 2),
                        }
                        for s in roi.by_server
                        if s.server in visible
                    ],
                    "tools": [
                        {
                            "server": t.server,
                            "tool": t.tool,
                            "invocations": t.figures.invocations,
                            "monthly_active_users": t.figures.monthly_active_users,
                            "hours_saved": round(t.figures.hours_saved, 2),
                        }
                        for t in roi.by_tool
                        if t.server in visible
                    ],
                }
            )
        return JSONResponse({"months": months})

    async def health(self, request: Request, principal: Principal) -> Response:
        prober = self.server.prober
        probe = {
            "rounds": prober.rounds,
            "last_round_s": prober.last_round_s,
            "interval_s": prober.interval_s,
        }
        return JSONResponse({**self.state.health(), "probe": probe})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(str(request.base_url).rstrip("/")))


def api_routes(server: RegistryServer) -> list[BaseRoute]:
    """The API's routes, bound to ``server``."""
    api = Api(server)
    g = api.guarded
    return [
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/v0.1/servers", g(api.list_servers), methods=["GET"]),
        Route("/v0.1/servers/{name:path}/versions/{version}", g(api.version), methods=["GET"]),
        Route("/v0.1/servers/{name:path}/versions", g(api.versions), methods=["GET"]),
        Route("/.well-known/mcp/catalog.json", g(api.catalog_json), methods=["GET"]),
        Route("/.well-known/mcp/servers/{key}.json", g(api.server_card), methods=["GET"]),
        Route("/api/search", g(api.search), methods=["GET"]),
        Route("/api/access/check", g(api.access_check), methods=["POST"]),
        Route("/api/roi", g(api.roi), methods=["GET"]),
        Route("/api/health", g(api.health), methods=["GET"]),
    ]
