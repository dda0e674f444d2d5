"""cert-manager PKI of the platform: a self-signed root → a CA Issuer → one Certificate per hop.

Objects (cert-manager.io/v1, field names of the v1.21.2 CRDs, deploy/crds/cert-manager.io_*.yaml):

- Issuer ``otelstack-selfsigned`` (``selfSigned: {}``) signs only the CA certificate;
- Certificate ``otelstack-ca`` (``isCA: true``) and Issuer ``otelstack-ca`` (``ca.secretName``);
- leaf Certificates: the agents' client certificate (agent → gateway mTLS), the gateways' server
  certificate (every name agents dial: the headless Service, each pod behind it, the ClusterIP Service and
  the spec's resolver name), the gateways' client certificate (gateway → backends), the OpAMP server's
  certificate, and optionally the agents' server certificate (apps → agent TLS).

Issuers are namespaced (no ClusterIssuer): the CA key never leaves the platform's namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from otelstack.kubernetes.objects import (
    AGENT_CLIENT_SECRET,
    AGENT_NAME,
    AGENT_SERVER_SECRET,
    CA_SECRET,
    GATEWAY_CLIENT_SECRET,
    GATEWAY_NAME,
    GATEWAY_SERVER_SECRET,
    OPAMP_NAME,
    OPAMP_SERVER_SECRET,
    Component,
    K8sObject,
    labels,
    metadata,
    obj,
)
from otelstack.model.spec import TlsMode

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

API = "cert-manager.io/v1"
SELF_SIGNED_ISSUER = "otelstack-selfsigned"
CA_ISSUER = "otelstack-ca"
CA_DURATION = "43800h"  # 5 years; renewed a year before expiry (leaves re-issue from the new CA)
CA_RENEW_BEFORE = "8760h"
KEY_SIZES = {"ECDSA": 256, "RSA": 3072}


def service_names(name: str, namespace: str) -> list[str]:
    """The DNS names of a Service inside the cluster, short to fully qualified."""
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]


def gateway_headless_name(ctx: StackContext) -> str:
    """The headless Service of the gateways: the name in the spec's k8s resolver (name.namespace)."""
    name, _, namespace = ctx.spec.tiers.agent.resolver.k8s_service.partition(".")
    if ctx.spec.tiers.agent.resolver.kind == "k8s" and namespace and namespace != ctx.namespace:
        raise ValueError(
            f"tiers.agent.resolver.k8s_service is {ctx.spec.tiers.agent.resolver.k8s_service!r}, in namespace "
            f"{namespace!r}, but the stack runs the gateways in {ctx.namespace!r}; allowed: <name>.{ctx.namespace}"
        )
    return name


def gateway_dns_names(ctx: StackContext) -> list[str]:
    """Every name an agent may verify a gateway by: the resolver's, the headless Service and its pods'
    (``<pod>.<headless>.<ns>.svc``), the ClusterIP Service's."""
    headless = gateway_headless_name(ctx)
    ns = ctx.namespace
    names = service_names(headless, ns)
    names += [f"*.{headless}.{ns}.svc", f"*.{headless}.{ns}.svc.cluster.local"]
    names += service_names(GATEWAY_NAME, ns)
    resolver = ctx.spec.tiers.agent.resolver
    if resolver.kind == "dns":
        names.append(resolver.dns_name)
    return list(dict.fromkeys(names))


def opamp_dns_names(ctx: StackContext) -> list[str]:
    names = service_names(OPAMP_NAME, ctx.namespace)
    host = urlsplit(ctx.spec.security.opamp.endpoint).hostname
    if host:
        names.append(host)
    if ctx.cluster.ingress.enabled and ctx.cluster.ingress.host:
        names.append(ctx.cluster.ingress.host)
    return list(dict.fromkeys(names))


def _hours(value: int) -> str:
    return f"{value}h"


