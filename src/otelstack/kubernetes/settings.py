"""Cluster settings of one Pulumi stack, read from ``stacks/platform/Pulumi.<stack>.yaml``.

The stack file names the otelstack environment (``otelstack:environment``), optionally its region
(``otelstack:region``), and the cluster's own settings (``otelstack:cluster``, an object with camelCase
keys, as Pulumi config objects are written). Everything a user writes is checked strictly: an unknown key
or a wrong value is an error naming the file and the key, and nothing is rendered.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from otelstack.collector.agent import DEFAULT_CLUSTER_DOMAIN
from otelstack.errors import SpecError

STACKS_DIR = Path("stacks/platform")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
LABEL_KEY = re.compile(r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|m|k|M|G)?$")


class Strict(BaseModel):
    """Like ``otelstack.model.spec.Strict``: unknown keys are errors; keys are camelCase in the stack file."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, alias_generator=to_camel, populate_by_name=True
    )


class Image(Strict):
    repository: str = Field(description="image repository, e.g. otel/opentelemetry-collector-contrib")
    tag: str = Field(description="a pinned tag (never latest)")
    digest: str | None = Field(None, description="sha256:<64 hex>: pins the image's content")

    @field_validator("tag")
    @classmethod
    def _pinned(cls, v: str) -> str:
        if not v or v == "latest":
            raise ValueError(f"tag {v!r} is not pinned; allowed: a release tag such as 0.159.0 (never latest)")
        return v

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not DIGEST.match(v):
            raise ValueError(f"digest {v!r} is not sha256:<64 lower-case hex digits>")
        return v

    @property
    def reference(self) -> str:
        ref = f"{self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


# The digest of otel/opentelemetry-collector-contrib:0.159.0 is not pinned: it could not be verified here
# (docs/kubernetes/collectors.md, "Images"); give it in the stack file (cluster.collectorImage.digest) to pin
# the content.
COLLECTOR_IMAGE = Image(repository="otel/opentelemetry-collector-contrib", tag="0.159.0")


class Ingress(Strict):
    enabled: bool = Field(False, description="expose the OpAMP server's web page and API through an Ingress")
    class_name: str | None = Field(None, description="IngressClass name; none: the cluster default")
    host: str | None = Field(None, description="host name the Ingress serves")

    @model_validator(mode="after")
    def _host(self) -> Ingress:
        if self.enabled and not self.host:
            raise ValueError("ingress is enabled but has no `host`; allowed: a DNS name, e.g. opamp.example.com")
        return self


class Toleration(Strict):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


BeylaFeature = Literal["application", "network", "context_propagation"]


# grafana/beyla v3.33.0 (docs/kubernetes/beyla.md); its digest could not be verified here: give it in the
# stack file (cluster.beyla.image.digest) to pin the content.
BEYLA_IMAGE = Image(repository="docker.io/grafana/beyla", tag="3.33.0")


class Beyla(Strict):
    enabled: bool = Field(False, description="run Beyla (eBPF auto-instrumentation) as a DaemonSet")
    features: list[BeylaFeature] = Field(
        default_factory=lambda: list[BeylaFeature](["application"]),
        description="what Beyla does; each adds its least capabilities",
    )
    namespace: str | None = Field(
        None, description="Beyla's own namespace (Pod Security privileged); default: <namespace>-beyla"
    )
    image: Image = Field(default_factory=lambda: BEYLA_IMAGE)
    instrument_namespaces: list[str] = Field(
        default_factory=lambda: ["*"], description="namespace globs whose processes Beyla instruments"
    )

    @field_validator("features")
    @classmethod
    def _features(cls, v: list[BeylaFeature]) -> list[BeylaFeature]:
        if not v:
            raise ValueError("no feature chosen; allowed: application, network, context_propagation")
        if "context_propagation" in v and "application" not in v:
            raise ValueError("context_propagation propagates the traces of `application`; add application")
        return sorted(set(v))

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and not DNS_LABEL.match(v):
            raise ValueError(f"{v!r} is not a namespace name; allowed: a DNS label (a-z, 0-9, '-'; at most 63)")
        return v


