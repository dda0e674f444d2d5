"""The resource plugin the Pulumi engine starts for a Python dynamic provider: ``pulumi-resource-pulumi-python``.

A dynamic provider (``pulumi.dynamic.ResourceProvider``, e.g. stacks/components/generated.py) runs in a
process of its own: the engine looks for the plugin ``pulumi-resource-pulumi-python`` on ``PATH`` and next to
the ``pulumi`` executable it runs (a plugin "bundled" with the CLI), and that plugin serves the provider
protocol by running the SDK's module ``pulumi.dynamic`` with the project's Python. The CLI built from its Go
module has no such file (it ships with the release archives only), so otelstack writes its own launcher
next to the built ``pulumi`` (``otelstack dist kubetools``), where the engine finds it as bundled, and links
it into ``.cache/bin`` with the programs.

Which Python: the engine passes Pulumi.yaml's runtime options as ``PULUMI_RUNTIME_<OPTION>`` variables and
starts the plugin in the project's directory; ``virtualenv`` (``PULUMI_RUNTIME_VIRTUALENV``, relative to that
directory unless absolute) names the environment whose ``bin/python`` has the SDK, ``dill`` and the modules
the provider was pickled from. Without it: ``$PULUMI_PYTHON_CMD``, else ``python3``.
"""

from __future__ import annotations

import os
from pathlib import Path

from otelstack.dist.build import Note

PLUGIN = "pulumi-resource-pulumi-python"
SERVER_MODULE = "pulumi.dynamic"  # the SDK's provider server: prints its port, serves gRPC until killed
NEXT_TO = "pulumi"  # the program whose directory holds the launcher (the engine's "bundled" plugins)

LAUNCHER = f"""#!/bin/sh
# {PLUGIN}: written by otelstack (otelstack dist kubetools), see otelstack/dist/dynamic_provider.py.
# Runs the Python dynamic provider server ({SERVER_MODULE}) with the project's interpreter.
set -eu
env_dir=${{PULUMI_RUNTIME_VIRTUALENV:-}}
if [ -z "$env_dir" ]; then
    exec "${{PULUMI_PYTHON_CMD:-python3}}" -u -m {SERVER_MODULE} "$@"
fi
case $env_dir in
    /*) ;;
    *) env_dir=$PWD/$env_dir ;;
esac
env_dir=${{env_dir%/}}
if [ ! -x "$env_dir/bin/python" ]; then
    echo "{PLUGIN}: Pulumi.yaml's runtime option virtualenv is $env_dir, which has no bin/python;" \\
        "create it and install the project's requirements (the pulumi SDK among them)" >&2
    exit 1
fi
PATH=$env_dir/bin:$PATH
export PATH
unset PYTHONHOME
exec "$env_dir/bin/python" -u -m {SERVER_MODULE} "$@"
"""


def write_launcher(directory: Path, note: Note) -> Path:
    """The launcher in ``directory`` (written atomically, executable; left alone when already current)."""
    target = directory / PLUGIN
    if target.is_file() and target.read_text(encoding="utf-8") == LAUNCHER and os.access(target, os.X_OK):
        return target
    tmp = directory / f".{PLUGIN}.tmp"
    tmp.write_text(LAUNCHER, encoding="utf-8")
    tmp.chmod(0o755)
    os.replace(tmp, target)
    note(f"{PLUGIN}: written next to {NEXT_TO} ({directory})")
    return target
