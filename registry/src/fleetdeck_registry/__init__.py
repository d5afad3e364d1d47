"""The Fleetdeck registry (built by the registry issue)."""
