"""The OpenAPI 3.1 document of the registry's JSON API."""

from __future__ import annotations

from typing import Any

_PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _get(summary: str, schema: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": params or [],
            "responses": {
                "200": {
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
                },
                "401": _PROBLEM,
                "404": _PROBLEM,
            },
        }
    }


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def openapi_document(base_url: str) -> dict[str, Any]:
    """The document, with ``base_url`` as the server."""
    obj = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Fleetdeck registry",
            "version": "0.1.0",
            "description": "The governed catalog of the fleet's MCP servers. Lists only approved, "
            "non-drifted servers the caller's groups may use.",
        },
        "servers": [{"url": base_url}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                },
                "ServerResponse": {
                    "type": "object",
                    "required": ["server", "_meta"],
                    "properties": {"server": obj, "_meta": obj},
                },
                "ServerList": {
                    "type": "object",
                    "required": ["servers", "metadata"],
                    "properties": {
                        "servers": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ServerResponse"},
                        },
                        "metadata": {
                            "type": "object",
                            "properties": {"nextCursor": {"type": "string"}, "count": {"type": "integer"}},
                        },
                    },
                },
                "Catalog": obj,
                "Card": obj,
                "SearchResults": obj,
                "Roi": obj,
                "Health": obj,
                "AccessCheck": {
                    "type": "object",
                    "required": ["server"],
                    "properties": {
                        "server": {"type": "string"},
                        "tool": {"type": "string"},
                        "user": {
                            "type": "object",
                            "properties": {
                                "subject": {"type": "string"},
                                "groups": {"type": "array", "items": {"type": "string"}},
                                "roles": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "workload": {"type": "string", "description": "SPIFFE ID"},
                        "surface": {"type": "string"},
                    },
                },
                "AccessAnswer": {
                    "type": "object",
                    "properties": {
                        "allowed": {"type": "boolean"},
                        "decision": {"enum": ["allow", "deny"]},
                        "rule": {"type": "string"},
                        "reason": {"type": "string"},
                        "server": {"type": "string"},
                        "tool": {"type": ["string", "null"]},
                    },
                },
            },
        },
        "paths": {
            "/v0.1/servers": _get(
                "List servers (official MCP registry API)",
                "ServerList",
                [
                    _query("search", "Substring of the server name"),
                    _query("cursor", "From metadata.nextCursor"),
                    _query("limit", "1-100, default 30", "integer"),
                    _query("version", "'latest' or a version"),
                    _query("updated_since", "RFC 3339 timestamp"),
                ],
            ),
            "/v0.1/servers/{name}/versions": _get("All versions of a server", "ServerList", [_path("name")]),
            "/v0.1/servers/{name}/versions/{version}": _get(
                "One version of a server ('latest' allowed)",
                "ServerResponse",
                [_path("name"), _path("version")],
            ),
            "/.well-known/mcp/catalog.json": _get("The catalog of servers you may use", "Catalog"),
            "/.well-known/mcp/servers/{key}.json": _get("A server card", "Card", [_path("key")]),
            "/api/search": _get(
                "Ranked search over servers and tools",
                "SearchResults",
                [
                    _query("q", "Words of names, descriptions, owner, tags"),
                    _query("kind", "server or tool"),
                    _query("limit", "1-100", "integer"),
                ],
            ),
            "/api/roi": _get(
                "Invocations, monthly users and hours saved per server and tool",
                "Roi",
                [_query("month", "YYYY-MM")],
            ),
            "/api/health": _get("Catalog load health (ok or degraded, with problems)", "Health"),
            "/api/access/check": {
                "post": {
                    "summary": "May this user or workload use server X / tool Y?",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/AccessCheck"}}
                        }
                    },
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/AccessAnswer"}}
                            }
                        },
                        "400": _PROBLEM,
                        "401": _PROBLEM,
                    },
                }
            },
        },
    }
