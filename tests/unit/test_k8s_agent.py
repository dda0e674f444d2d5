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
    binding = find(prod, "ClusterRoleBinding")
    assert binding["subjects"] == [AGENT_ACCOUNT]
    assert binding["metadata"]["name"] == "otelstack-observability-agent-otel-agent"


AGENT_ACCOUNT = {"kind": "ServiceAccount", "name": "otel-agent", "namespace": "observability-agent"}


def test_the_agent_always_resolves_the_gateways_headless_service_with_an_endpointslices_role(prod: tuple) -> None:  # type: ignore[type-arg]
    # prod's spec resolves the VM gateways by DNS (gateways.prod.internal); the Kubernetes agent ignores it.
    assert load_spec(CONFIGS, "prod").tiers.agent.resolver.kind == "dns"
    config = yaml.safe_load(find(prod, "ConfigMap", "otel-agent")["data"]["agent-k8s.yaml"])
    lb = next(v for k, v in config["exporters"].items() if k.startswith("load"))
    assert lb["resolver"] == {"k8s": {"service": "otel-gateway-headless.observability", "ports": [4317]}}
    # Role in the gateways' namespace, bound to the agents' account in theirs.
    role = find(prod, "Role", "otel-agent-endpointslices")
    assert role["metadata"]["namespace"] == "observability"
    assert role["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
    ]
    binding = find(prod, "RoleBinding", "otel-agent-endpointslices")
    assert binding["metadata"]["namespace"] == "observability" and binding["subjects"] == [AGENT_ACCOUNT]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }


def test_the_gateway_certificate_names_what_the_agents_verify(prod: tuple) -> None:  # type: ignore[type-arg]
    config = yaml.safe_load(find(prod, "ConfigMap", "otel-agent")["data"]["agent-k8s.yaml"])
    lb = next(v for k, v in config["exporters"].items() if k.startswith("load"))
    override = lb["protocol"]["otlp"]["tls"]["server_name_override"]
    assert override == "otel-gateway-headless.observability.svc.cluster.local"
    balanced = next(v for k, v in config["exporters"].items() if k.endswith("/gateway"))["endpoint"]
    assert balanced == f"dns:///{override}:4317"
    names = find(prod, "Certificate", "otel-gateway-server")["spec"]["dnsNames"]
    assert override in names
    assert "gateways.prod.internal" not in names, "the VM gateways' name: no Kubernetes agent dials it"


def test_the_agents_run_in_their_own_privileged_namespace_everything_else_restricted(prod: tuple) -> None:  # type: ignore[type-arg]
    namespaces = {o["metadata"]["name"]: o["metadata"]["labels"] for c in prod for o in c.objects
                  if o["kind"] == "Namespace"}  # fmt: skip
    assert set(namespaces) == {"observability", "observability-agent"}
    modes = ("enforce", "audit", "warn")
    assert [namespaces["observability"][f"pod-security.kubernetes.io/{m}"] for m in modes] == ["restricted"] * 3
    agents = [namespaces["observability-agent"][f"pod-security.kubernetes.io/{m}"] for m in modes]
    assert agents == ["privileged", "restricted", "restricted"]
    assert namespaces["observability-agent"]["pod-security.kubernetes.io/enforce-version"] == "v1.37"
    agent_objects = {(o["kind"], o["metadata"]["name"]) for c in prod if c.name == "agent" for o in c.objects
                     if o["metadata"].get("namespace") == "observability-agent"}  # fmt: skip
    assert agent_objects == {("ServiceAccount", "otel-agent"), ("ConfigMap", "otel-agent"),
                             ("DaemonSet", "otel-agent"), ("Service", "otel-agent")}  # fmt: skip
    # Only the agent has hostPath volumes: nothing else may leave the restricted namespace.
    for c in prod:
        for o in c.objects:
            if o["kind"] in ("DaemonSet", "StatefulSet", "Deployment") and o["metadata"]["name"] != "otel-agent":
                assert o["metadata"]["namespace"] == "observability"
    named = stack("prod", {"agentNamespace": "telemetry-nodes"})
    assert find(named, "DaemonSet", "otel-agent")["metadata"]["namespace"] == "telemetry-nodes"
    assert find(named, "Namespace", "telemetry-nodes")


def test_the_agents_secret_holds_only_the_keys_their_config_reads(prod: tuple) -> None:  # type: ignore[type-arg]
    platform = find(prod, "Secret", namespace="observability")
    agents = find(prod, "Secret", namespace="observability-agent")
    config = find(prod, "ConfigMap", "otel-agent")["data"]["agent-k8s.yaml"]
    assert agents["metadata"]["name"] == SECRETS_NAME
    assert agents["metadata"]["annotations"] == {"otelstack.io/values-from": "pulumi-config"}
    assert set(agents["stringData"]) == {k for k in platform["stringData"] if f"${{env:{k}}}" in config}
    assert set(agents["stringData"]) == {"OTELSTACK_INGEST_TOKEN", "OTELSTACK_OPAMP_TOKEN"}
    assert "OTELSTACK_CLICKHOUSE_PASSWORD" in platform["stringData"], "the gateways', not the agents'"
    env = pod_spec(find(prod, "DaemonSet", "otel-agent"))["containers"][0]["env"]
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == set(agents["stringData"])


