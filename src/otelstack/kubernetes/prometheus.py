"""Prometheus and Alertmanager in the cluster: StatefulSets running the rendered configs.

Prometheus: ``prometheus/prometheus.yml`` (and ``web.yml`` with TLS) in ConfigMap ``prometheus-config``,
``prometheus/rules/*.yml`` in ``prometheus-rules``, projected together under ``/etc/prometheus`` with the
certificate files (``tls/``) and the OpAMP admin token its scrape job reads (``secrets/``); the args are
``prometheus/flags.txt``; the TSDB is the volume claim at ``/var/lib/prometheus``. Probes: ``/-/ready`` and
``/-/healthy``.

Its ``prometheus.yml`` is the same render with the collectors' jobs (``otel-agent``, ``otel-gateway``) found
as pods (``kubernetes_sd_configs``, :func:`collector_pods`): on VMs the roles write the agents' target
files and the gateways have a DNS name, neither of which exists in the cluster. To list and watch those
pods Prometheus runs as ServiceAccount ``prometheus`` with its token mounted (the only backend that calls
the API), bound to a Role on pods (get, list, watch) in each collectors' namespace — no ClusterRole.

Alertmanager: ``alertmanager/alertmanager.yml`` (and ``web.yml`` with TLS) in ``alertmanager-config``, args
``alertmanager/flags.txt``;
each receiver's secret (``secret_file``, which the render references and never inlines) is a key of the
Secret ``alertmanager-receivers``, mounted as that file: the receivers' files must therefore be under
``/etc/alertmanager/secrets/``. The Secret's values come from the stack's secret config
(``otelstack:secrets.<file name>``).
"""

from __future__ import annotations

import re
from posixpath import basename, dirname
from typing import TYPE_CHECKING

from otelstack.backends import alertmanager as am_render
from otelstack.backends import prometheus as prom_render
from otelstack.errors import SpecError
from otelstack.kubernetes import backend, network
from otelstack.kubernetes.backend import Backend
from otelstack.kubernetes.objects import SECRETS_NAME, Component, K8sObject, checkov_skips, metadata, obj
from otelstack.opamp.cli import ADMIN_TOKEN_ENV
from otelstack.security import flows
from otelstack.security.layout import ALERTMANAGER_PORT, PROMETHEUS_PORT

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

NOBODY = 65534  # the user of the upstream prometheus and alertmanager images
PROMETHEUS = Backend("prometheus", "prometheus", prom_render.CONFIG_DIR, prom_render.DATA_DIR, NOBODY)
ALERTMANAGER = Backend("alertmanager", "alertmanager", am_render.CONFIG_DIR, am_render.DATA_DIR, NOBODY)
RECEIVERS_SECRET = "alertmanager-receivers"
RECEIVERS_DIR = f"{am_render.CONFIG_DIR}/secrets"
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# The files Prometheus' rendered config reads from its secrets directory → the key of otelstack-secrets.
PROMETHEUS_SECRET_FILES = {basename(prom_render.OPAMP_TOKEN_FILE): ADMIN_TOKEN_ENV}
# The rendered jobs whose targets Prometheus finds as pods in the cluster → the flows matrix's tier of those pods.
COLLECTOR_JOBS = {"otel-agent": "agents", "otel-gateway": "gateways"}
RBAC_API = "rbac.authorization.k8s.io/v1"
POD_READER = "prometheus-pods"
TOKEN_EXCEPTION = (("CKV_K8S_38", "Prometheus lists and watches the collectors' pods with this token"),)


def collector_pods(ctx: StackContext) -> dict[str, prom_render.PodTargets]:
    """Job → the collectors' pods: the tier's labels (those the NetworkPolicies select by), in the tier's
    namespace, on the container port the flow Prometheus → tier names (``metrics``, :8888)."""
    found = {}
    for job, tier in COLLECTOR_JOBS.items():
        (flow,) = [f for f in flows.FLOWS if f.source == PROMETHEUS.tier.name and f.target == tier]
        listener = flows.tier(tier).listener(flow.ports[0], flow.protocol)
        labels = tuple(sorted(flows.tier(tier).labels.items()))
        found[job] = prom_render.PodTargets(network.tier_namespace(ctx, tier), labels, listener.name)
    return found