def _cidr(v: str) -> str:
    try:
        return str(ipaddress.ip_network(v, strict=True))
    except ValueError:
        raise ValueError(f"{v!r} is not a network in CIDR notation, e.g. 10.0.0.0/8 or fd00::/8") from None


Cidr = Annotated[str, AfterValidator(_cidr)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Peers(Strict):
    """Where a source outside the platform's tiers is: namespaces (by their labels) and/or networks."""

    namespace_labels: dict[str, str] = Field(
        default_factory=dict, description="namespaceSelector matchLabels (empty: no namespace peer)"
    )
    cidrs: list[Cidr] = Field(default_factory=list, description="ipBlock networks (empty: no network peer)")

    @property
    def present(self) -> bool:
        return bool(self.namespace_labels or self.cidrs)


class ApiServer(Strict):
    cidrs: list[Cidr] = Field(
        default_factory=list,
        description="addresses of the kube-apiserver endpoints (kubectl get endpointslice -n default kubernetes); "
        "empty: any address, on `ports` only",
    )
    ports: list[Port] = Field(default_factory=lambda: [443, 6443], description="the API server's ports")


class ClusterDns(Strict):
    namespace: str = Field("kube-system", description="namespace of the cluster DNS (kube-dns/CoreDNS)")
    pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"}, description="labels of the cluster DNS pods"
    )