def test_agent_certificates_are_issued_in_its_namespace_by_the_ca_cluster_issuer(prod: tuple) -> None:  # type: ignore[type-arg]
    issuer = find(prod, "ClusterIssuer", "otelstack-observability-ca")
    assert "namespace" not in issuer["metadata"]
    assert issuer["spec"] == {"ca": {"secretName": "otelstack-observability-ca"}}
    # A ClusterIssuer reads its CA Secret from cert-manager's cluster resource namespace.
    ca = find(prod, "Certificate", "otelstack-observability-ca")
    assert ca["metadata"]["namespace"] == "cert-manager" and ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"] == {"name": "otelstack-observability-selfsigned", "kind": "Issuer",
                                       "group": "cert-manager.io"}  # fmt: skip
    assert find(prod, "Issuer", "otelstack-observability-selfsigned")["metadata"]["namespace"] == "cert-manager"
    client = find(prod, "Certificate", "otel-agent-client")
    assert client["metadata"]["namespace"] == "observability-agent"
    for cert in (client, find(prod, "Certificate", "otel-gateway-server")):
        assert cert["spec"]["issuerRef"] == {"name": "otelstack-observability-ca", "kind": "ClusterIssuer",
                                             "group": "cert-manager.io"}  # fmt: skip
    # Every pod's ca.crt comes from one of its own leaf Secrets (the CA's Secret is in cert-manager's namespace).
    for kind, name in WORKLOADS[:2]:
        tls = next(v for v in pod_spec(find(prod, kind, name))["volumes"] if v["name"] == "tls")
        ca_items = [s["secret"]["name"] for s in tls["projected"]["sources"]
                    for i in s["secret"]["items"] if i["path"] == "ca.crt"]  # fmt: skip
        assert ca_items == [tls["projected"]["sources"][0]["secret"]["name"]]
        assert ca_items[0].startswith(name)
    other = stack("prod", {"certManagerNamespace": "pki"})
    assert find(other, "Certificate", "otelstack-observability-ca")["metadata"]["namespace"] == "pki"


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
    # The agents' own logs are excluded in their namespace, whichever the stack chose.
    assert env["K8S_POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    config = yaml.safe_load(find(prod, "ConfigMap", "otel-agent")["data"]["agent-k8s.yaml"])
    pod_logs = next(v for k, v in config["receivers"].items() if k.endswith("/pods"))
    assert pod_logs["exclude"] == ["/var/log/pods/${env:K8S_POD_NAMESPACE}_otel-agent-*/*/*.log"]
    assert env["OTELSTACK_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == SECRETS_NAME


def test_agent_service_is_node_local(prod: tuple) -> None:  # type: ignore[type-arg]
    service = find(prod, "Service", "otel-agent")
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    assert service["metadata"]["namespace"] == "observability-agent"


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
    assert cert["spec"]["usages"] == ["digital signature", "key encipherment", "server auth"]


def test_opamp_server_sqlite_recreate_and_postgres_replicas() -> None:
    one = stack("prod", {"opampServer": {"image": OPAMP_IMAGE}})
    assert find(one, "Deployment", "otelstack-opamp")["spec"]["strategy"] == {"type": "Recreate"}
    assert find(one, "PersistentVolumeClaim", "otelstack-opamp-data")
    many = stack(
        "prod",
        {"opampServer": {"image": OPAMP_IMAGE, "replicas": 3,
                         "postgresql": {"url": "postgresql://opamp@pg:5432/opamp",
                                        "passwordSecretKey": "PG_PASSWORD"}}},
    )  # fmt: skip
    deployment = find(many, "Deployment", "otelstack-opamp")
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "PG_PASSWORD" in find(many, "Secret", namespace="observability")["stringData"]
    settings = yaml.safe_load(find(many, "ConfigMap", "otelstack-opamp")["data"]["server.yaml"])
    assert settings["postgresql"]["password"] == {"env": "OTELSTACK_OPAMP_POSTGRESQL_PASSWORD"}
    assert settings["tls"]["cert_file"].endswith("tls.crt")


def test_no_secret_value_is_rendered(prod: tuple) -> None:  # type: ignore[type-arg]
    for namespace in ("observability", "observability-agent"):
        secret = find(prod, "Secret", namespace=namespace)
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
