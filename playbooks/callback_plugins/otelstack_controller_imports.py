# Copyright otelstack developers. Apache-2.0.
"""The collection's controller_imports callback, loaded with the playbooks beside it (no enabling needed)."""

from __future__ import annotations

from ansible_collections.otelstack.platform.plugins.callback.controller_imports import (  # noqa: F401
    DOCUMENTATION,
    CallbackModule,
)