class NetworkPolicies(Strict):
    """The NetworkPolicies rendered from otelstack.security.flows (docs/kubernetes/network-policies.md)."""

    enabled: bool = Field(True, description="default deny and the flows matrix as NetworkPolicies")
    apps: Peers = Field(
        default_factory=lambda: Peers(namespace_labels={"otelstack.io/telemetry": "enabled"}),
        description="the external source `apps`: instrumented applications",
    )
    operators: Peers = Field(
        default_factory=lambda: Peers(),
        description="the external source `operators`: people and their tools (an ingress controller's namespace)",
    )
    api_server: ApiServer = Field(default_factory=lambda: ApiServer())
    node_cidrs: list[Cidr] = Field(
        default_factory=list, description="the nodes' addresses (kubelet, port 10250); empty: any address"
    )
    dns: ClusterDns = Field(default_factory=lambda: ClusterDns())
    outside: dict[str, list[Cidr]] = Field(
        default_factory=dict,
        description="tier not run by the stack → networks it runs in (egress to its endpoint's port); "
        "a tier not listed is reached at any address, on its endpoint's port only",
    )

    @field_validator("outside")
    @classmethod
    def _tiers(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from otelstack.security.flows import PLATFORM_ROLES

        unknown = sorted(set(v) - set(PLATFORM_ROLES))
        if unknown:
            raise ValueError(f"unknown tier {', '.join(unknown)}; allowed: {', '.join(PLATFORM_ROLES)}")
        return v


class Instrumentation(Strict):
    """The OpenTelemetry Operator's Instrumentation CR (docs/kubernetes/operator.md)."""

    enabled: bool = Field(True, description="create the Instrumentation CR (needs the operator's CRDs)")
    name: str = Field("otelstack", description="name of the Instrumentation CR in the platform's namespace")
    languages: list[Literal["java", "python", "nodejs", "dotnet", "go"]] = Field(
        default_factory=lambda: list[Literal["java", "python", "nodejs", "dotnet", "go"]](
            ["java", "python", "nodejs", "dotnet"]
        ),
        description="languages configured; go injects a privileged sidecar and is left out unless listed",
    )


class Postgres(Strict):
    """A PostgreSQL registry for several OpAMP server replicas (otelstack.opamp.settings.PostgresSettings)."""

    url: str = Field(description="postgresql://USER@HOST:PORT/DBNAME[?sslmode=verify-full]; no password here")
    password_secret_key: str | None = Field(
        None, description="key of Secret otelstack-secrets holding the password (none: certificate auth)"
    )


class OpampServer(Strict):
    image: Image | None = Field(
        None,
        description="the otelstack OpAMP server image (built by the operator: docs/kubernetes/opamp-server.md); "
        "required when the stack runs the server",
    )
    enabled: bool = Field(True, description="run the OpAMP server in the cluster")
    replicas: int = Field(1, ge=1, le=20, description="1 with SQLite; more only with postgresql")
    storage_gib: int = Field(5, ge=1, le=1000, description="size of the SQLite registry's volume")
    configs_dir: str = Field(
        "/opt/otelstack/configs",
        pattern=r"^/\S+$",
        description="the configs/ hierarchy inside the image (remote configs are rendered from it)",
    )
    postgresql: Postgres | None = None
    cpu_limit: str = Field("1", pattern=QUANTITY.pattern)
    memory_limit: str = Field("512Mi", pattern=QUANTITY.pattern)

    @model_validator(mode="after")
    def _replicas(self) -> OpampServer:
        if self.enabled and self.image is None:
            raise ValueError(
                "`image` is required when the OpAMP server is enabled: there is no published otelstack image; "
                "build it (docs/kubernetes/opamp-server.md) and give repository and tag"
            )
        if self.replicas > 1 and self.postgresql is None:
            raise ValueError(
                f"`replicas` is {self.replicas} with the SQLite registry, which one replica owns; allowed: 1, "
                "or set `postgresql` for several replicas"
            )
        return self


# The backends' images, at the releases their renders target (docs/kubernetes/backends.md, "Images", says
# where each tag was verified). Digests are not pinned (none could be verified here): give them in the stack
# file (cluster.backends.<backend>.image.digest) to pin the content.
PROMETHEUS_IMAGE = Image(repository="quay.io/prometheus/prometheus", tag="v3.16.0")
ALERTMANAGER_IMAGE = Image(repository="quay.io/prometheus/alertmanager", tag="v0.35.0")
TEMPO_IMAGE = Image(repository="docker.io/grafana/tempo", tag="2.10.6")
LOKI_IMAGE = Image(repository="docker.io/grafana/loki", tag="3.7.8")
GRAFANA_IMAGE = Image(repository="docker.io/grafana/grafana", tag="12.4.0")
# The 26.9 line of the engine chDB 4.4.0 embeds (26.9.2.1), on which the schema and the server fragments are
# checked; docs/kubernetes/backends.md ("ClickHouse in the cluster") says where each tag was seen.
CLICKHOUSE_IMAGE = Image(repository="docker.io/clickhouse/clickhouse-server", tag="26.9.14.10")
KEEPER_IMAGE = Image(repository="docker.io/clickhouse/clickhouse-keeper", tag="26.9.14.10")
STORAGE_CLASS = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


class BackendWorkload(Strict):
    """A backend the stack runs in the cluster (docs/kubernetes/backends.md). Off by default: the spec's
    endpoints then name backends outside the cluster."""

    enabled: bool = Field(False, description="run this backend in the cluster (its spec endpoint must name it)")
    image: Image
    storage_gib: int = Field(10, ge=1, le=65536, description="size of its PersistentVolumeClaim, GiB")
    storage_class: str | None = Field(None, description="StorageClass of its volume; none: `storageClass`")
    cpu_request: str = Field("100m", pattern=QUANTITY.pattern)
    cpu_limit: str = Field("1", pattern=QUANTITY.pattern)
    memory_limit: str = Field("1Gi", pattern=QUANTITY.pattern, description="memory request and limit")

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, v: str | None) -> str | None:
        if v is not None and not STORAGE_CLASS.match(v):
            raise ValueError(f"{v!r} is not a StorageClass name; allowed: a DNS subdomain (a-z, 0-9, '-', '.')")
        return v


