"""The Fleetdeck Presto/Trino MCP server."""
