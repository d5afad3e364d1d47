"""Fleetdeck: the shared library every Fleetdeck MCP server imports."""