class PrometheusWorkload(BackendWorkload):
    image: Image = Field(default_factory=lambda: PROMETHEUS_IMAGE)
    storage_gib: int = Field(50, ge=1, le=65536, description="size of the TSDB volume, GiB")
    memory_limit: str = Field("4Gi", pattern=QUANTITY.pattern, description="memory request and limit")


class AlertmanagerWorkload(BackendWorkload):
    image: Image = Field(default_factory=lambda: ALERTMANAGER_IMAGE)
    storage_gib: int = Field(2, ge=1, le=65536, description="size of the silences/notification log volume, GiB")
    memory_limit: str = Field("256Mi", pattern=QUANTITY.pattern, description="memory request and limit")


class TempoWorkload(BackendWorkload):
    image: Image = Field(default_factory=lambda: TEMPO_IMAGE)
    storage_gib: int = Field(50, ge=1, le=65536, description="size of the WAL and local blocks volume, GiB")
    memory_limit: str = Field("4Gi", pattern=QUANTITY.pattern, description="memory request and limit")


class LokiWorkload(BackendWorkload):
    image: Image = Field(default_factory=lambda: LOKI_IMAGE)
    storage_gib: int = Field(50, ge=1, le=65536, description="size of the chunks, index and WAL volume, GiB")
    memory_limit: str = Field("2Gi", pattern=QUANTITY.pattern, description="memory request and limit")


# grafana/clickhouse-datasource v4.20.0: its plugin.json asks for Grafana >=11.6.0-0 (12.4.0 is the image),
# and its OpenTelemetry schema 1.3.0 is the one of the collector's clickhouseexporter from v0.151.0 on
# (docs/kubernetes/backends.md, "Grafana's ClickHouse plugin").
CLICKHOUSE_PLUGIN_VERSION = "4.20.0"


