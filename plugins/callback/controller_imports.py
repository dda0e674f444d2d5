# Copyright otelstack developers. Apache-2.0.
"""Callback plugin: import otelstack once in the controller process, before the first task."""

from __future__ import annotations

DOCUMENTATION = r"""
name: controller_imports
type: aggregate
author: otelstack developers
short_description: Import otelstack once in the controller process
description:
  - The collection's lookups render on the controller with the otelstack Python package. Ansible runs
    each task in a worker forked from the controller process, so a module the controller process has
    not imported is imported again by every worker, once per task and host (about 0.3 s each).
  - This plugin imports the modules the lookups and filters use (otelstack.controller_imports) when the
    run starts; every worker forked after it inherits them.
  - It loads by itself with the collection's playbooks run by path, as in C(ansible-playbook playbooks/site.yml),
    from C(playbooks/callback_plugins/). For C(ansible-playbook otelstack.platform.site) add
    C(otelstack.platform.controller_imports) to C(callbacks_enabled).
  - When otelstack cannot be imported by the controller's Python it warns once, naming the error; the
    first lookup then fails with the same cause.
"""

from ansible.plugins.callback import CallbackBase  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "otelstack.platform.controller_imports"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, display=None):  # type: ignore[no-untyped-def]
        super().__init__(display)
        try:
            from otelstack.controller_imports import preload

            preload()
        except ImportError as exc:
            self._display.warning(f"the otelstack Python package is not importable by the controller's Python: {exc}")