def certificate(
    ctx: StackContext,
    name: str,
    secret: str,
    *,
    usages: list[str],
    common_name: str,
    dns_names: list[str] | None = None,
    issuer: str = CA_ISSUER,
    is_ca: bool = False,
) -> K8sObject:
    cluster = ctx.cluster
    algorithm = cluster.certificate_key_algorithm
    key: K8sObject = {"algorithm": algorithm, "rotationPolicy": "Always"}
    if algorithm in KEY_SIZES:
        key["size"] = KEY_SIZES[algorithm]
    spec: K8sObject = {
        "secretName": secret,
        "secretTemplate": {"labels": labels("certificates", secret, ctx.spec.environment)},
        "commonName": common_name,
    }
    if is_ca:
        spec |= {"isCA": True, "duration": CA_DURATION, "renewBefore": CA_RENEW_BEFORE}
    else:
        spec |= {
            "duration": _hours(cluster.certificate_duration_hours),
            "renewBefore": _hours(cluster.certificate_renew_before_hours),
        }
    if dns_names:
        spec["dnsNames"] = dns_names
    spec |= {
        "privateKey": key,
        "usages": usages,
        "issuerRef": {"name": issuer, "kind": "Issuer", "group": "cert-manager.io"},
    }
    meta = metadata(name, "certificates", namespace=ctx.namespace, environment=ctx.spec.environment)
    return obj(API, "Certificate", meta, spec=spec)


def _issuer(ctx: StackContext, name: str, spec: K8sObject) -> K8sObject:
    meta = metadata(name, "certificates", namespace=ctx.namespace, environment=ctx.spec.environment)
    return obj(API, "Issuer", meta, spec=spec)


SERVER = ["digital signature", "key encipherment", "server auth"]
CLIENT = ["digital signature", "key encipherment", "client auth"]


def app_to_agent_tls(ctx: StackContext) -> bool:
    return ctx.cluster.app_to_agent_certificate or ctx.spec.security.tls.apps_to_agent is not TlsMode.INSECURE


def component(ctx: StackContext) -> Component:
    env = ctx.spec.environment
    ns = ctx.namespace
    objects: list[K8sObject] = [
        _issuer(ctx, SELF_SIGNED_ISSUER, {"selfSigned": {}}),
        certificate(
            ctx,
            CA_SECRET,
            CA_SECRET,
            usages=["digital signature", "cert sign", "crl sign"],
            common_name=f"otelstack {env} CA",
            issuer=SELF_SIGNED_ISSUER,
            is_ca=True,
        ),
        _issuer(ctx, CA_ISSUER, {"ca": {"secretName": CA_SECRET}}),
        certificate(ctx, "otel-agent-client", AGENT_CLIENT_SECRET, usages=CLIENT, common_name=AGENT_NAME),
        certificate(
            ctx,
            "otel-gateway-server",
            GATEWAY_SERVER_SECRET,
            usages=SERVER,
            common_name=f"{GATEWAY_NAME}.{ns}.svc",
            dns_names=gateway_dns_names(ctx),
        ),
        certificate(ctx, "otel-gateway-client", GATEWAY_CLIENT_SECRET, usages=CLIENT, common_name=GATEWAY_NAME),
    ]
    if ctx.cluster.opamp_server.enabled:
        objects.append(
            certificate(
                ctx,
                "otelstack-opamp-server",
                OPAMP_SERVER_SECRET,
                usages=SERVER,
                common_name=f"{OPAMP_NAME}.{ns}.svc",
                dns_names=opamp_dns_names(ctx),
            )
        )
    if app_to_agent_tls(ctx):
        objects.append(
            certificate(
                ctx,
                "otel-agent-server",
                AGENT_SERVER_SECRET,
                usages=SERVER,
                common_name=f"{AGENT_NAME}.{ns}.svc",
                dns_names=service_names(AGENT_NAME, ns),
            )
        )
    return Component("certificates", tuple(objects), depends_on=("cert-manager",))
