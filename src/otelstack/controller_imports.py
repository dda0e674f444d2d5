"""The otelstack modules the collection's Ansible plugins import on the controller, imported once.

Ansible runs every task in a worker process it forks from the controller process. A lookup or filter
that imports otelstack inside a worker pays that import (the model's pydantic classes, the renderers:
about 0.3 s) once per task and host, since the worker ends with the task. Imported once in the controller
process before the first task (playbooks/callback_plugins/otelstack_controller.py does it), the modules
are inherited by every worker the run forks: a lookup then costs its own work only.
"""

from __future__ import annotations

import importlib

# What plugins/lookup/otelstack.py and plugins/filter/*.py import, per term or filter.
MODULES = (
    "otelstack.catalog.components",
    "otelstack.catalog.versions",
    "otelstack.dist.checksums",
    "otelstack.errors",
    "otelstack.model.loader",
    "otelstack.render",
    "otelstack.security.certificates",
    "otelstack.security.layout",
    "otelstack.security.nftables",
    "otelstack.sizing",
    "otelstack.validate.binary",
)


def preload() -> tuple[str, ...]:
    """Import every module of MODULES (an ImportError names the one that failed); returns their names."""
    for name in MODULES:
        importlib.import_module(name)
    return MODULES
