"""The Instrumentation CR: the pinned operator's CRD schema, the node-local agent, sampler and propagators
from the spec, the operator's default images; installOperator is refused clearly."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from otelstack.kubernetes import operator
from otelstack.kubernetes.settings import parse_cluster
from otelstack.kubernetes.stack import StackContext, render_stack
from otelstack.model.spec import PlatformSpec
from otelstack.sizing import size_platform

MODULE = "github.com/open-telemetry/opentelemetry-operator"
CATALOG = Path(__file__).resolve().parents[2] / "src/otelstack/catalog/kubernetes_tools.yaml"


def context(cluster: dict[str, Any] | None = None, **spec: Any) -> StackContext:
    platform = PlatformSpec.model_validate({"environment": "dev", **spec})
    return StackContext(platform, parse_cluster(cluster or {}), size_platform(platform), {})


@cache
def operator_module() -> Path:
    """The pinned operator's Go module (downloaded through the Go module proxy once, then cached)."""
    if shutil.which("go") is None:
        pytest.skip("go is not on PATH: the operator's CRDs come from its Go module")
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@v{operator.OPERATOR_VERSION}"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    info = json.loads(out.stdout)
    assert "Error" not in info, info.get("Error")
    return Path(info["Dir"])


def strict(schema: Any) -> Any:
    """An openAPIV3Schema that rejects unknown fields (as kubernetes-validate --strict does)."""
    if isinstance(schema, dict):
        result = {k: strict(v) for k, v in schema.items()}
        if "properties" in result and "additionalProperties" not in result:
            result["additionalProperties"] = False
        return result
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_schema(kind: str, version: str) -> Any:
    for path in sorted((operator_module() / "config/crd/bases").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
            return strict(served[version]["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no CRD of kind {kind}")


CASES = [
    pytest.param({}, {}, id="defaults"),
    pytest.param(
        {"instrumentation": {"languages": ["java", "python", "nodejs", "dotnet", "go"], "name": "apps"}},
        {
            "cluster_name": "eu-1",
            "sampling": {
                "head": {"sampler": "parentbased_traceidratio", "propagators": ["tracecontext", "baggage", "b3"]}
            },
        },
        id="all-languages",
    ),
]


@pytest.mark.parametrize(("cluster", "spec"), CASES)
def test_the_cr_validates_against_the_pinned_crd(cluster: dict[str, Any], spec: dict[str, Any]) -> None:
    cr = operator.instrumentation(context(cluster, **spec))
    group, version = cr["apiVersion"].split("/")
    assert group == "opentelemetry.io"
    jsonschema.validate(cr, crd_schema(cr["kind"], version))


def test_a_wrong_field_fails_the_schema_check() -> None:
    cr = operator.instrumentation(context())
    cr["spec"]["exporter"]["endpoints"] = cr["spec"]["exporter"].pop("endpoint")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cr, crd_schema("Instrumentation", "v1alpha1"))


def test_the_images_are_the_pinned_operators_defaults() -> None:
    versions = dict(
        line.split("=", 1)
        for line in (operator_module() / "versions.txt").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert versions["operator"] == operator.OPERATOR_VERSION
    for language, image in operator.IMAGES.items():
        assert image.endswith(f"/autoinstrumentation-{language}:{versions[f'autoinstrumentation-{language}']}")


def test_the_operator_version_is_the_pinned_crds_version() -> None:
    if not CATALOG.exists():
        pytest.skip("the CRD catalog (src/otelstack/catalog/kubernetes_tools.yaml) is not there")
    pinned = yaml.safe_load(CATALOG.read_text())["crds"]["opentelemetry-operator"]["version"]
    assert pinned == f"v{operator.OPERATOR_VERSION}"


def test_the_cr_points_at_the_node_local_agent_with_the_spec_sampler_and_propagators() -> None:
    ctx = context(
        {"instrumentation": {"languages": ["python"]}},
        cluster_name="eu-1",
        sampling={"head": {"sampler": "parentbased_traceidratio", "propagators": ["tracecontext", "b3"]}},
    )
    spec = operator.instrumentation(ctx)["spec"]
    assert spec["exporter"] == {"endpoint": "http://otel-agent.observability-agent.svc:4318"}
    assert spec["env"] == [{"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"}]
    assert spec["sampler"] == {"type": "parentbased_traceidratio", "argument": "1"}
    assert spec["propagators"] == ["tracecontext", "b3"]
    assert spec["resource"] == {
        "resourceAttributes": {"deployment.environment.name": "dev", "k8s.cluster.name": "eu-1"}
    }
    assert "java" not in spec and "go" not in spec and spec["python"]["image"] == operator.IMAGES["python"]


def test_go_is_left_out_by_default() -> None:
    assert "go" not in operator.instrumentation(context())["spec"]


def test_instrumentation_comes_after_the_operator_and_the_agents() -> None:
    component = operator.instrumentation_component(context())
    assert component is not None
    assert {"operator", "agent"} <= set(component.depends_on)
    assert operator.component(context()) is None  # the operator is already present


def test_install_operator_gives_the_pinned_kustomization_after_cert_manager() -> None:
    ctx = context({"installOperator": True})
    (component,) = render_stack(ctx.spec, ctx.cluster, {}, builders=(operator.component,))
    assert component.source is not None and component.source.version == f"v{operator.OPERATOR_VERSION}"
    assert component.depends_on == ()  # cert-manager is present already: its dependency is dropped
    assert operator.component(context({"installOperator": True})).depends_on == ("cert-manager",)  # type: ignore[union-attr]


def test_tls_to_the_agent_is_refused_clearly() -> None:
    ctx = context(security={"tls": {"apps_to_agent": "tls"}})
    with pytest.raises(ValueError, match="apps_to_agent"):
        operator.instrumentation(ctx)


def test_injection_annotation_names_the_cr() -> None:
    ctx = context({"instrumentation": {"name": "apps"}})
    assert operator.injection_annotation(ctx, "java") == {
        "instrumentation.opentelemetry.io/inject-java": "observability/apps"
    }
    with pytest.raises(ValueError, match="allowed"):
        operator.injection_annotation(ctx, "cobol")
