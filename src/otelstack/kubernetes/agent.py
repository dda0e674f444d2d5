"""The agent tier on Kubernetes: a DaemonSet running the plan's ``agent-k8s`` config.

RBAC is exactly what the config's components call (READMEs and sources at v0.159.0):

- k8s_attributes (``processor/k8sattributesprocessor``): a pod informer (get, list, watch pods). No
  namespace informer (no namespace labels/annotations, no k8s.cluster.uid) and no ReplicaSet informer
  (k8s.deployment.name is derived from the ReplicaSet name: internal/kube/client.go);
- kubeletstats: ``nodes/stats`` get (no extra_metadata_labels, no k8s_api_config: nothing else);
- load_balancing with the k8s resolver, which the agent-k8s profile always uses (the gateways are the
  StatefulSet behind the headless Service): get, list, watch ``discovery.k8s.io`` EndpointSlices in the
  gateways' namespace (a Role there, bound to the agent's ServiceAccount in the agents' namespace).

The agents run in a namespace of their own (``cluster.agentNamespace``, default ``<namespace>-agent``, Pod
Security enforce ``privileged``, audit and warn ``restricted``: namespace.py): the hostPath volumes below
are refused by ``baseline`` and ``restricted`` alike, and every other workload stays in the ``restricted``
platform namespace.

Host mounts: ``/var/log/pods`` read-only (the file_log include; with containerd and CRI-O these are the
log files themselves, not links, so ``/var/log/containers`` is not needed), a hostPath directory for the
checkpoints and the persistent queue (``/var/lib/otelstack/agent``, created if absent), and the kubelet
CA file when ``tiers.agent.kubelet_ca`` is ``file:/path``. The container runs as uid 0 *without any
capability*: kubelet creates the hostPath directory root-owned (0755) and writes pod logs root-owned
(0640), so only the owner can write the one and read the other; every capability is dropped, the root
filesystem is read-only and privilege escalation is off (docs/kubernetes/collectors.md). A non-root uid
with ``supplementalGroups: [0]`` could read the logs (group root, 0640) but not write the checkpoint
directory (root 0755), and fsGroup does not apply to hostPath volumes; chowning it would take a root init
container with CAP_CHOWN, which is more privilege, not less.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstack.kubernetes import certificates
from otelstack.kubernetes.collector import (
    CONFIG_VOLUME,
    STATE_VOLUME,
    collector_container,
    config_checksum,
    config_map,
    scheduling,
    tls_volume,
)
from otelstack.kubernetes.objects import (
    AGENT_CLIENT_SECRET,
    AGENT_NAME,
    AGENT_PROFILE,
    AGENT_SERVER_SECRET,
    CONFIG_CHECKSUM_ANNOTATION,
    Component,
    K8sObject,
    checkov_skips,
    labels,
    metadata,
    obj,
    selector_labels,
)
from otelstack.security.layout import K8S, OTLP_GRPC_PORT, OTLP_HTTP_PORT

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

PROFILE = AGENT_PROFILE
COMPONENT = "agent"
HOST_STATE_DIR = "/var/lib/otelstack/agent"
POD_LOGS = "/var/log/pods"
# The variables the agent config reads from the pod (downward API).
FIELDS = {
    "K8S_NODE_NAME": "spec.nodeName",
    "K8S_NODE_IP": "status.hostIP",
    "K8S_POD_NAME": "metadata.name",
    # The agents' own namespace: the file_log receiver excludes its pods' logs by it.
    "K8S_POD_NAMESPACE": "metadata.namespace",
}
RBAC_API = "rbac.authorization.k8s.io/v1"


# The agent's documented exception (module text; docs/kubernetes/collectors.md), skipped in checkov on its
# DaemonSet alone: every other workload is still held to these checks.
ROOT_EXCEPTION = (
    ("CKV_K8S_23", "uid 0 without any capability: kubelet writes pod logs root 0640 and the hostPath state dir 0755"),
    ("CKV_K8S_40", "the same uid 0 exception; every other workload runs as 10001"),
    ("CKV_K8S_38", "the k8s_attributes processor and kubeletstats receiver call the API with this token"),
)


def cluster_rules() -> list[K8sObject]:
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/stats"], "verbs": ["get"]},
    ]


def endpointslice_rules() -> list[K8sObject]:
    return [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}]


def _rbac(ctx: StackContext) -> list[K8sObject]:
    env = ctx.spec.environment
    ns = ctx.agent_namespace
    subject = [{"kind": "ServiceAccount", "name": AGENT_NAME, "namespace": ns}]
    cluster_name = f"otelstack-{ns}-{AGENT_NAME}"  # cluster-scoped: unique per agents' namespace
    objects = [
        obj("v1", "ServiceAccount", metadata(AGENT_NAME, COMPONENT, namespace=ns, environment=env),
            automountServiceAccountToken=False),
        obj(RBAC_API, "ClusterRole", metadata(cluster_name, COMPONENT, environment=env, app=AGENT_NAME),
            rules=cluster_rules()),
        obj(RBAC_API, "ClusterRoleBinding", metadata(cluster_name, COMPONENT, environment=env, app=AGENT_NAME),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            subjects=subject),
    ]  # fmt: skip
    # The k8s resolver watches the gateways' headless Service: a Role in the gateways' namespace.
    name = f"{AGENT_NAME}-endpointslices"
    gateways = ctx.namespace
    objects += [
        obj(RBAC_API, "Role", metadata(name, COMPONENT, namespace=gateways, environment=env, app=AGENT_NAME),
            rules=endpointslice_rules()),
        obj(RBAC_API, "RoleBinding", metadata(name, COMPONENT, namespace=gateways, environment=env, app=AGENT_NAME),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}, subjects=subject),
    ]  # fmt: skip
    return objects


def _volumes(ctx: StackContext) -> tuple[list[K8sObject], list[K8sObject]]:
    secrets = [(AGENT_CLIENT_SECRET, "client")]
    if certificates.app_to_agent_tls(ctx):
        secrets.append((AGENT_SERVER_SECRET, "server"))
    volumes: list[K8sObject] = [
        {"name": CONFIG_VOLUME, "configMap": {"name": AGENT_NAME}},
        tls_volume(secrets),
        {"name": "pod-logs", "hostPath": {"path": POD_LOGS, "type": "Directory"}},
        {"name": STATE_VOLUME, "hostPath": {"path": HOST_STATE_DIR, "type": "DirectoryOrCreate"}},
    ]
    mounts: list[K8sObject] = [
        {"name": "pod-logs", "mountPath": POD_LOGS, "readOnly": True},
        {"name": STATE_VOLUME, "mountPath": K8S.state_dir},
    ]
    kubelet_ca = ctx.spec.tiers.agent.kubelet_ca
    if kubelet_ca.startswith("file:"):
        path = kubelet_ca.removeprefix("file:")
        volumes.append({"name": "kubelet-ca", "hostPath": {"path": path, "type": "File"}})
        mounts.append({"name": "kubelet-ca", "mountPath": path, "readOnly": True})
    return volumes, mounts


def daemonset(ctx: StackContext) -> K8sObject:
    env = ctx.spec.environment
    volumes, mounts = _volumes(ctx)
    container = collector_container(
        ctx,
        PROFILE,
        ctx.sizing.agent,
        ports=[("otlp-grpc", OTLP_GRPC_PORT), ("otlp-http", OTLP_HTTP_PORT)],
        fields=FIELDS,
        mounts=mounts,
        run_as_root=True,
    )
    pod: K8sObject = {
        "serviceAccountName": AGENT_NAME,
        # The token is mounted here, not on the account: k8s_attributes and kubeletstats use it.
        "automountServiceAccountToken": True,
        "securityContext": {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 30,
        **scheduling(ctx),
        "containers": [container],
        "volumes": volumes,
    }  # fmt: skip
    template_meta = {
        "labels": labels(COMPONENT, AGENT_NAME, env),
        "annotations": {CONFIG_CHECKSUM_ANNOTATION: config_checksum(ctx.collector_config(PROFILE))},
    }
    return obj(
        "apps/v1",
        "DaemonSet",
        metadata(
            AGENT_NAME,
            COMPONENT,
            namespace=ctx.agent_namespace,
            environment=env,
            annotations=checkov_skips(ROOT_EXCEPTION),
        ),
        spec={
            "selector": {"matchLabels": selector_labels(COMPONENT, AGENT_NAME)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": template_meta, "spec": pod},
        },
    )


def service(ctx: StackContext) -> K8sObject:
    """The node-local Service ``otel-agent.<agents' namespace>.svc``: an app's OTLP reaches the agent on its
    own node (internalTrafficPolicy)."""
    return obj(
        "v1",
        "Service",
        metadata(AGENT_NAME, COMPONENT, namespace=ctx.agent_namespace, environment=ctx.spec.environment),
        spec={
            "type": "ClusterIP",
            "internalTrafficPolicy": "Local",
            "selector": selector_labels(COMPONENT, AGENT_NAME),
            "ports": [
                {"name": "otlp-grpc", "port": OTLP_GRPC_PORT, "targetPort": "otlp-grpc", "protocol": "TCP"},
                {"name": "otlp-http", "port": OTLP_HTTP_PORT, "targetPort": "otlp-http", "protocol": "TCP"},
            ],
        },
    )


def component(ctx: StackContext) -> Component:
    objects = [
        *_rbac(ctx),
        config_map(ctx, AGENT_NAME, COMPONENT, PROFILE, namespace=ctx.agent_namespace),
        daemonset(ctx),
        service(ctx),
    ]
    return Component(COMPONENT, tuple(objects), depends_on=("namespace", "certificates"))
