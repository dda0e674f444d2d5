"""otelstack's own build of the pinned collector and supervisor, from their Go modules.

``manifest`` generates the Collector Builder manifest from the catalog, ``build`` compiles both
programs into a per-user cache, ``package`` lays them out like the upstream release (archive and
checksum file) for offline installs, ``locate`` finds a built binary for validation.
"""
