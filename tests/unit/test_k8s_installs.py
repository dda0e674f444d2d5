"""cert-manager and the OpenTelemetry Operator installed by the stack (installCertManager/installOperator),
the cluster DNS domain, and what `plan` exports for a third-party installation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.errors import SpecError
from otelstack.kubernetes import operator
from otelstack.kubernetes.objects import pinned_module
from otelstack.kubernetes.settings import ClusterSettings, parse_cluster
from otelstack.kubernetes.stack import SOURCES_DIR, export_stack
from tests.unit.k8s_helpers import ROOT, find, stack

INSTALLS = {"installCertManager": True, "installOperator": True}


def component(components: tuple[Any, ...], name: str) -> Any:
    return next(c for c in components if c.name == name)


def test_both_installs_are_accepted_and_off_by_default() -> None:
    assert (ClusterSettings().install_cert_manager, ClusterSettings().install_operator) == (False, False)
    settings = parse_cluster(INSTALLS)
    assert settings.install_cert_manager and settings.install_operator
    names = [c.name for c in stack("dev", INSTALLS)]
    assert names.index("cert-manager") < names.index("certificates") < names.index("instrumentation")
    assert names.index("cert-manager") < names.index("operator") < names.index("instrumentation")
    assert "cert-manager" not in [c.name for c in stack("dev")] and "operator" not in [c.name for c in stack("dev")]


@pytest.mark.parametrize(
    ("cluster", "key", "message"),
    [
        ({"clusterDomain": "Cluster.Local"}, "clusterDomain", "is not a DNS domain"),
        ({"clusterDomain": "cluster.local."}, "clusterDomain", "without a trailing dot"),
        ({"clusterDomain": "-x.local"}, "clusterDomain", "is not a DNS domain"),
        ({"clusterDomain": "a" * 64 + ".local"}, "clusterDomain", "at most 63"),
        ({"installCertManager": "sometimes"}, "installCertManager", "valid boolean"),
        ({"operatorNamespace": "Operators"}, "operatorNamespace", "is not a namespace name"),
        ({**INSTALLS, "operatorNamespace": "observability"}, "operatorNamespace", "the namespace of `namespace`"),
        ({**INSTALLS, "operatorNamespace": "cert-manager"}, "operatorNamespace",
         "the namespace of `operatorNamespace` too"),
        ({"installCertManager": True, "certManagerNamespace": "observability-agent"}, "agentNamespace",
         "a namespace the stack uses for something else"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key(cluster: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_cluster(cluster, source="Pulumi.dev.yaml")
    text = str(err.value) + " ".join(err.value.issues or [])
    assert "Pulumi.dev.yaml" in text and key in text, text
    assert message in text, text


def test_the_cluster_domain_reaches_certificates_and_the_agent_config() -> None:
    default = stack("prod")
    other = stack("prod", {"clusterDomain": "k8s.example.org"})
    names = find(other, "Certificate", "otel-gateway-server")["spec"]["dnsNames"]
    assert "otel-gateway-headless.observability.svc.k8s.example.org" in names
    assert "*.otel-gateway-headless.observability.svc.k8s.example.org" in names
    assert not [n for n in names if n.endswith("cluster.local")]
    config = yaml.safe_load(find(other, "ConfigMap", "otel-agent")["data"]["agent-k8s.yaml"])
    lb = next(v for k, v in config["exporters"].items() if k.startswith("load"))
    assert lb["protocol"]["otlp"]["tls"]["server_name_override"] == (
        "otel-gateway-headless.observability.svc.k8s.example.org"
    )
    # the default stays byte for byte what it was (cluster.local)
    default_config = find(default, "ConfigMap", "otel-agent")["data"]["agent-k8s.yaml"]
    assert "svc.cluster.local" in default_config and "k8s.example.org" not in default_config


def test_cert_manager_chart_is_the_pinned_module_with_pinned_images_resources_and_crds() -> None:
    cm = component(stack("dev", {**INSTALLS, "certManagerNamespace": "certs"}), "cert-manager")
    module, version = pinned_module("cert-manager")
    assert cm.source.kind == "helm-chart" and cm.source.namespace == "certs"
    assert (cm.source.module, cm.source.version, cm.source.path) == (module, version, "deploy/charts/cert-manager")
    values = cm.source.values
    assert values["crds"] == {"enabled": True, "keep": True}
    assert values["global"]["leaderElection"]["namespace"] == "certs"
    for part in (values, values["webhook"], values["cainjector"]):
        assert part["image"]["tag"] == version
        assert set(part["resources"]) == {"requests", "limits"}
    assert values["acmesolver"]["image"]["tag"] == version and values["startupapicheck"] == {"enabled": False}
    (namespace,) = cm.objects
    assert namespace["metadata"]["name"] == "certs"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_chart_values_are_keys_of_the_pinned_chart() -> None:
    """Every value we pass exists in the chart's own values.yaml (the chart's schema forbids others)."""
    from stacks.components.third_party import source_dir

    cm = component(stack("dev", INSTALLS), "cert-manager")
    chart_values = yaml.safe_load((source_dir(cm.source) / "values.yaml").read_text())

    def check(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
        for key, value in ours.items():
            assert key in theirs or key in ("tag", "digest"), f"{where}{key} is not a value of the chart"
            if isinstance(value, dict) and isinstance(theirs.get(key), dict) and theirs[key]:
                check(value, theirs[key], f"{where}{key}.")

    check(dict(cm.source.values), chart_values, "")


def test_operator_kustomization_overlay_pins_image_namespace_and_hardening() -> None:
    op = component(stack("dev", {**INSTALLS, "operatorNamespace": "otel-operator"}), "operator")
    module, version = pinned_module("opentelemetry-operator")
    assert (op.source.kind, op.source.module, op.source.version, op.source.path) == (
        "kustomize",
        module,
        version,
        "config/default",
    )
    assert op.depends_on == ("cert-manager",)
    namespace, deny, policy = op.objects
    assert (namespace["kind"], namespace["metadata"]["name"]) == ("Namespace", "otel-operator")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert deny["spec"]["podSelector"] == {} and policy["metadata"]["namespace"] == "otel-operator"
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == {9443, 8443}
    delete = yaml.safe_load(next(p["patch"] for p in op.source.values["patches"] if p["target"]["kind"] == "Namespace"))
    assert delete["$patch"] == "delete"  # the kustomization's own Namespace gives way to ours
    overlay = op.source.values
    assert overlay["namespace"] == "otel-operator"
    assert overlay["images"] == [{"name": "controller", "newName": operator.OPERATOR_IMAGE, "newTag": "0.153.0"}]
    manager = yaml.safe_load(next(p["patch"] for p in overlay["patches"] if p["target"]["kind"] == "Deployment"))
    container = manager["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "manager" and set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_overlay_targets_names_of_the_pinned_kustomization() -> None:
    """The names our patches target are the names config/default gives (namePrefix + manager.yaml)."""
    from stacks.components.third_party import source_dir

    op = component(stack("dev", INSTALLS), "operator")
    directory = source_dir(op.source)
    default = yaml.safe_load((directory / "kustomization.yaml").read_text())
    manager = [d for d in yaml.safe_load_all((directory.parent / "manager" / "manager.yaml").read_text()) if d]
    deployment = next(d for d in manager if d["kind"] == "Deployment")
    assert default["namePrefix"] + deployment["metadata"]["name"] == operator.MANAGER
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "controller"


def test_without_the_install_the_instrumentation_does_not_wait_for_an_operator_component() -> None:
    (instrumentation,) = [c for c in stack("dev") if c.name == "instrumentation"]
    assert "operator" not in instrumentation.depends_on
    (instrumentation,) = [c for c in stack("dev", INSTALLS) if c.name == "instrumentation"]
    assert "operator" in instrumentation.depends_on


def test_export_records_the_sources_apart_from_the_objects() -> None:
    files = export_stack(stack("dev", INSTALLS), header="test")
    sources = {k: v for k, v in files.items() if k.startswith(f"{SOURCES_DIR}/")}
    assert sorted(sources) == [f"{SOURCES_DIR}/02-cert-manager.yaml", f"{SOURCES_DIR}/06-operator.yaml"], sorted(files)
    chart = yaml.safe_load(sources[f"{SOURCES_DIR}/02-cert-manager.yaml"])
    assert chart["source"] == {"module": "github.com/cert-manager/cert-manager", "version": "v1.21.2",
                               "path": "deploy/charts/cert-manager"}  # fmt: skip
    assert chart["values"]["crds"]["enabled"] is True
    kustomization = yaml.safe_load(sources[f"{SOURCES_DIR}/06-operator.yaml"])
    assert kustomization["overlay"]["namespace"] == "opentelemetry-operator-system"
    assert [d["kind"] for d in yaml.safe_load_all(files["k8s/06-operator.yaml"]) if d] == [
        "Namespace",
        "NetworkPolicy",
        "NetworkPolicy",
    ]
    assert yaml.safe_load(files["k8s/02-cert-manager.yaml"].split("---\n", 1)[1])["kind"] == "Namespace"


def test_plan_exports_sources_and_still_validates_our_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan` on a tree whose dev stack installs both: the sources are exported, and our own objects — and
    only they, not the source records — go to the validators (schemas, CRDs, checkov); a validator's
    finding on them fails the plan."""
    import shutil

    from otelstack import render
    from otelstack.errors import ConfigValidationError
    from otelstack.validate.kubernetes import Report

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    stack_file = tmp_path / "stacks" / "platform" / "Pulumi.dev.yaml"
    stack_file.parent.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "stacks/platform/Pulumi.dev.yaml").read_text())
    config["config"]["otelstack:cluster"].update(INSTALLS)
    stack_file.write_text(yaml.safe_dump(config))
    seen: list[tuple[list[Any], dict[str, str]]] = []
    verdict: list[str] = []

    def validate(objects: Any, files: Any, **_kw: Any) -> Report:
        seen.append((list(objects), dict(files)))
        return Report(errors=list(verdict))

    monkeypatch.setattr(render, "validate_objects", validate)
    monkeypatch.setattr(render, "run_otelcol_validate", lambda *_a: None)  # collector configs: other tests
    result = render.render_platform(tmp_path / "configs", "dev")
    assert sorted(f for f in result.files if f.startswith(f"{SOURCES_DIR}/")) == [
        f"{SOURCES_DIR}/02-cert-manager.yaml",
        f"{SOURCES_DIR}/06-operator.yaml",
    ]
    ((objects, files),) = seen
    assert files and not [f for f in files if f.startswith(f"{SOURCES_DIR}/")]
    assert {"k8s/02-cert-manager.yaml", "k8s/06-operator.yaml"} <= set(files)
    assert ("Namespace", "opentelemetry-operator-system") in {(o["kind"], o["metadata"]["name"]) for o in objects}
    verdict.append("checkov CKV_K8S_0 (a finding): NetworkPolicy in 06-operator.yaml")
    with pytest.raises(ConfigValidationError, match="invalid; nothing was written"):
        render.render_platform(tmp_path / "configs", "dev")


