"""cert-manager PKI of the platform: a self-signed root → a CA ClusterIssuer → one Certificate per hop.

The leaf certificates live in two namespaces — the platform's and the agents' own (agent.py) — and a
cert-manager ``Issuer`` signs only Certificates of its own namespace, so the CA is a ``ClusterIssuer``. A
ClusterIssuer reads its ``ca.secretName`` from cert-manager's *cluster resource namespace*
(``IssuerOptions.ResourceNamespace``, pkg/controller/helper.go at v1.21.2; the Helm chart sets
``--cluster-resource-namespace`` to its release namespace), never from the platform's, so the root lives
there (``cluster.certManagerNamespace``). A second CA Issuer in the agents' namespace would need the CA's
private key copied into a Pod Security ``privileged`` namespace, which cert-manager cannot do and which
would widen who can read the key.

Objects (cert-manager.io/v1, field names of the v1.21.2 CRDs, deploy/crds/cert-manager.io_*.yaml), named
after the platform's namespace so that several platforms can share one cert-manager:

- in cert-manager's namespace: Issuer ``otelstack-<ns>-selfsigned`` (``selfSigned: {}``), which signs only
  the CA certificate, and Certificate ``otelstack-<ns>-ca`` (``isCA: true``);
- ClusterIssuer ``otelstack-<ns>-ca`` (``ca.secretName: otelstack-<ns>-ca``);
- leaf Certificates: in the agents' namespace the agents' client certificate (agent → gateway mTLS) and
  optionally their server certificate (apps → agent TLS); in the platform's namespace the gateways'
  server certificate (every name agents dial: the headless Service, each pod behind it, the ClusterIP
  Service), the gateways' client certificate (gateway → backends) and the OpAMP server's certificate.

The CA issuer puts the CA certificate into every leaf Secret (``ca.crt``), which the collectors trust; no
pod mounts the CA's own Secret. A ClusterIssuer signs for any namespace whose users may create
Certificates: restrict it with cert-manager's approver-policy where that matters
(docs/kubernetes/certificates.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from otelstack.kubernetes.objects import (
    AGENT_CLIENT_SECRET,
    AGENT_NAME,
    AGENT_SERVER_SECRET,
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
CA_DURATION = "43800h"  # 5 years; renewed a year before expiry (leaves re-issue from the new CA)
CA_RENEW_BEFORE = "8760h"
KEY_SIZES = {"ECDSA": 256, "RSA": 3072}


def self_signed_issuer(ctx: StackContext) -> str:
    return f"otelstack-{ctx.namespace}-selfsigned"


def ca_name(ctx: StackContext) -> str:
    """The CA's Certificate, Secret (in cert-manager's namespace) and ClusterIssuer."""
    return f"otelstack-{ctx.namespace}-ca"


def service_names(name: str, namespace: str, cluster_domain: str) -> list[str]:
    """The DNS names of a Service inside the cluster, short to fully qualified (``cluster_domain``: the
    stack's ``clusterDomain``)."""
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{cluster_domain}"]


def gateway_headless_name(ctx: StackContext) -> str:
    """The headless Service of the gateways: the name in the spec's k8s resolver (name.namespace)."""
    name, _, namespace = ctx.spec.tiers.agent.resolver.k8s_service.partition(".")
    # The agent-k8s profile always resolves the gateways through this Service (collector/agent.py).
    if namespace != ctx.namespace:
        raise ValueError(
            f"tiers.agent.resolver.k8s_service is {ctx.spec.tiers.agent.resolver.k8s_service!r}, in namespace "
            f"{namespace!r}, but the stack runs the gateways in {ctx.namespace!r}; allowed: <name>.{ctx.namespace}"
        )
    return name


def gateway_dns_names(ctx: StackContext) -> list[str]:
    """Every name an agent may verify a gateway by: the headless Service (the k8s resolver hands the agents
    pod IPs and they verify ``<headless>.<ns>.svc.<clusterDomain>``: collector/agent.py) and its pods'
    (``<pod>.<headless>.<ns>.svc``), the ClusterIP Service's. Not the spec's dns resolver name: that is the
    VM gateways' name, which no Kubernetes agent dials."""
    headless = gateway_headless_name(ctx)
    ns = ctx.namespace
    domain = ctx.cluster.cluster_domain
    names = service_names(headless, ns, domain)
    names += [f"*.{headless}.{ns}.svc", f"*.{headless}.{ns}.svc.{domain}"]
    names += service_names(GATEWAY_NAME, ns, domain)
    return list(dict.fromkeys(names))


def opamp_dns_names(ctx: StackContext) -> list[str]:
    names = service_names(OPAMP_NAME, ctx.namespace, ctx.cluster.cluster_domain)
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
    namespace: str | None = None,
    issuer: tuple[str, str] | None = None,
    is_ca: bool = False,
) -> K8sObject:
    """A Certificate in `namespace` (default: the platform's), signed by `issuer` (kind, name; default: the
    CA ClusterIssuer)."""
    kind, issuer_name = issuer or ("ClusterIssuer", ca_name(ctx))
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
        "issuerRef": {"name": issuer_name, "kind": kind, "group": "cert-manager.io"},
    }
    meta = metadata(name, "certificates", namespace=namespace or ctx.namespace, environment=ctx.spec.environment)
    return obj(API, "Certificate", meta, spec=spec)


def _issuer(ctx: StackContext, kind: str, name: str, spec: K8sObject, namespace: str | None = None) -> K8sObject:
    meta = metadata(name, "certificates", namespace=namespace, environment=ctx.spec.environment)
    return obj(API, kind, meta, spec=spec)


SERVER = ["digital signature", "key encipherment", "server auth"]
CLIENT = ["digital signature", "key encipherment", "client auth"]


def app_to_agent_tls(ctx: StackContext) -> bool:
    return ctx.cluster.app_to_agent_certificate or ctx.spec.security.tls.apps_to_agent is not TlsMode.INSECURE


def component(ctx: StackContext) -> Component:
    env = ctx.spec.environment
    ns = ctx.namespace
    agents = ctx.agent_namespace
    root = ctx.cluster.cert_manager_namespace
    objects: list[K8sObject] = [
        _issuer(ctx, "Issuer", self_signed_issuer(ctx), {"selfSigned": {}}, namespace=root),
        certificate(
            ctx,
            ca_name(ctx),
            ca_name(ctx),
            usages=["digital signature", "cert sign", "crl sign"],
            common_name=f"otelstack {env} CA",
            namespace=root,
            issuer=("Issuer", self_signed_issuer(ctx)),
            is_ca=True,
        ),
        _issuer(ctx, "ClusterIssuer", ca_name(ctx), {"ca": {"secretName": ca_name(ctx)}}),
        certificate(
            ctx, "otel-agent-client", AGENT_CLIENT_SECRET, usages=CLIENT, common_name=AGENT_NAME, namespace=agents
        ),
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
                common_name=f"{AGENT_NAME}.{agents}.svc",
                dns_names=service_names(AGENT_NAME, agents, ctx.cluster.cluster_domain),
                namespace=agents,
            )
        )
    # After the namespaces the Certificates land in (the agents' is created by the namespace component).
    return Component("certificates", tuple(objects), depends_on=("cert-manager", "namespace"))
