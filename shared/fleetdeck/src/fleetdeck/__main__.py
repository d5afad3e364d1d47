"""``python -m fleetdeck`` runs the CLI."""

from fleetdeck.cli import main

main()
