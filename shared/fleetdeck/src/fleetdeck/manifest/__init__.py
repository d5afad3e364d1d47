"""Manifests: the model, the builder from a server, the canonical digest and review records."""