class GrafanaPlugin(Strict):
    """How Grafana gets the ClickHouse datasource plugin (``grafana-clickhouse-datasource``), which its image
    lacks; it matters only where the rendered provisioning has the ClickHouse datasource."""

    install: Literal["preinstall", "image"] = Field(
        "preinstall",
        description="preinstall: Grafana installs `version` from grafana.com before it starts serving "
        "(GF_PLUGINS_PREINSTALL_SYNC), over HTTPS its NetworkPolicy opens; image: the image has the plugin "
        "(an air-gapped cluster), Grafana downloads nothing (GF_PLUGINS_PREINSTALL_DISABLED)",
    )
    version: str = Field(CLICKHOUSE_PLUGIN_VERSION, description="the plugin release, X.Y.Z")
    download_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="preinstall: the networks Grafana may download from on 443 (e.g. a proxy's); empty: any "
        "public address (private, shared, link-local and loopback ranges excluded)",
    )

    @field_validator("version")
    @classmethod
    def _release(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", v):
            raise ValueError(
                f"version {v!r} is not a plugin release; allowed: X.Y.Z, e.g. {CLICKHOUSE_PLUGIN_VERSION} "
                "(never latest)"
            )
        return v

    @model_validator(mode="after")
    def _downloads(self) -> GrafanaPlugin:
        if self.install == "image" and self.download_cidrs:
            raise ValueError(
                "`downloadCidrs` is given with `install: image`, where Grafana downloads nothing; allowed: "
                "remove it, or `install: preinstall`"
            )
        return self


class GrafanaWorkload(BackendWorkload):
    image: Image = Field(default_factory=lambda: GRAFANA_IMAGE)
    storage_gib: int = Field(5, ge=1, le=65536, description="size of Grafana's database volume, GiB")
    memory_limit: str = Field("512Mi", pattern=QUANTITY.pattern, description="memory request and limit")
    clickhouse_plugin: GrafanaPlugin = Field(default_factory=lambda: GrafanaPlugin())


class ClickHouseWorkload(BackendWorkload):
    """ClickHouse in the cluster: one server (``single``) or a replicated cluster with Keeper rendered as the
    Altinity operator's resources (``altinity``; the operator must be installed)."""

    image: Image = Field(default_factory=lambda: CLICKHOUSE_IMAGE)
    mode: Literal["single", "altinity"] = Field(
        "single", description="single: one server (StatefulSet); altinity: ClickHouseInstallation + Keeper"
    )
    storage_gib: int = Field(100, ge=1, le=65536, description="size of each server's data volume, GiB")
    memory_limit: str = Field("4Gi", pattern=QUANTITY.pattern, description="memory request and limit")
    shards: int = Field(1, ge=1, le=64, description="altinity: shards of the cluster")
    replicas: int = Field(1, ge=1, le=16, description="altinity: replicas of each shard")
    keeper_replicas: Literal[1, 3, 5] = Field(3, description="altinity: ClickHouse Keeper nodes (a Raft quorum)")
    keeper_image: Image = Field(default_factory=lambda: KEEPER_IMAGE)
    keeper_storage_gib: int = Field(10, ge=1, le=65536, description="altinity: size of each Keeper's volume, GiB")
    keeper_memory_limit: str = Field("1Gi", pattern=QUANTITY.pattern, description="altinity: each Keeper's memory")

    @model_validator(mode="after")
    def _layout(self) -> ClickHouseWorkload:
        if self.mode == "single" and (self.shards, self.replicas) != (1, 1):
            raise ValueError(
                f"`shards` = {self.shards} and `replicas` = {self.replicas} with mode `single`, which runs one "
                "server; allowed: 1 and 1, or mode `altinity` for a sharded or replicated cluster"
            )
        return self


class BackendWorkloads(Strict):
    """The backends the stack runs in the cluster, each off unless `enabled`."""

    prometheus: PrometheusWorkload = Field(default_factory=lambda: PrometheusWorkload())
    alertmanager: AlertmanagerWorkload = Field(default_factory=lambda: AlertmanagerWorkload())
    tempo: TempoWorkload = Field(default_factory=lambda: TempoWorkload())
    loki: LokiWorkload = Field(default_factory=lambda: LokiWorkload())
    grafana: GrafanaWorkload = Field(default_factory=lambda: GrafanaWorkload())
    clickhouse: ClickHouseWorkload = Field(default_factory=lambda: ClickHouseWorkload())

    def enabled(self, name: str) -> bool:
        workload: BackendWorkload = getattr(self, name)
        return workload.enabled


class ClickHouseSchema(Strict):
    """The Job that applies the rendered ClickHouse DDL (docs/kubernetes/backends.md, "ClickHouse schema")."""

    enabled: bool = Field(
        False, description="apply build/ENV/clickhouse/ by a Job before the gateways start (otelstack's runner)"
    )
    image: Image | None = Field(
        None, description="an image with otelstack installed; default: `opampServer.image` (the same build)"
    )
    url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+$",
        description="ClickHouse's HTTP(S) interface; default: the host of backends.clickhouse.endpoint on 8443 "
        "(https, TLS) or 8123 (http, a plaintext endpoint)",
    )
    admin_user: str = Field(
        "otelstack_admin", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="a user allowed to create tables and users"
    )
    admin_password_key: str = Field(
        "OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="key of Secret otelstack-secrets holding the admin user's password",
    )


