"""Where things live on a VM and which ports they listen on.

These constants are the contract between the collector renderer (which writes the paths into
collector and supervisor configs), the Ansible roles (which put the files there) and the
firewall/NetworkPolicy flows (which open the ports). Change them here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- ports --------------------------------------------------------------------------------------
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
HEALTH_CHECK_PORT = 13133
SELF_METRICS_PORT = 8888
OPAMP_PORT = 4320
# Port of the supervisor's local OpAMP server that the collector's opamp extension talks to.
SUPERVISOR_LOCAL_OPAMP_PORT = 4321
# Backends (their upstream defaults, TLS variants where the upstream has one).
CLICKHOUSE_NATIVE_TLS_PORT = 9440
CLICKHOUSE_NATIVE_PORT = 9000  # the plaintext native protocol (a dev ClickHouse without TLS)
CLICKHOUSE_HTTPS_PORT = 8443
CLICKHOUSE_HTTP_PORT = 8123  # the plaintext HTTP interface (a dev ClickHouse without TLS)
CLICKHOUSE_METRICS_PORT = 9363  # <prometheus> endpoint of the server config
TEMPO_OTLP_GRPC_PORT = 4317
TEMPO_HTTP_PORT = 3200
LOKI_HTTP_PORT = 3100
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CLUSTER_PORT = 9094  # gossip between Alertmanager replicas, TCP and UDP
GRAFANA_PORT = 3000


class CollectorFiles:
    """The files a collector config names, under a layout's ``tls_dir`` and ``state_dir``."""

    tls_dir: str
    state_dir: str

    @property
    def ca_file(self) -> str:
        return f"{self.tls_dir}/ca.crt"

    @property
    def server_cert(self) -> str:
        return f"{self.tls_dir}/server.crt"

    @property
    def server_key(self) -> str:
        return f"{self.tls_dir}/server.key"

    @property
    def client_cert(self) -> str:
        return f"{self.tls_dir}/client.crt"

    @property
    def client_key(self) -> str:
        return f"{self.tls_dir}/client.key"

    @property
    def queue_dir(self) -> str:
        """file_storage directory for persistent sending queues."""
        return f"{self.state_dir}/queue"

    @property
    def checkpoint_dir(self) -> str:
        """file_storage directory for filelog checkpoints."""
        return f"{self.state_dir}/checkpoints"


@dataclass(frozen=True)
class VmLayout(CollectorFiles):
    """Filesystem layout of one collector installation on a VM."""

    install_root: str = "/opt/otelcol-contrib"  # releases/<version>/, active -> releases/<version>
    config_dir: str = "/etc/otelcol-contrib"
    tls_dir: str = "/etc/otelcol-contrib/tls"
    state_dir: str = "/var/lib/otelcol-contrib"
    env_file: str = "/etc/otelcol-contrib/otelcol.env"  # secrets as environment variables, mode 0600

    @property
    def supervisor_state_dir(self) -> str:
        return f"{self.state_dir}/supervisor"

    @property
    def binary(self) -> str:
        return f"{self.install_root}/active/otelcol-contrib"

    @property
    def supervisor_binary(self) -> str:
        return f"{self.install_root}/active/opampsupervisor"


VM = VmLayout()


@dataclass(frozen=True)
class KubernetesLayout(CollectorFiles):
    """Where a collector pod finds its files on Kubernetes: the config from a ConfigMap, certificates from
    cert-manager Secrets projected into one directory under the VM file names, state on a volume (the
    gateway's PersistentVolumeClaim, the agent's hostPath directory)."""

    config_dir: str = "/etc/otelcol/config"  # not the parent of tls_dir: a read-only volume holds no mount point
    tls_dir: str = "/etc/otelcol/tls"
    state_dir: str = "/var/lib/otelcol"


K8S = KubernetesLayout()

# Secrets are never written into configs: they are referenced as environment variables that the
# systemd unit loads from VmLayout.env_file (VMs) or that a Secret provides (Kubernetes).
INGEST_TOKEN_ENV = "OTELSTACK_INGEST_TOKEN"  # bearer token agents present to gateways
OPAMP_TOKEN_ENV = "OTELSTACK_OPAMP_TOKEN"  # bearer token collectors present to the OpAMP server
CLICKHOUSE_PASSWORD_ENV = "OTELSTACK_CLICKHOUSE_PASSWORD"


def vm_facts() -> dict[str, object]:
    """The VM layout and ports as plain values, as the Ansible roles receive them (lookup term `layout`)."""
    paths = {
        name: getattr(VM, name)
        for name in (
            "install_root",
            "config_dir",
            "tls_dir",
            "state_dir",
            "env_file",
            "ca_file",
            "server_cert",
            "server_key",
            "client_cert",
            "client_key",
            "queue_dir",
            "checkpoint_dir",
            "supervisor_state_dir",
            "binary",
            "supervisor_binary",
        )
    }
    ports = {
        "otlp_grpc": OTLP_GRPC_PORT,
        "otlp_http": OTLP_HTTP_PORT,
        "health_check": HEALTH_CHECK_PORT,
        "self_metrics": SELF_METRICS_PORT,
        "opamp": OPAMP_PORT,
        "supervisor_local_opamp": SUPERVISOR_LOCAL_OPAMP_PORT,
    }
    env = {
        "ingest_token": INGEST_TOKEN_ENV,
        "opamp_token": OPAMP_TOKEN_ENV,
        "clickhouse_password": CLICKHOUSE_PASSWORD_ENV,
    }
    return {**paths, "ports": ports, "env": env}
