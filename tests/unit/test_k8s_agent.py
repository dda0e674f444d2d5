"""The agent DaemonSet, the gateway StatefulSet and the OpAMP server: security, probes, RBAC, volumes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from otelstack.kubernetes.objects import SECRETS_NAME
from otelstack.model.loader import load_spec
from tests.unit.k8s_helpers import CONFIGS, OPAMP_IMAGE, ROOT, find, pod_spec, stack

WORKLOADS = (("DaemonSet", "otel-agent"), ("StatefulSet", "otel-gateway"), ("Deployment", "otelstack-opamp"))


@pytest.fixture(scope="module")
def prod() -> tuple:  # type: ignore[type-arg]
    return stack("prod", {"opampServer": {"image": OPAMP_IMAGE}})


@pytest.mark.parametrize(("kind", "name"), WORKLOADS)
def test_every_container_is_hardened_with_requests_and_limits(prod: tuple, kind: str, name: str) -> None:  # type: ignore[type-arg]
    pod = pod_spec(find(prod, kind, name))
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert set(container["resources"]) == {"requests", "limits"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}
        assert "@" in container["image"] or not container["image"].endswith(":latest")
    if name == "otel-agent":  # the one explained exception: uid 0 without any capability
        assert (
            pod["securityContext"]["runAsUser"] == 0
            and pod["containers"][0]["securityContext"]["runAsNonRoot"] is False
        )
    else:
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True


def test_only_the_agent_mounts_a_service_account_token(prod: tuple) -> None:  # type: ignore[type-arg]
    mounted = {name for kind, name in WORKLOADS if pod_spec(find(prod, kind, name))["automountServiceAccountToken"]}
    assert mounted == {"otel-agent"}


def test_agent_rbac_is_exactly_its_components_needs(prod: tuple) -> None:  # type: ignore[type-arg]
    role = find(prod, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/stats"], "verbs": ["get"]},
    ]
    assert not [o for c in prod for o in c.objects if o["kind"] == "Role"], "prod uses the dns resolver"
    binding = find(prod, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "otel-agent", "namespace": "observability"}]


def test_the_k8s_resolver_adds_an_endpointslices_role_in_the_gateways_namespace() -> None:
    spec = load_spec(CONFIGS, "prod")
    tiers = spec.tiers.model_copy(
        update={
            "agent": spec.tiers.agent.model_copy(
                update={"resolver": spec.tiers.agent.resolver.model_copy(update={"kind": "k8s"})}
            )
        }
    )
    components = stack(spec=spec.model_copy(update={"tiers": tiers}))
    role = find(components, "Role", "otel-agent-endpointslices")
    assert role["metadata"]["namespace"] == "observability"
    assert role["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
    ]


def test_agent_host_mounts_are_logs_read_only_and_its_state_directory(prod: tuple) -> None:  # type: ignore[type-arg]
    pod = pod_spec(find(prod, "DaemonSet", "otel-agent"))
    host = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {
        "pod-logs": {"path": "/var/log/pods", "type": "Directory"},
        "state": {"path": "/var/lib/otelstack/agent", "type": "DirectoryOrCreate"},
    }
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["pod-logs"]["readOnly"] is True and mounts["state"]["mountPath"] == "/var/lib/otelcol"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["K8S_NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["OTELSTACK_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == SECRETS_NAME


def test_agent_service_is_node_local(prod: tuple) -> None:  # type: ignore[type-arg]
    service = find(prod, "Service", "otel-agent")
    assert service["spec"]["internalTrafficPolicy"] == "Local"


@pytest.mark.parametrize(("kind", "name"), WORKLOADS)
def test_probes_hit_the_health_endpoints(prod: tuple, kind: str, name: str) -> None:  # type: ignore[type-arg]
    container = pod_spec(find(prod, kind, name))["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == ("/healthz" if name == "otelstack-opamp" else "/")
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == get["port"])
        assert port == (4320 if name == "otelstack-opamp" else 13133)


def test_gateway_statefulset_queue_claim_drain_and_services(prod: tuple) -> None:  # type: ignore[type-arg]
    sts = find(prod, "StatefulSet", "otel-gateway")
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == "otel-gateway-headless"
    pod = pod_spec(sts)
    drain = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > drain
    headless = find(prod, "Service", "otel-gateway-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is False
    assert find(prod, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    hpa = find(prod, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    assert "replicas" not in sts["spec"], "the HPA owns the replica count"


def test_the_gateway_certificate_names_the_headless_service_and_its_pods(prod: tuple) -> None:  # type: ignore[type-arg]
    cert = find(prod, "Certificate", "otel-gateway-server")
    names = cert["spec"]["dnsNames"]
    assert "otel-gateway-headless.observability.svc" in names
    assert "*.otel-gateway-headless.observability.svc" in names
    assert "gateways.prod.internal" in names  # the prod spec's dns resolver name
    assert cert["spec"]["usages"] == ["digital signature", "key encipherment", "server auth"]


def test_opamp_server_sqlite_recreate_and_postgres_replicas() -> None:
    one = stack("prod", {"opampServer": {"image": OPAMP_IMAGE}})
    assert find(one, "Deployment", "otelstack-opamp")["spec"]["strategy"] == {"type": "Recreate"}
    assert find(one, "PersistentVolumeClaim", "otelstack-opamp-data")
    many = stack(
        "prod",
        {"opampServer": {"image": OPAMP_IMAGE, "replicas": 3,
                         "postgresql": {"url": "postgresql://opamp@pg:5432/opamp", "passwordSecretKey": "PG_PASSWORD"}}},
    )  # fmt: skip
    deployment = find(many, "Deployment", "otelstack-opamp")
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "PG_PASSWORD" in find(many, "Secret")["stringData"]
    settings = yaml.safe_load(find(many, "ConfigMap", "otelstack-opamp")["data"]["server.yaml"])
    assert settings["postgresql"]["password"] == {"env": "OTELSTACK_OPAMP_POSTGRESQL_PASSWORD"}
    assert settings["tls"]["cert_file"].endswith("tls.crt")


def test_no_secret_value_is_rendered(prod: tuple) -> None:  # type: ignore[type-arg]
    secret = find(prod, "Secret")
    assert set(secret["stringData"].values()) == {""}
    assert secret["metadata"]["annotations"] == {"otelstack.io/values-from": "pulumi-config"}


def test_configmaps_are_byte_identical_to_the_plan_run_as_a_process(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    subprocess.run(
        [sys.executable, "-m", "otelstack.cli", "plan", "--env", "prod", "--configs", str(CONFIGS), "--out", str(out),
         "--quiet"],
        check=True, cwd=ROOT,
    )  # fmt: skip
    docs = [d for f in sorted((out / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    for name, profile in (("otel-agent", "agent-k8s"), ("otel-gateway", "gateway-k8s")):
        assert maps[name][f"{profile}.yaml"] == (out / "collector" / f"{profile}.yaml").read_text()
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert sts["spec"]["template"]["spec"]["containers"][0]["args"] == ["--config=/etc/otelcol/config/gateway-k8s.yaml"]
