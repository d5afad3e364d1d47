"""The Fleetdeck registry: manifests in, a governed catalog out — an API and MCP tools for agents, a web UI
for people.

Modules: :mod:`~fleetdeck_registry.loader` (folder → immutable catalog, all or nothing),
:mod:`~fleetdeck_registry.catalog` (entries and the governance gate), :mod:`~fleetdeck_registry.state`
(the current snapshot, load health, live status), :mod:`~fleetdeck_registry.probe` (live status and
drift), :mod:`~fleetdeck_registry.access` (who may use what, through the shared ``decide()``),
:mod:`~fleetdeck_registry.search`, :mod:`~fleetdeck_registry.api`, :mod:`~fleetdeck_registry.tools`,
:mod:`~fleetdeck_registry.ui`, :mod:`~fleetdeck_registry.server` (the FleetServer that serves it all).
"""
