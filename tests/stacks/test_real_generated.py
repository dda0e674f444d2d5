"""Generated secret values in a real `pulumi up` (loopback API server, tests/stacks/cluster.py): the dev stack
with the ClickHouse schema Job, whose Secret lists the users' passwords in ``otelstack.io/generated-keys``.

The engine runs the Python dynamic provider (stacks/components/generated.py) through the launcher
`otelstack dist kubetools` writes next to the built `pulumi` (pulumi-resource-pulumi-python). A key the
stack's secret config does not give gets a generated value in the Secret, which the state holds only as a
secret (not in `pulumi stack export`), which a second `pulumi up` keeps, and which a value given in the
secret config replaces."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.kubernetes.objects import GENERATED_KEYS_ANNOTATION
from tests.stacks.cluster import PULUMI_PROGRAMS, Cluster, skip_reason
from tests.stacks.test_real_stack import CERT_MANAGER_NAMESPACE, PROJECT, ROOT, Pulumi, namespaces, planned

pytestmark = pytest.mark.cluster

LAUNCHER = "pulumi-resource-pulumi-python"
IMAGE = {"repository": "registry.local/otelstack", "tag": "0.1.0"}  # never pulled: no node runs the Job
SCHEMA_JOB = {"enabled": True, "image": IMAGE}
# How the state marks a secret (the Go SDK's resource/sig: Key and Secret): {SIG_KEY: SECRET_SIG, "ciphertext": …}
SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def schema_job_tree(tmp_path: Path) -> Path:
    """configs/ and a dev stack file that runs the ClickHouse schema Job (plan reads both)."""
    configs = tmp_path / "tree" / "configs"
    shutil.copytree(ROOT / "configs", configs)
    stack = tmp_path / "tree" / "stacks" / "platform" / "Pulumi.dev.yaml"
    stack.parent.mkdir(parents=True)
    config = yaml.safe_load((PROJECT / "Pulumi.dev.yaml").read_text())
    config["config"].setdefault("otelstack:cluster", {})["clickhouseSchema"] = SCHEMA_JOB
    stack.write_text(yaml.safe_dump(config))
    return configs


def generated_secret(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The Secret that lists generated keys, and those keys."""
    for obj in objects:
        listed = (obj["metadata"].get("annotations") or {}).get(GENERATED_KEYS_ANNOTATION)
        if obj["kind"] == "Secret" and listed:
            return obj, sorted(listed.split(","))
    raise AssertionError(f"no Secret of the plan carries {GENERATED_KEYS_ANNOTATION}")


def stored(cluster: Cluster, secret: dict[str, Any]) -> dict[str, str]:
    meta = secret["metadata"]
    answer = cluster.get(f"/api/v1/namespaces/{meta['namespace']}/secrets/{meta['name']}")
    return {key: base64.b64decode(value).decode() for key, value in (answer.get("data") or {}).items()}


def secret_outputs(state: dict[str, Any]) -> dict[str, Any]:
    """URN → the `value` output of each generated value (a dynamic resource) in an exported state."""
    resources = state["deployment"]["resources"]
    return {
        r["urn"]: (r.get("outputs") or {}).get("value")
        for r in resources
        if r["type"] == "pulumi-python:dynamic:Resource"
    }


def test_generated_keys_are_made_once_kept_secret_and_lose_to_the_config(cluster: Cluster, tmp_path: Path) -> None:
    reason = skip_reason((*PULUMI_PROGRAMS, LAUNCHER))
    if reason:
        pytest.skip(reason)
    configs = schema_job_tree(tmp_path)
    objects = planned(tmp_path / "plan", "--configs", str(configs))
    secret, generated = generated_secret(objects)
    assert generated, secret["metadata"]
    cluster.apply(CERT_MANAGER_NAMESPACE)
    pulumi = Pulumi(cluster, tmp_path)
    pulumi("stack", "init", "dev")
    keys = {key for o in objects if o["kind"] == "Secret" for key in o.get("stringData") or {}}
    for key in sorted(keys - set(generated)):
        pulumi("config", "set", "--secret", "--path", f"otelstack:secrets.{key}", f"test-value-of-{key}")
    pulumi("config", "set", "otelstack:withoutNodes", "true")
    pulumi("config", "set", "otelstack:configs", str(configs))
    pulumi("config", "set", "--path", "otelstack:cluster.clickhouseSchema.enabled", "true")
    for field in ("repository", "tag"):
        pulumi("config", "set", "--path", f"otelstack:cluster.clickhouseSchema.image.{field}", IMAGE[field])

    up = pulumi("up", "--yes", "--skip-preview")
    assert "error" not in up.stderr.lower(), up.stderr
    assert f"using {LAUNCHER} from $PATH" not in up.stdout  # found as the CLI's own (bundled) plugin
    first = stored(cluster, secret)
    made = {key: first[key] for key in generated}
    for key, value in made.items():
        assert len(value) == 43 and value.strip() == value, (key, len(value))  # token_urlsafe(32)
    assert len(set(made.values())) == len(made)  # one value per key

    exported = pulumi("stack", "export").stdout
    assert not [key for key, value in made.items() if value in exported]
    outputs = secret_outputs(json.loads(exported))
    assert len(outputs) == len(generated), sorted(outputs)
    for urn, value in outputs.items():
        assert isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG and value.get("ciphertext"), urn

    pulumi("preview", "--expect-no-changes", "--diff")
    pulumi("up", "--yes", "--skip-preview")
    assert {key: stored(cluster, secret)[key] for key in generated} == made

    given_key = generated[0]
    pulumi("config", "set", "--secret", "--path", f"otelstack:secrets.{given_key}", "given-in-the-stack-config")
    pulumi("up", "--yes", "--skip-preview")
    after = stored(cluster, secret)
    assert after[given_key] == "given-in-the-stack-config"
    assert {key: after[key] for key in generated[1:]} == {key: made[key] for key in generated[1:]}

    pulumi("destroy", "--yes", "--skip-preview")
    for name in namespaces(objects):
        assert cluster.left_after_destroy(name) == [], name
        cluster.finalize_namespace(name)
