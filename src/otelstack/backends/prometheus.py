"""Prometheus 3.16 from the spec: receivers for remote write (the gateways, Tempo's metrics generator) and
native OTLP, exemplar storage, a scrape job per platform component, retention from ``retention.metrics``,
TLS where the spec's hops ask for it, the rules and their tests (``otelstack.backends.rules``).

Files (paths relative to build/ENV/; installed under /etc/prometheus/, which the relative paths keep):

    prometheus/prometheus.yml     the configuration (rule files and file_sd targets relative to it)
    prometheus/flags.txt          the command-line flags, one per line (the unit or the container's args)
    prometheus/web.yml            the HTTPS server settings (--web.config.file), when TLS is on
    prometheus/rules/*.yml        alerting and recording rules
    prometheus/tests/*.yml        `promtool test rules` cases: every alert fires in one, stays silent in another

``check_prometheus`` runs the real promtool on a rendered directory.

In a Kubernetes cluster nothing writes the agents' target files, and the gateways' DNS name is a VM one: the
stack's Prometheus gets the same render with the collectors' jobs found by ``kubernetes_sd_configs`` instead
(:func:`in_cluster_config`, given a :class:`PodTargets` per job by otelstack.kubernetes.prometheus). Only
those jobs' discovery differs; their names (``otel-agent``, ``otel-gateway``), which the rules and dashboards
select by, stay.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from otelstack.backends import rules
from otelstack.backends.promtools import locate_tool, missing_tool, run_tool, scratch_copy, web_config
from otelstack.errors import OtelstackError
from otelstack.model.spec import PlatformSpec, TlsMode
from otelstack.security.layout import (
    ALERTMANAGER_PORT,
    CLICKHOUSE_METRICS_PORT,
    LOKI_HTTP_PORT,
    PROMETHEUS_PORT,
    SELF_METRICS_PORT,
    TEMPO_HTTP_PORT,
)
from otelstack.yamlout import dump

CONFIG_FILE = "prometheus/prometheus.yml"
FLAGS_FILE = "prometheus/flags.txt"
WEB_FILE = "prometheus/web.yml"
CONFIG_DIR = "/etc/prometheus"
DATA_DIR = "/var/lib/prometheus"
TLS_DIR = f"{CONFIG_DIR}/tls"
SECRETS_DIR = f"{CONFIG_DIR}/secrets"
OPAMP_TOKEN_FILE = f"{SECRETS_DIR}/opamp-admin-token"  # the OpAMP server's /metrics takes its admin token
MAX_EXEMPLARS = 100_000
OUT_OF_ORDER_WINDOW = "30m"  # OTLP and remote-write senders retry; late samples within this window are kept
# Resource attributes kept as labels on OTLP-ingested series (the rest stay in target_info).
PROMOTED_RESOURCE_ATTRIBUTES = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment.name",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "cloud.region",
]
# File-discovery directories (relative to the config) and what the roles or the stack write into them.
TARGET_DIRS = {"agents": "agent collectors (:8888)", "nodes": "node_exporter (:9100)"}
HEADER = "Rendered by otelstack (otelstack.backends.prometheus); changes are overwritten on the next plan."


class PrometheusRenderError(OtelstackError):
    """The spec asks for something this render cannot give (named with the key to change)."""


def _host(value: str) -> str:
    """The host of a URL or of host:port."""
    if "://" in value:
        return urlsplit(value).hostname or value
    return value.rsplit(":", 1)[0]


def serves_tls(spec: PlatformSpec) -> bool:
    """Prometheus serves HTTPS when the gateways' remote-write URL is https://."""
    return urlsplit(spec.backends.prometheus.endpoint).scheme == "https"


def alertmanager_target(spec: PlatformSpec) -> str:
    """Alertmanager beside Prometheus: host ``alertmanager`` in the Prometheus host's domain."""
    host = _host(spec.backends.prometheus.endpoint)
    domain = host.split(".", 1)[1] if "." in host else ""
    return f"{'alertmanager.' + domain if domain else 'alertmanager'}:{ALERTMANAGER_PORT}"


def tls_client(mutual: bool) -> dict[str, Any]:
    config: dict[str, Any] = {"ca_file": f"{TLS_DIR}/ca.crt", "min_version": "TLS13"}
    if mutual:
        config |= {"cert_file": f"{TLS_DIR}/client.crt", "key_file": f"{TLS_DIR}/client.key"}
    return config


def _job(name: str, targets: list[str], https: bool, mutual: bool = False, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"job_name": name, "static_configs": [{"targets": targets}]}
    if https:
        job["scheme"] = "https"
        job["tls_config"] = tls_client(mutual)
    return {**job, **extra}


def gateway_job(spec: PlatformSpec) -> dict[str, Any]:
    """The gateways' :8888, found the way the agents find them (static list, DNS name, headless Service)."""
    resolver = spec.tiers.agent.resolver
    job: dict[str, Any] = {"job_name": "otel-gateway"}
    if resolver.kind == "static":
        job["static_configs"] = [{"targets": [f"{_host(h)}:{SELF_METRICS_PORT}" for h in resolver.hostnames]}]
    else:
        name = resolver.dns_name if resolver.kind == "dns" else f"{resolver.k8s_service}.svc"
        job["dns_sd_configs"] = [{"names": [name], "type": "A", "port": SELF_METRICS_PORT}]
    return job