def pod_reader(ctx: StackContext) -> list[K8sObject]:
    """ServiceAccount ``prometheus`` (no token by default: the pod mounts it), and in each namespace of
    :func:`collector_pods` a Role reading pods, bound to it."""
    env = ctx.spec.environment
    name = PROMETHEUS.name
    account = metadata(name, name, namespace=ctx.namespace, environment=env)
    objects = [obj("v1", "ServiceAccount", account, automountServiceAccountToken=False)]
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}]
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    for namespace in sorted({pods.namespace for pods in collector_pods(ctx).values()}):
        where = metadata(POD_READER, name, namespace=namespace, environment=env, app=name)
        objects += [
            obj(RBAC_API, "Role", where, rules=rules),
            obj(RBAC_API, "RoleBinding", where, subjects=subject,
                roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": POD_READER}),
        ]  # fmt: skip
    return objects


def in_cluster_config(ctx: StackContext) -> dict[str, str]:
    """The files of ConfigMap ``prometheus-config``: the rendered ones, ``prometheus.yml`` with the collectors
    found as pods (:func:`otelstack.backends.prometheus.in_cluster_config`: the same render)."""
    return {
        **_config_files(ctx, PROMETHEUS),
        "prometheus.yml": prom_render.in_cluster_config(ctx.spec, collector_pods(ctx)),
    }


def in_cluster_problems(objects: list[K8sObject], backend_files: dict[str, str]) -> list[str]:
    """The real promtool on the in-cluster ``prometheus.yml`` of ConfigMap ``prometheus-config`` among
    ``objects`` (none: nothing to check), with the rendered rules and their tests beside it."""
    found = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prometheus-config"]
    if not found:
        return []
    files = {rel: text for rel, text in backend_files.items() if rel.startswith("prometheus/")}
    return prom_render.check_prometheus_files({**files, prom_render.CONFIG_FILE: found[0]["data"]["prometheus.yml"]})


def _config_files(ctx: StackContext, rendered: Backend) -> dict[str, str]:
    """The top-level YAML files of a rendered directory: the config and, with TLS, web.yml."""
    files = ctx.backend_dir(rendered.render_dir)
    return {name: text for name, text in files.items() if "/" not in name and name.endswith(".yml")}


def _rules(ctx: StackContext) -> dict[str, str]:
    return {
        name.removeprefix("rules/"): t for name, t in ctx.backend_dir("prometheus").items() if name.startswith("rules/")
    }


def prometheus_secret_files(ctx: StackContext) -> dict[str, str]:
    """Key of otelstack-secrets → file name under /etc/prometheus/secrets/, for each secret file the
    rendered config reads."""
    text = ctx.backend_file(prom_render.CONFIG_FILE)
    found = sorted(set(re.findall(re.escape(prom_render.SECRETS_DIR) + r"/([^\s\"']+)", text)))
    unknown = [name for name in found if name not in PROMETHEUS_SECRET_FILES]
    if unknown:
        raise ValueError(
            f"the rendered prometheus.yml reads secret files the stack cannot provide: {', '.join(unknown)}"
        )
    return {PROMETHEUS_SECRET_FILES[name]: name for name in found}


def secret_names(ctx: StackContext) -> tuple[str, ...]:
    """Keys of the platform's otelstack-secrets the backends of this module read."""
    if not backend.runs(ctx, PROMETHEUS.name):
        return ()
    return tuple(sorted(prometheus_secret_files(ctx)))


def prometheus_component(ctx: StackContext) -> Component | None:
    if not backend.runs(ctx, PROMETHEUS.name):
        return None
    spec = ctx.spec
    backend.require_spec_backend(ctx, "prometheus", spec.backends.prometheus.enabled)
    backend.check_endpoint(ctx, "prometheus", "backends.prometheus.endpoint", spec.backends.prometheus.endpoint,
                           PROMETHEUS_PORT)  # fmt: skip
    config, rules = in_cluster_config(ctx), _rules(ctx)
    secrets = prometheus_secret_files(ctx)
    sources = [
        backend.config_map_source("prometheus-config", config),
        backend.config_map_source("prometheus-rules", rules, "rules/"),
        *backend.tls_sources(ctx, PROMETHEUS),
    ]
    if secrets:
        sources.append(backend.secret_source(SECRETS_NAME, {k: f"secrets/{v}" for k, v in secrets.items()}))
    args = backend.mapped_flags(
        ctx.backend_file(prom_render.FLAGS_FILE),
        {PROMETHEUS.config_dir: PROMETHEUS.config_dir, PROMETHEUS.data_dir: PROMETHEUS.data_dir},
    )
    scheme = "HTTPS" if prom_render.serves_tls(spec) else "HTTP"
    probe = backend.probes("/-/ready", "http", scheme, live="/-/healthy")
    main = backend.container(ctx, PROMETHEUS, args=args, probe=probe)
    pod = {
        **backend.pod_spec(ctx, PROMETHEUS, main, sources),
        "serviceAccountName": PROMETHEUS.name,
        "automountServiceAccountToken": True,  # kubernetes_sd_configs calls the API server with it
    }
    checksum = backend.checksum([*config.values(), *rules.values(), *args])
    workload = backend.statefulset(ctx, PROMETHEUS, pod, checksum)
    workload["metadata"]["annotations"] = checkov_skips(TOKEN_EXCEPTION)
    objects = [
        *pod_reader(ctx),
        *backend.tls_certificate(ctx, PROMETHEUS),
        *backend.config_maps(ctx, PROMETHEUS, {"config": config, "rules": rules}),
        backend.service(ctx, PROMETHEUS),
        workload,
    ]
    return Component("prometheus", tuple(objects), depends_on=backend.depends(ctx))


def receiver_files(ctx: StackContext) -> dict[str, str]:
    """Secret key → file name for every receiver of the spec (its ``secret_file``)."""
    out: dict[str, str] = {}
    for receiver in ctx.spec.alerting.receivers:
        path = receiver.secret_file
        name = basename(path)
        if dirname(path) != RECEIVERS_DIR or not SECRET_KEY.match(name):
            raise SpecError(
                f"`alerting.receivers` {receiver.name!r}: secret_file is {path!r}; on Kubernetes the receivers' "
                f"secrets are keys of Secret {RECEIVERS_SECRET} mounted in {RECEIVERS_DIR}/; allowed: "
                f"{RECEIVERS_DIR}/<name> with a name of letters, digits, '-', '_' and '.'"
            )
        out[name] = name
    return out


def alertmanager_component(ctx: StackContext) -> Component | None:
    if not backend.runs(ctx, ALERTMANAGER.name):
        return None
    target = prom_render.alertmanager_target(ctx.spec)
    backend.check_endpoint(
        ctx, "alertmanager", "the Alertmanager address derived from backends.prometheus.endpoint", target,
        ALERTMANAGER_PORT,
    )  # fmt: skip
    config = _config_files(ctx, ALERTMANAGER)  # alertmanager.yml and, with TLS, web.yml
    receivers = receiver_files(ctx)
    sources = [backend.config_map_source("alertmanager-config", config), *backend.tls_sources(ctx, ALERTMANAGER)]
    objects: list[K8sObject] = [*backend.tls_certificate(ctx, ALERTMANAGER)]
    if receivers:
        sources.append(backend.secret_source(RECEIVERS_SECRET, {k: f"secrets/{v}" for k, v in receivers.items()}))
        objects.append(backend.config_secret(ctx, ALERTMANAGER, RECEIVERS_SECRET, receivers))
    args = backend.mapped_flags(
        ctx.backend_file(am_render.FLAGS_FILE),
        {ALERTMANAGER.config_dir: ALERTMANAGER.config_dir, ALERTMANAGER.data_dir: ALERTMANAGER.data_dir},
    )
    probe = backend.probes(
        "/-/ready", "http", "HTTPS" if prom_render.serves_tls(ctx.spec) else "HTTP", live="/-/healthy"
    )
    main = backend.container(ctx, ALERTMANAGER, args=args, probe=probe)
    pod = backend.pod_spec(ctx, ALERTMANAGER, main, sources)
    checksum = backend.checksum([*config.values(), *args])
    objects += [
        *backend.config_maps(ctx, ALERTMANAGER, {"config": config}),
        backend.service(ctx, ALERTMANAGER),
        backend.statefulset(ctx, ALERTMANAGER, pod, checksum),
    ]
    return Component("alertmanager", tuple(objects), depends_on=backend.depends(ctx))
