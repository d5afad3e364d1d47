"""Fleetdeck testkit: the pytest plugin, backend launchers and MCP client helpers."""