def test_plan_renders_the_agent_config_in_the_stack_s_cluster_domain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's clusterDomain reaches plan's own agent-k8s render, and the ConfigMap carries it byte for
    byte; the VM profiles do not change."""
    import shutil

    from otelstack import render
    from otelstack.validate.kubernetes import Report

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    stack_file = tmp_path / "stacks" / "platform" / "Pulumi.dev.yaml"
    stack_file.parent.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "stacks/platform/Pulumi.dev.yaml").read_text())
    config["config"]["otelstack:cluster"]["clusterDomain"] = "k8s.example.org"
    stack_file.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(render, "validate_objects", lambda *_a, **_k: Report())
    monkeypatch.setattr(render, "run_otelcol_validate", lambda *_a: None)
    files = render.render_platform(tmp_path / "configs", "dev").files
    agent = files["collector/agent-k8s.yaml"]
    assert "otel-gateway-headless.observability.svc.k8s.example.org" in agent and "cluster.local" not in agent
    configmap = next(d for d in yaml.safe_load_all(files["k8s/03-agent.yaml"]) if d and d["kind"] == "ConfigMap")
    assert configmap["data"]["agent-k8s.yaml"] == agent
    default = render.render_platform(ROOT / "configs", "dev").files
    assert files["collector/agent-vm.yaml"] == default["collector/agent-vm.yaml"]
