"""The ClickHouse schema Job: the rendered DDL applied before the gateways start.

The Job runs otelstack's own runner, ``python -m otelstack.backends.clickhouse apply`` (stdlib HTTP, no
driver), from an image with otelstack installed (``clickhouseSchema.image``, default the OpAMP server's
image: the same build). One runner for every path means one migrations table and one set of rules
(``bootstrap.sql`` every time; each ``NNN-*.sql`` not yet recorded, with its checksum; ``retention.sql``
when changed; ``users.sql`` with the passwords' SHA-256 resolved at apply time; an applied migration that
changed stops the run) — no second implementation to keep in agreement.

- the files are ``build/ENV/clickhouse/*.sql`` byte for byte, in ConfigMap ``clickhouse-schema``, projected
  under ``/etc/otelstack-schema/clickhouse/`` (the runner's ``--dir`` layout);
- the admin password and every ``${sha256:env:NAME}`` secret ``users.sql`` names come from keys of
  ``otelstack-secrets`` as environment variables (the runner reads ``env:NAME``); a ``file:`` reference is
  an error here (nothing would mount it);
- with a TLS endpoint the runner talks HTTPS to port 8443 and trusts the platform CA (``ca.crt`` of the
  gateways' client certificate Secret, which the gateways trust ClickHouse by too);
- the Job's name carries a digest of the files and the command, so a changed schema is a new Job, and the
  gateway component depends on this one: Pulumi waits for the Job to complete before the gateways.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from otelstack.backends.clickhouse.migrations import DIRECTORY
from otelstack.backends.clickhouse.users import PLACEHOLDER
from otelstack.errors import SpecError
from otelstack.kubernetes import backend
from otelstack.kubernetes.collector import scheduling
from otelstack.kubernetes.objects import (
    GATEWAY_CLIENT_SECRET,
    Component,
    K8sObject,
    container_security_context,
    labels,
    metadata,
    obj,
    pod_security_context,
    secret_env,
)
from otelstack.model.spec import clickhouse_plaintext
from otelstack.security.layout import CLICKHOUSE_HTTP_PORT, CLICKHOUSE_HTTPS_PORT

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

COMPONENT = "clickhouse-schema"
SCHEMA_DIR = "/etc/otelstack-schema"
ADMIN_PASSWORD_ENV = "CLICKHOUSE_ADMIN_PASSWORD"
UID = 10001
SQL_FILE = re.compile(r"^[A-Za-z0-9._-]+\.sql$")


def schema_files(ctx: StackContext) -> dict[str, str]:
    """The rendered ``clickhouse/*.sql`` (not the queries, not config.d) by file name."""
    return {name: text for name, text in ctx.backend_dir(DIRECTORY).items() if SQL_FILE.match(name)}


def url(ctx: StackContext) -> str:
    """The HTTP(S) interface the runner talks to."""
    given = ctx.cluster.clickhouse_schema.url
    if given:
        return given
    endpoint = ctx.spec.backends.clickhouse.endpoint
    host = urlsplit(endpoint).hostname or ""
    if clickhouse_plaintext(endpoint):
        return f"http://{host}:{CLICKHOUSE_HTTP_PORT}"
    return f"https://{host}:{CLICKHOUSE_HTTPS_PORT}"


def user_secret_names(ctx: StackContext, files: dict[str, str]) -> tuple[str, ...]:
    """The ``env:NAME`` secrets users.sql names (their values are keys of otelstack-secrets)."""
    refs = sorted({ref for text in files.values() for ref in PLACEHOLDER.findall(text)})
    unusable = [ref for ref in refs if not ref.startswith("env:")]
    if unusable:
        raise SpecError(
            f"clickhouse/users.sql names the secret(s) {', '.join(unusable)}; on Kubernetes the schema Job reads "
            "secrets from Secret otelstack-secrets: use env:NAME in backends.clickhouse.password/reader_password"
        )
    return tuple(ref.removeprefix("env:") for ref in refs)


def server_in_cluster(ctx: StackContext) -> bool:
    """The stack runs the ClickHouse server too (clickhouse_server.py), which reads the admin password."""
    return backend.runs(ctx, "clickhouse")


def secret_names(ctx: StackContext) -> tuple[str, ...]:
    """Keys of otelstack-secrets the Job and an in-cluster server read (besides the spec's own)."""
    admin = (ctx.cluster.clickhouse_schema.admin_password_key,) if runs(ctx) or server_in_cluster(ctx) else ()
    return (*admin, *(user_secret_names(ctx, schema_files(ctx)) if runs(ctx) else ()))


def generated_keys(ctx: StackContext) -> tuple[str, ...]:
    """The users' passwords (users.sql's secrets) the program may generate: the Job sets them on every run,
    so a generated value reaches ClickHouse, the gateways and Grafana alike. The admin password only when the
    stack runs the server too (the server and the Job then read the same generated value); a ClickHouse
    outside the cluster has its admin password already."""
    admin = (ctx.cluster.clickhouse_schema.admin_password_key,) if server_in_cluster(ctx) else ()
    return (*admin, *(user_secret_names(ctx, schema_files(ctx)) if runs(ctx) else ()))


def runs(ctx: StackContext) -> bool:
    return ctx.cluster.clickhouse_schema.enabled


def job(ctx: StackContext, files: dict[str, str]) -> K8sObject:
    schema = ctx.cluster.clickhouse_schema
    image = schema.image or ctx.cluster.opamp_server.image
    assert image is not None  # ClusterSettings requires one when the Job is enabled
    target = url(ctx)
    command = [
        "python", "-m", "otelstack.backends.clickhouse", "apply",
        "--dir", SCHEMA_DIR, "--url", target,
        "--database", ctx.spec.backends.clickhouse.database,
        "--user", schema.admin_user, "--password", f"env:{ADMIN_PASSWORD_ENV}",
    ]  # fmt: skip
    sources: list[K8sObject] = [backend.config_map_source(COMPONENT, files, f"{DIRECTORY}/")]
    if target.startswith("https://"):
        command += ["--cafile", f"{SCHEMA_DIR}/tls/ca.crt"]
        sources.append({"secret": {"name": GATEWAY_CLIENT_SECRET, "items": [{"key": "ca.crt", "path": "tls/ca.crt"}]}})
    env = [
        {"name": ADMIN_PASSWORD_ENV, "valueFrom": secret_env([schema.admin_password_key])[0]["valueFrom"]},
        *secret_env(user_secret_names(ctx, files)),
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    container: K8sObject = {
        "name": "schema",
        "image": image.reference,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": backend.CONFIG_VOLUME, "mountPath": SCHEMA_DIR, "readOnly": True},
            {"name": backend.TMP_VOLUME, "mountPath": "/tmp"},
        ],
    }
    pod: K8sObject = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(UID),
        **scheduling(ctx),
        "containers": [container],
        "volumes": [backend.projected_config(sources), {"name": backend.TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    digest = backend.checksum([*(f"{k}\0{v}" for k, v in sorted(files.items())), *command])
    env_name = ctx.spec.environment
    return obj(
        "batch/v1",
        "Job",
        metadata(f"{COMPONENT}-{digest[:10]}", COMPONENT, namespace=ctx.namespace, environment=env_name, app=COMPONENT),
        spec={
            "backoffLimit": 6,
            "activeDeadlineSeconds": 900,
            "template": {"metadata": {"labels": labels(COMPONENT, COMPONENT, env_name)}, "spec": pod},
        },
    )


def component(ctx: StackContext) -> Component | None:
    if not runs(ctx):
        return None
    if not ctx.spec.backends.clickhouse.enabled:
        raise SpecError(
            "otelstack:cluster.clickhouseSchema.enabled is true, but the spec's `backends.clickhouse.enabled` is "
            "false; allowed: enable both, or neither"
        )
    files = schema_files(ctx)
    meta = metadata(COMPONENT, COMPONENT, namespace=ctx.namespace, environment=ctx.spec.environment)
    objects = [obj("v1", "ConfigMap", meta, data=files), job(ctx, files)]
    # After an in-cluster server (dropped when ClickHouse runs elsewhere): Pulumi waits for its StatefulSet.
    return Component(COMPONENT, tuple(objects), depends_on=(*backend.depends(ctx), "clickhouse"))
