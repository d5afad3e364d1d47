"""The Fleetdeck Spark MCP server: diagnose failed and slow Spark applications, record RCAs."""
