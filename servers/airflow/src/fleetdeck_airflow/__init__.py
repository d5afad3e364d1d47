"""The Fleetdeck Airflow MCP server (its tools arrive with the Airflow issue)."""
