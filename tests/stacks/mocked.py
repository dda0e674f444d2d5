"""The stack's program run under Pulumi's mocks: every resource it registers, with its inputs and URN.

`run_program(config)` sets the stack config, runs ``stacks.components.program.run`` with
``pulumi.runtime.set_mocks`` (no engine, no cluster) and returns what it registered. The mocks answer each
registration with its own inputs, as a provider's preview would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from otelstack.kubernetes.objects import ThirdParty
from stacks.components import platform_component, program, third_party

PROJECT = "otelstack-platform"
STACK = "dev"


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)  # logical names of the resources it waits for
    urn: str = ""

    @property
    def kind(self) -> str:
        return self.typ.rsplit(":", 1)[-1]

    @property
    def object(self) -> dict[str, Any]:
        """The inputs as a Kubernetes object (numbers as the API would read them back)."""
        return integral(self.inputs)


DYNAMIC = "pulumi-python:dynamic:Resource"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value on the wire


def revealed(value: Any) -> Any:
    """The inputs with every secret envelope ({SECRET_SIG: …, "value": v}) replaced by v."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return revealed(value.get("value"))
        return {key: revealed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [revealed(item) for item in value]
    return value


def integral(value: Any) -> Any:
    """The mocks pass every number as a float; whole ones compare as the ints the renderer wrote."""
    return json.loads(
        json.dumps(value), parse_float=lambda text: int(float(text)) if float(text).is_integer() else float(text)
    )


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(Registered(args.typ, args.name, revealed(dict(args.inputs))))
        if args.typ == DYNAMIC:  # a generated value (stacks/components/generated.py), as its create would make
            return f"{args.name}-id", {**dict(args.inputs), "value": f"generated-{args.name}"}
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def run_program(config: Mapping[str, Any], secret_keys: tuple[str, ...] = ("otelstack:secrets",)) -> list[Registered]:
    """Run the program with this stack config; the Kubernetes resources it registered, in order."""
    recorder = Recorder()
    # Pulumi's mocks run on the thread's current event loop; an earlier asyncio.run() (other tests in the same
    # process) leaves none, so each run gets a fresh one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=STACK, preview=False)
    pulumi.runtime.set_all_config(
        {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()},
        [key for key in secret_keys if key in config],
    )
    waits: dict[tuple[str, str], list[str]] = {}
    create = platform_component.create

    def recording_create(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        names = [getattr(r, "_name", "?") for r in (opts.depends_on or [])]  # type: ignore[union-attr]
        waits[(obj["kind"], platform_component.logical_name(obj))] = names
        return create(obj, opts)

    install = third_party.create

    def recording_install(
        source: ThirdParty, opts: pulumi.ResourceOptions, *, without_nodes: bool = False
    ) -> pulumi.ComponentResource:
        waits[(source.kind, source.name)] = [getattr(r, "_name", "?") for r in (opts.depends_on or [])]  # type: ignore[union-attr]
        return install(source, opts, without_nodes=without_nodes)

    platform_component.create = recording_create
    third_party.create = recording_install
    urns: dict[tuple[str, str], str] = {}
    try:

        @pulumi.runtime.test  # type: ignore[misc]
        def body() -> pulumi.Output[Any]:
            created = program.run()
            outputs = [
                resource.urn.apply(lambda urn: urns.__setitem__(type_and_name(urn), urn))
                for component in created.values()
                for resource in [*component.resources.values(), *([component.installed] if component.installed else [])]
            ]
            return pulumi.Output.all(*outputs)

        body()
    finally:
        platform_component.create = create
        third_party.create = install
    resources = [r for r in recorder.registered if r.typ.startswith("kubernetes:")]
    installs = {"kubernetes:helm.sh/v4:Chart": "helm-chart", "kubernetes:kustomize/v2:Directory": "kustomize"}
    for resource in resources:
        kind = installs.get(resource.typ, resource.kind)
        resource.depends_on = waits.get((kind, resource.name), [])
        resource.urn = urns.get((resource.typ, resource.name), "")
    return resources


def type_and_name(urn: str) -> tuple[str, str]:
    """urn:pulumi:STACK::PROJECT::PARENT$TYPE::NAME → (TYPE, NAME)."""
    _, _, chain, name = urn.split("::", 3)
    return chain.rsplit("$", 1)[-1], name


def with_all_secrets(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with a value for every key the rendered otelstack-secrets Secret lists (from the renderer)."""
    from otelstack.kubernetes.settings import parse_cluster
    from otelstack.model.loader import load_spec
    from otelstack.render import kubernetes_components

    configs = Path(config.get("otelstack:configs") or program.ROOT / "configs")
    spec = load_spec(configs, config["otelstack:environment"], config.get("otelstack:region"))
    components = kubernetes_components(spec, parse_cluster(config.get("otelstack:cluster")))
    keys = sorted(
        key for component in components for obj in component.objects for key in platform_component.secret_keys(obj)
    )
    return {**config, "otelstack:secrets": {key: f"value-of-{key}" for key in keys}}


def main() -> int:
    """`python -m tests.stacks.mocked CONFIG_JSON`: run the program in a process of its own (a program that
    fails leaves Pulumi's futures behind, which must not outlive the run in the test process); prints the
    registered resources as JSON, or the error on stderr with exit status 1."""
    try:
        resources = run_program(json.loads(sys.argv[1]))
    except Exception as exc:  # the program's failure, reported as its user would see it
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps([{"typ": r.typ, "name": r.name, "inputs": r.inputs} for r in resources]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
