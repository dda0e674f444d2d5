"""The program as a whole, under Pulumi's mocks: it creates exactly the objects `otelstack plan` exports
(plan run as a separate process), fills the Secret from the stack's secret config and nothing else, waits
for readiness unless the stack says the cluster has no nodes, and orders what depends on what."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.components.platform_component import WITHOUT_NODES
from tests.stacks import mocked
from tests.stacks.mocked import Registered, run_program

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks" / "platform"


def stack_config(stack: str) -> dict[str, Any]:
    config = yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key: value for key, value in config.items() if key.startswith("otelstack:")}


def secret_keys(resources: list[Registered]) -> list[str]:
    secret = next(r for r in resources if r.kind == "Secret" and r.name.endswith("/otelstack-secrets"))
    return sorted(secret.inputs["stringData"])


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects `otelstack plan --env dev` exports, by (kind, namespace/name)."""
    out = tmp_path_factory.mktemp("plan") / "dev"
    subprocess.run(
        [sys.executable, "-m", "otelstack.cli", "plan", "--env", "dev", "--out", str(out), "--quiet"],
        cwd=ROOT,
        check=True,
    )
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((out / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                meta = doc["metadata"]
                name = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
                objects[(doc["kind"], name)] = doc
    assert objects, "the plan exported no Kubernetes objects"
    return objects


def with_all_secrets(stack: str) -> dict[str, Any]:
    return mocked.with_all_secrets(stack_config(stack))


def failed_program(config: dict[str, Any]) -> str:
    """Run the program in a process of its own; it must fail: its error message."""
    run = subprocess.run(
        [sys.executable, "-m", "tests.stacks.mocked", json.dumps(config)], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 1, run.stdout + run.stderr
    return run.stderr


def run_program_lacking_secrets(stack: str) -> list[str]:
    message = failed_program(stack_config(stack))
    found = re.search(r"otelstack-secrets needs (.+?) from the stack's secret config", message)
    assert found, message
    return found.group(1).split(", ")


def test_the_program_creates_exactly_the_objects_plan_exports(planned: dict[tuple[str, str], Any]) -> None:
    resources = run_program(with_all_secrets("dev"))
    created = {(r.kind, r.name): r.object for r in resources}
    assert sorted(created) == sorted(planned)
    for key, obj in created.items():
        expected = planned[key]
        if key[0] == "Secret":  # the plan has the keys; the program adds the values
            assert sorted(obj.pop("stringData")) == sorted(expected.pop("stringData"))
        assert obj == expected, key


def test_a_secret_lacking_from_the_stack_config_stops_the_program_naming_it() -> None:
    lacking = run_program_lacking_secrets("dev")
    assert lacking and all(key.startswith("OTELSTACK_") for key in lacking)
    config = with_all_secrets("dev")
    del config["otelstack:secrets"][lacking[0]]
    assert f"needs {lacking[0]} from the stack's secret config" in failed_program(config)


def test_secret_values_come_from_the_config_and_only_into_the_secret() -> None:
    config = with_all_secrets("dev")
    resources = run_program(config)
    # One otelstack-secrets per namespace: the platform's holds every key, the agents' those its config reads.
    secrets = [r for r in resources if r.kind == "Secret" and r.name.endswith("/otelstack-secrets")]
    platform = next(r for r in secrets if r.name == "observability/otelstack-secrets")
    assert platform.inputs["stringData"] == config["otelstack:secrets"]
    for secret in secrets:
        values = secret.inputs["stringData"]
        assert values and values == {key: config["otelstack:secrets"][key] for key in values}, secret.name
    elsewhere = [r.name for r in resources if r not in secrets and "value-of-" in str(r.inputs)]
    assert elsewhere == []


def test_waits_are_turned_off_only_when_the_stack_says_the_cluster_has_no_nodes() -> None:
    config = with_all_secrets("dev")
    waiting = run_program(config)
    assert all(not set(WITHOUT_NODES) & set(r.inputs["metadata"].get("annotations") or {}) for r in waiting)
    skipping = run_program({**config, "otelstack:withoutNodes": "true"})
    assert all(r.inputs["metadata"]["annotations"].items() >= WITHOUT_NODES.items() for r in skipping)
    assert len(skipping) == len(waiting)


def test_every_object_is_a_child_of_its_component_and_waits_for_the_namespace() -> None:
    resources = run_program(with_all_secrets("dev"))
    for resource in resources:
        assert resource.urn.startswith("urn:pulumi:dev::otelstack-platform::otelstack:platform:"), resource.urn
    namespace = next(r for r in resources if r.kind == "Namespace")
    for resource in resources:
        if resource is not namespace and resource.inputs["metadata"].get("namespace") == namespace.name:
            assert namespace.name in resource.depends_on or "namespace" in resource.depends_on, resource.name