class ClusterSettings(Strict):
    namespace: str = Field("observability", description="namespace of the platform's workloads")
    agent_namespace: str | None = Field(
        None,
        description="the agent DaemonSet's own namespace (Pod Security enforce privileged: hostPath volumes, "
        "uid 0; docs/kubernetes/collectors.md); default: <namespace>-agent",
    )
    cert_manager_namespace: str = Field(
        "cert-manager",
        description="cert-manager's cluster resource namespace (--cluster-resource-namespace; the Helm chart: "
        "its release namespace), where the platform CA of the ClusterIssuer lives",
    )
    storage_class: str | None = Field(None, description="StorageClass of the volumes; none: the cluster default")
    backends: BackendWorkloads = Field(default_factory=lambda: BackendWorkloads())
    clickhouse_schema: ClickHouseSchema = Field(default_factory=lambda: ClickHouseSchema())
    ingress: Ingress = Field(default_factory=lambda: Ingress())
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of every workload")
    tolerations: list[Toleration] = Field(default_factory=list, description="tolerations of every workload")
    cluster_domain: str = Field(
        DEFAULT_CLUSTER_DOMAIN,
        description="the cluster's DNS domain (the kubelet's --cluster-domain): Service names "
        "<name>.<namespace>.svc.<clusterDomain> in certificates and the agents' gateway address",
    )
    install_cert_manager: bool = Field(
        False,
        description="install cert-manager v1.21.2 from its pinned Helm chart into `certManagerNamespace` "
        "(false: it is already present)",
    )
    install_operator: bool = Field(
        False,
        description="install the OpenTelemetry Operator v0.153.0 from its pinned kustomization into "
        "`operatorNamespace`, its webhook certificate from cert-manager (false: it is already present)",
    )
    operator_namespace: str = Field(
        "opentelemetry-operator-system", description="the operator's namespace when the stack installs it"
    )
    beyla: Beyla = Field(default_factory=lambda: Beyla())
    network_policies: NetworkPolicies = Field(default_factory=lambda: NetworkPolicies())
    instrumentation: Instrumentation = Field(default_factory=lambda: Instrumentation())
    collector_image: Image = Field(default_factory=lambda: COLLECTOR_IMAGE)
    opamp_server: OpampServer = Field(default_factory=lambda: OpampServer(enabled=False))
    app_to_agent_certificate: bool = Field(
        False, description="issue a server certificate for the agents' OTLP receivers (apps → agent TLS)"
    )
    gateway_drain_seconds: int = Field(
        20, ge=0, le=600, description="preStop sleep of a gateway: the agents' resolver drops it before it stops"
    )
    certificate_key_algorithm: Literal["ECDSA", "RSA", "Ed25519"] = "ECDSA"
    certificate_duration_hours: int = Field(2160, ge=2, le=8760, description="lifetime of leaf certificates")
    certificate_renew_before_hours: int = Field(720, ge=1, description="renewal this long before expiry")

    @field_validator("cluster_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        labels = v.split(".")
        if len(v) > 253 or not all(DNS_LABEL.match(label) for label in labels):
            raise ValueError(
                f"{v!r} is not a DNS domain; allowed: DNS labels (a-z, 0-9, '-'; at most 63 each) joined by dots, "
                "without a trailing dot, e.g. cluster.local"
            )
        return v

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, v: str | None) -> str | None:
        return BackendWorkload._storage_class(v)

    @field_validator("namespace", "agent_namespace", "cert_manager_namespace", "operator_namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and not DNS_LABEL.match(v):
            raise ValueError(f"{v!r} is not a namespace name; allowed: a DNS label (a-z, 0-9, '-'; at most 63)")
        return v

    @property
    def agent_namespace_name(self) -> str:
        """The agents' namespace: ``agentNamespace`` or ``<namespace>-agent``."""
        return self.agent_namespace or f"{self.namespace}-agent"

    @field_validator("node_selector")
    @classmethod
    def _selector(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not LABEL_KEY.match(key):
                raise ValueError(f"{key!r} is not a label key; allowed: [prefix/]name, e.g. kubernetes.io/os")
        return v

    @model_validator(mode="after")
    def _renewal(self) -> ClusterSettings:
        agents = self.agent_namespace_name
        if not DNS_LABEL.match(agents):
            raise ValueError(
                f"the agents' namespace {agents!r} (<namespace>-agent) is not a DNS label of at most 63 characters; "
                "set `agentNamespace`"
            )
        beyla = self.beyla.namespace or f"{self.namespace}-beyla"
        if agents in (self.namespace, self.cert_manager_namespace) or (self.beyla.enabled and agents == beyla):
            raise ValueError(
                f"`agentNamespace` is {agents!r}, a namespace the stack uses for something else; allowed: a namespace "
                f"of its own (not `namespace`, Beyla's or cert-manager's), e.g. {self.namespace}-agent"
            )
        own = {"namespace": self.namespace, "agentNamespace": agents}
        if self.beyla.enabled:
            own["beyla.namespace"] = beyla
        installed = {}
        if self.install_cert_manager:
            installed["certManagerNamespace"] = self.cert_manager_namespace
        if self.install_operator:
            installed["operatorNamespace"] = self.operator_namespace
        for key, value in installed.items():
            clash = [k for k, v in {**own, **installed}.items() if v == value and k != key]
            if clash:
                raise ValueError(
                    f"`{key}` is {value!r}, the namespace of `{clash[0]}` too; a part the stack installs gets a "
                    "namespace of its own"
                )
        schema = self.clickhouse_schema
        if self.backends.clickhouse.enabled and not schema.enabled:
            raise ValueError(
                "`backends.clickhouse.enabled` is true but `clickhouseSchema.enabled` is false: the in-cluster server "
                "would have neither the tables (the exporter never creates them) nor the writer and reader users; "
                "allowed: enable clickhouseSchema too (it needs an image with otelstack)"
            )
        if schema.enabled and schema.image is None and self.opamp_server.image is None:
            raise ValueError(
                "`clickhouseSchema.enabled` is true but no image with otelstack is given; allowed: set "
                "`clickhouseSchema.image` (or `opampServer.image`, the same build: docs/kubernetes/opamp-server.md)"
            )
        if self.certificate_renew_before_hours >= self.certificate_duration_hours:
            raise ValueError(
                f"`certificateRenewBeforeHours` = {self.certificate_renew_before_hours} is not below "
                f"`certificateDurationHours` = {self.certificate_duration_hours}; allowed: renew before expiry"
            )
        return self


@dataclass(frozen=True)
class StackSettings:
    env: str
    region: str | None
    cluster: ClusterSettings
    path: Path | None = None


def stack_file(root: Path, env: str, region: str | None = None) -> Path:
    """``stacks/platform/Pulumi.<env>.yaml`` (``Pulumi.<env>-<region>.yaml`` for a region) under ``root``."""
    return root / STACKS_DIR / (f"Pulumi.{env}-{region}.yaml" if region else f"Pulumi.{env}.yaml")


def _where(loc: tuple[Any, ...]) -> str:
    return "otelstack:cluster" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def parse_cluster(data: Any, source: str = "otelstack:cluster") -> ClusterSettings:
    """Validate an ``otelstack:cluster`` object; SpecError naming ``source`` and each key."""
    try:
        return ClusterSettings.model_validate({} if data is None else data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key; allowed: " + ", ".join(_allowed(err["loc"][:-1]))
            issues.append(f"{source}: `{_where(err['loc'])}`: {msg}")
        raise SpecError(f"{source}: invalid cluster settings; nothing was rendered", issues) from None


def _allowed(loc: tuple[Any, ...]) -> list[str]:
    model: Any = ClusterSettings
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = next((f for n, f in model.model_fields.items() if f.alias == part or n == part), None)
        ann = getattr(field, "annotation", None)
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def load_stack_settings(path: Path) -> StackSettings:
    """Read a Pulumi stack file: ``otelstack:environment`` (required), ``otelstack:region``,
    ``otelstack:cluster``. SpecError naming the file and key on any problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the stack file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise SpecError(f"{path}: no `config:` map; a stack file holds config: {{otelstack:environment: ENV, ...}}")
    env = config.get("otelstack:environment")
    if not isinstance(env, str) or not env:
        raise SpecError(f"{path}: `config.otelstack:environment` is missing or not a string; give the environment name")
    region = config.get("otelstack:region")
    if region is not None and not isinstance(region, str):
        raise SpecError(f"{path}: `config.otelstack:region` is not a string")
    cluster = parse_cluster(config.get("otelstack:cluster"), source=str(path))
    return StackSettings(env=env, region=region, cluster=cluster, path=path)
