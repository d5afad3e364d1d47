"""The Fleetdeck Spark MCP server (its tools arrive with the Spark issue)."""