@dataclass(frozen=True)
class PodTargets:
    """A job's targets as pods of a Kubernetes namespace: those carrying every one of ``labels``, on their
    container port named ``port`` (Prometheus lists and watches the namespace's pods: it needs get, list
    and watch on pods there)."""

    namespace: str
    labels: tuple[tuple[str, str], ...]
    port: str

    def job(self, name: str) -> dict[str, Any]:
        """The job, by ``kubernetes_sd_configs`` (role pod; Prometheus 3.16's discovery/kubernetes): the API
        server already filters by the labels (``selectors``); the relabelling keeps a target only with all
        labels and the named port (a pod's other ports are targets too), drops pods that are not running, and
        names it ``<pod>:<port>`` (as ``<host>:8888`` on VMs) with its namespace, pod and node as labels."""
        selector = ",".join(f"{key}={value}" for key, value in self.labels)
        meta = [f"__meta_kubernetes_pod_label_{_label_name(key)}" for key, _ in self.labels]
        return {
            "job_name": name,
            "kubernetes_sd_configs": [
                {
                    "role": "pod",
                    "namespaces": {"names": [self.namespace]},
                    "selectors": [{"role": "pod", "label": selector}],
                }
            ],
            "relabel_configs": [
                {"action": "keep", "source_labels": meta, "regex": ";".join(value for _, value in self.labels)},
                {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": self.port},
                {
                    "action": "drop",
                    "source_labels": ["__meta_kubernetes_pod_phase"],
                    "regex": "Pending|Succeeded|Failed|Unknown",
                },
                {
                    "source_labels": ["__meta_kubernetes_pod_name", "__meta_kubernetes_pod_container_port_number"],
                    "separator": ":",
                    "target_label": "instance",
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            ],
        }


def _label_name(key: str) -> str:
    """A Kubernetes label key as Prometheus' discovery names it (every character outside [a-zA-Z0-9_] → _)."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in key)


def scrape_configs(spec: PlatformSpec, pods: Mapping[str, PodTargets] | None = None) -> list[dict[str, Any]]:
    """One job per platform component. The collectors' :8888 is plain HTTP (the pull reader has no TLS;
    the flows matrix lets only Prometheus reach it); the others follow the TLS of their hop. ``pods``: jobs
    whose targets are found as pods in a cluster instead (job name → where)."""
    backends_tls = spec.security.tls.gateway_to_backends is not TlsMode.INSECURE
    own_tls = serves_tls(spec)
    b = spec.backends
    jobs = [
        _job("prometheus", [f"{_host(b.prometheus.endpoint)}:{PROMETHEUS_PORT}"], own_tls),
        _job("alertmanager", [alertmanager_target(spec)], own_tls),
        gateway_job(spec),
        # agents: one file per node or VM under targets/agents/, written by the roles (or the stack)
        {"job_name": "otel-agent", "file_sd_configs": [{"files": ["targets/agents/*.yml"], "refresh_interval": "1m"}]},
        # node_exporter where a host runs one (clock offset, filesystems): targets/nodes/*.yml
        {"job_name": "node", "file_sd_configs": [{"files": ["targets/nodes/*.yml"], "refresh_interval": "1m"}]},
    ]
    opamp = urlsplit(spec.security.opamp.endpoint)
    opamp_https = opamp.scheme in ("wss", "https")
    jobs.append(
        _job(
            "opamp-server",
            [f"{opamp.hostname}:{opamp.port or (443 if opamp_https else 80)}"],
            opamp_https,
            spec.security.tls.collectors_to_opamp is TlsMode.MTLS,
            authorization={"type": "Bearer", "credentials_file": OPAMP_TOKEN_FILE},
        )
    )
    if b.tempo.enabled:
        jobs.append(_job("tempo", [f"{_host(b.tempo.endpoint)}:{TEMPO_HTTP_PORT}"], backends_tls))
    if b.loki.enabled:
        loki = urlsplit(b.loki.endpoint)
        jobs.append(_job("loki", [f"{loki.hostname}:{loki.port or LOKI_HTTP_PORT}"], loki.scheme == "https"))
    if b.clickhouse.enabled:
        # ClickHouse's <prometheus> endpoint is a plain-HTTP listener of its own
        jobs.append(_job("clickhouse", [f"{_host(b.clickhouse.endpoint)}:{CLICKHOUSE_METRICS_PORT}"], False))
    as_pods = dict(pods or {})
    found = {job["job_name"] for job in jobs}
    unknown = sorted(set(as_pods) - found)
    if unknown:
        raise ValueError(f"no scrape job {', '.join(unknown)} to find as pods; the jobs: {', '.join(sorted(found))}")
    return [as_pods[job["job_name"]].job(job["job_name"]) if job["job_name"] in as_pods else job for job in jobs]


def retention_days(spec: PlatformSpec) -> int:
    """Prometheus keeps the hot tier of ``retention.metrics``; longer tiers live in ClickHouse. The rules
    read up to 7 days back (the trend alerts' baseline), so fewer hot days are refused."""
    days = spec.retention.metrics.hot_days
    if days < rules.LONGEST_RANGE_DAYS:
        raise PrometheusRenderError(
            f"`retention.metrics.hot_days` = {days}: Prometheus keeps the hot tier, and its rules compare "
            f"with the last {rules.LONGEST_RANGE_DAYS} days; allowed: at least {rules.LONGEST_RANGE_DAYS}"
        )
    return days


def prometheus_config(spec: PlatformSpec, pods: Mapping[str, PodTargets] | None = None) -> dict[str, Any]:
    am: dict[str, Any] = {"static_configs": [{"targets": [alertmanager_target(spec)]}], "api_version": "v2"}
    if serves_tls(spec):
        am |= {"scheme": "https", "tls_config": tls_client(False)}
    return {
        "global": {
            "scrape_interval": f"{spec.load.scrape_interval_seconds}s",
            "evaluation_interval": "30s",
            "external_labels": {
                "environment": spec.environment,
                **({"region": spec.region} if spec.region else {}),
            },
        },
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [am]},
        "scrape_configs": scrape_configs(spec, pods),
        "storage": {
            "tsdb": {
                "out_of_order_time_window": OUT_OF_ORDER_WINDOW,
                "retention": {"time": f"{retention_days(spec)}d"},
            },
            "exemplars": {"max_exemplars": MAX_EXEMPLARS},
        },
        "otlp": {
            "promote_resource_attributes": PROMOTED_RESOURCE_ATTRIBUTES,
            "keep_identifying_resource_attributes": True,
            "translation_strategy": "UnderscoreEscapingWithSuffixes",
        },
    }


def in_cluster_config(spec: PlatformSpec, pods: Mapping[str, PodTargets]) -> str:
    """``prometheus.yml`` for a Prometheus in a Kubernetes cluster: the render of :data:`CONFIG_FILE`, with the
    jobs of ``pods`` finding their targets as pods."""
    return dump(prometheus_config(spec, pods), HEADER)


def flags(spec: PlatformSpec) -> list[str]:
    """The command line: receivers, exemplar storage (still a feature flag in 3.16), paths."""
    out = [
        f"--config.file={CONFIG_DIR}/prometheus.yml",
        f"--storage.tsdb.path={DATA_DIR}",
        f"--web.listen-address=:{PROMETHEUS_PORT}",
        "--web.enable-remote-write-receiver",
        "--web.enable-otlp-receiver",
        "--enable-feature=exemplar-storage",
        "--web.enable-lifecycle",
    ]
    if serves_tls(spec):
        out.append(f"--web.config.file={CONFIG_DIR}/web.yml")
    return out


def render_prometheus(spec: PlatformSpec) -> dict[str, str]:
    """Every Prometheus file of the environment, by path relative to build/ENV/."""
    files = {
        CONFIG_FILE: dump(prometheus_config(spec), HEADER),
        FLAGS_FILE: "\n".join(flags(spec)) + "\n",
    }
    if serves_tls(spec):
        files[WEB_FILE] = dump(web_config(spec, TLS_DIR), HEADER)
    for kind, what in TARGET_DIRS.items():  # file discovery watches these directories: they must exist
        files[f"prometheus/targets/{kind}/README"] = f"{what}: one <host>.yml per target, written by the installer.\n"
    files |= rules.render_rules(spec)
    return files


def check_prometheus_files(files: Mapping[str, str]) -> list[str]:
    """:func:`check_prometheus` on files by their path relative to build/ENV/ (``prometheus/…``), e.g. the
    in-cluster ``prometheus.yml`` with the rendered rules and their tests."""
    with tempfile.TemporaryDirectory(prefix="otelstack-prometheus-") as tmp:
        for rel, text in files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return check_prometheus(Path(tmp) / "prometheus")


def check_prometheus(directory: Path | str) -> list[str]:
    """Problems the real promtool finds in a rendered ``prometheus/`` directory: check config (which
    checks the rule files it names), check rules, test rules, check web-config. A missing promtool is
    one note, never a silent pass."""
    directory = Path(directory)
    promtool = locate_tool("promtool")
    if promtool is None:
        return [missing_tool("promtool")]
    tmp, copy = scratch_copy(directory, "prometheus.yml", "web.yml")
    problems: list[str] = []
    with tmp:
        steps = [[promtool, "check", "config", "prometheus.yml"]]
        rule_files = sorted(str(p.relative_to(copy)) for p in (copy / "rules").glob("*.yml"))
        if rule_files:
            steps.append([promtool, "check", "rules", *rule_files])
        tests = sorted(str(p.relative_to(copy)) for p in (copy / "tests").glob("*.yml"))
        if tests:
            steps.append([promtool, "test", "rules", *tests])
        if (copy / "web.yml").is_file():
            steps.append([promtool, "check", "web-config", "web.yml"])
        for argv in steps:
            ok, output = run_tool(argv, copy, Path(tmp.name))
            if not ok:
                problems.append(f"promtool {' '.join(argv[1:3])} failed: {output}")
    return problems
