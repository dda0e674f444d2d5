"""Test harness only: the podman connection of containers.podman, with pipelining.

The lab's molecule scenarios run every task through `podman exec`; without pipelining each task costs
four podman calls (mount, mkdir, chmod, run), with it two (mount, run), because the module reaches the
container's python on stdin (`podman exec -i`). Molecule's podman driver names the connection `podman`,
and this directory comes first in ANSIBLE_CONNECTION_PLUGINS (.config/molecule/config.yml), so the
scenarios get this subclass and testinfra keeps its own podman backend. Users' inventories are not
affected: the collection does not ship tests/.
"""

from __future__ import annotations

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase
from ansible_collections.containers.podman.plugins.connection.podman import DOCUMENTATION  # noqa: F401
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    has_pipelining = True
    # Modules always travel on stdin: there is no ssh-style `pipelining` option on this plugin to set.
    always_pipeline_modules = True

    def exec_command(self, cmd, in_data=None, sudoable=False):  # type: ignore[no-untyped-def]
        if in_data is None:
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if not self._connected:
            self._connect()
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec", "-i"] + (["--user", self.user] if self.user else [])
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
