# Copyright otelstack developers. Apache-2.0.
"""Lookup plugin: render collector and supervisor configs, and release facts, with otelstack itself."""

from __future__ import annotations

DOCUMENTATION = r"""
name: otelstack
author: otelstack developers
short_description: Render otelstack artefacts on the controller
description:
  - Calls the otelstack Python package, so a host's files are byte-identical to C(otelstack plan) output
    for the same configs/ hierarchy, environment, region and agent-level overrides.
  - C(collector) returns a collector config; C(supervisor) an opampsupervisor config; C(release) a dict
    with the pinned release's version, artefact names and download URLs; C(layout) the VM file layout,
    ports and secret variable names that every otelstack role uses; C(firewall) the nftables ruleset of a
    host from the flows matrix (an error when a platform host of the inventory has no known address);
    C(firewall_unknown) the platform hosts with no known address; C(version) the otelstack package version;
    C(sizing) the sizing model's figures per tier (memory limits, GOMEMLIMIT, queues) for the spec.
options:
  _terms:
    description: >-
      What to render, one of C(collector), C(supervisor), C(release), C(layout), C(firewall), C(firewall_unknown),
      C(version), C(secrets), C(gateway_names), C(sizing).
    required: true
  configs_dir:
    description: The configs/ hierarchy.
    type: path
  env:
    description: Environment (a directory under configs/).
    type: str
  region:
    description: Region (a directory under configs/ENV/), or empty.
    type: str
  profile:
    description: Collector profile (agent-vm, agent-vm-static, gateway, gateway-static, agent-k8s).
    type: str
    default: agent-vm
  variant:
    description: normal, emergency or safe-minimal.
    type: str
    default: normal
  agent:
    description: Level-5 (agent) overrides, same shape as a configs/ level file (C(collector) and C(supervisor)).
    type: dict
    default: {}
  component:
    description: For C(release), C(otelcol-contrib) or C(opampsupervisor).
    type: str
    default: otelcol-contrib
  arch:
    description: For C(release), the architecture (amd64, arm64).
    type: str
    default: amd64
  version:
    description:
      - For C(release), the version whose artefact names and URLs are returned; empty takes the release
        pinned by the catalog.
    type: str
    default: ""
  dist:
    description:
      - For C(release), the version that C(otelstack dist build) / C(otelstack dist package) builds instead of
        the catalog's upstream pin (they differ when a module of the pinned release is not published).
    type: bool
    default: false
  roles:
    description: For C(firewall), the platform roles the host holds; empty takes its inventory groups that are platform roles.
    type: list
    elements: str
    default: []
  sources:
    description: For C(firewall), extra addresses or networks per source role.
    type: dict
    default: {}
  from_inventory:
    description: For C(firewall), add the addresses of the inventory's hosts (gathered default IPv4/IPv6, IP ansible_host).
    type: bool
    default: true
  addresses:
    description:
      - For C(firewall) and C(firewall_unknown), addresses per host known besides the inventory's facts (the
        firewall role passes the facts it gathered of hosts outside the play).
    type: dict
    default: {}
  host:
    description: For C(firewall), the host name written into the ruleset's header.
    type: str
    default: ""
  text:
    description: For C(secrets), the rendered config text.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Render this host's collector config
  ansible.builtin.set_fact:
    config_text: "{{ lookup('otelstack.platform.otelstack', 'collector', configs_dir=configs, env='prod',
                    region='us-east-1', profile='agent-vm', agent=otelstack_agent_overrides) }}"
"""

RETURN = r"""
_raw:
  description: The rendered text (collector, supervisor) or a dict (release).
"""

import dataclasses  # noqa: E402
import ipaddress  # noqa: E402
import re  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

display = Display()


def _plain(value):  # type: ignore[no-untyped-def]
    """Ansible (2.19+) passes tagged str/dict subclasses; otelstack renders plain Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _host_addresses(hostvars, name):  # type: ignore[no-untyped-def]
    facts = hostvars[name].get("ansible_facts", {}) or {}
    found = [(facts.get(key) or {}).get("address") for key in ("default_ipv4", "default_ipv6")]
    given = str(hostvars[name].get("ansible_host", "") or "")
    try:
        ipaddress.ip_address(given)
        found.append(given)
    except ValueError:
        pass
    return [str(a) for a in found if a]


def _release_version(value):  # type: ignore[no-untyped-def]
    """A release version as upstream tags it (0.159.0, 0.160.0-rc.1); a leading v is dropped."""
    version = str(value).strip().removeprefix("v")
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?", version):
        raise AnsibleLookupError(f"otelstack release: version {value!r} is not a release version such as 0.159.0")
    return version


def _dist_version(name):  # type: ignore[no-untyped-def]
    """The version `otelstack dist` builds of a program (the catalog's build section)."""
    from otelstack.catalog.components import catalog

    cat = catalog()
    if name == "opampsupervisor":
        return str(cat.build["supervisor_version"]).removeprefix("v")
    return str(cat.release["otelcol_contrib"])


def _host_of(endpoint):  # type: ignore[no-untyped-def]
    """The host of a gRPC target: ``dns:///name:4317``, ``name:4317``, ``[::1]:4317`` or ``name``."""
    target = str(endpoint)
    if "://" in target:
        target = target.split("://", 1)[1].lstrip("/")
        target = target.split("/", 1)[-1] if "/" in target else target
    if target.startswith("["):
        return target[1:].split("]", 1)[0]
    return target.rsplit(":", 1)[0] if target.count(":") == 1 else target


def _gateway_names(common, profile):  # type: ignore[no-untyped-def]
    """The names agents dial to reach the gateways, read from the agent config otelstack renders.

    Whatever the resolver, this is what the agents' exporters really use: the load_balancing resolver
    (dns: one name every gateway answers for; static: one name per gateway) and the OTLP exporters'
    targets (metrics and logs). A target that is one of the static hostnames is that gateway's own name;
    any other target is a service name every gateway must carry.
    """
    import yaml

    from otelstack.render import render_agent_config

    agent_profile = "agent-vm" if not str(profile).startswith("agent") else str(profile)
    config = yaml.safe_load(
        render_agent_config(common["configs_dir"], common["env"], common["region"], profile=agent_profile).text
    )
    service, static = [], []
    for name, exporter in (config.get("exporters") or {}).items():
        kind = str(name).split("/", 1)[0]
        exporter = exporter or {}
        if kind in ("load_balancing", "loadbalancing"):
            resolver = exporter.get("resolver") or {}
            if "dns" in resolver:
                service.append(str(resolver["dns"]["hostname"]))
            static += [_host_of(h) for h in (resolver.get("static") or {}).get("hostnames", [])]
        elif kind in ("otlp_grpc", "otlp") and exporter.get("endpoint"):
            service.append(_host_of(exporter["endpoint"]))
    static = list(dict.fromkeys(static))
    service = [n for n in dict.fromkeys(service) if n not in static]
    return {"service": service, "static": static}


class LookupModule(LookupBase):
    @staticmethod
    def _addresses(variables, groups, opt):  # type: ignore[no-untyped-def]
        """Addresses per inventory host: its facts and IP ansible_host, plus the `addresses` option."""
        hostvars = variables["hostvars"]
        given = opt("addresses") or {}
        members = sorted({h for hosts in groups.values() for h in hosts})
        return {
            name: [*_host_addresses(hostvars, name), *[str(a) for a in given.get(name) or [] if a]] for name in members
        }

    def _firewall(self, nftables, variables, opt):  # type: ignore[no-untyped-def]
        groups = {str(k): [str(h) for h in v] for k, v in (variables.get("groups") or {}).items()}
        sources = {}
        if opt("from_inventory"):
            addresses = self._addresses(variables, groups, opt)
            sources, unknown = nftables.inventory_sources(groups, addresses)
            if unknown:
                # A ruleset rendered without them would drop every connection they make (with --limit,
                # an unreachable host or no fact cache): never render from a partial inventory.
                raise AnsibleLookupError(
                    "otelstack firewall: no address known for the platform host(s) " + ", ".join(unknown)
                    + "; gather their facts in the same run (the firewall role does), make them reachable, or give"
                    " an IP address as their ansible_host; the ruleset is not rendered from a partial inventory"
                )
        for role, extra in (opt("sources") or {}).items():
            # A non-list is passed through as given, so that the renderer names it in its error.
            sources[role] = [*sources.get(role, []), *extra] if isinstance(extra, list) else extra
        roles = opt("roles") or nftables.host_roles(variables.get("group_names") or [])
        return nftables.render(roles, sources, host=opt("host"))

    def run(self, terms, variables=None, **kwargs):  # type: ignore[no-untyped-def]
        self.set_options(var_options=variables, direct=kwargs)
        opt = lambda name: _plain(self.get_option(name))  # noqa: E731
        # Each term imports only the otelstack modules it needs: a lookup runs in a worker forked per task
        # and host, which pays every import its parent (the controller process) has not made already
        # (playbooks/callback_plugins/otelstack_controller.py makes them there, once).
        try:
            from otelstack.errors import OtelstackError
        except ImportError as exc:  # pragma: no cover - environment problem
            raise AnsibleLookupError(
                f"the otelstack Python package is not importable by the controller's Python: {exc}"
            ) from exc
        results = []
        for term in map(str, terms):
            try:
                if term == "layout":
                    from otelstack.security.layout import vm_facts

                    results.append(vm_facts())
                    continue
                if term == "version":
                    from otelstack import __version__

                    results.append(__version__)
                    continue
                if term == "secrets":
                    from otelstack.validate.binary import secret_references

                    results.append([name for provider, name in secret_references(opt("text")) if provider == "env"])
                    continue
                if term in ("firewall", "firewall_unknown"):
                    from otelstack.security import nftables
                if term == "firewall_unknown":
                    # The platform hosts (members of a platform-role group) with no known address.
                    variables = variables or {}
                    groups = {str(k): [str(h) for h in v] for k, v in (variables.get("groups") or {}).items()}
                    addresses = self._addresses(variables, groups, opt)
                    results.append(nftables.inventory_sources(groups, addresses)[1])
                    continue
                if term == "firewall":
                    results.append(self._firewall(nftables, variables or {}, opt))
                    continue
                if term == "release":
                    from otelstack.catalog import versions

                    rel = versions.opampsupervisor() if opt("component") == "opampsupervisor" \
                        else versions.otelcol_contrib()
                    if opt("version"):
                        rel = dataclasses.replace(rel, version=_release_version(opt("version")))
                    elif opt("dist"):
                        rel = dataclasses.replace(rel, version=_dist_version(rel.name))
                    arch = opt("arch")
                    name = rel.archive_name(arch)
                    results.append({
                        "name": rel.name, "version": rel.version, "binary": rel.binary, "artefact": name,
                        "url": rel.url(name), "sha256": rel.pinned_sha256(name) or "",
                    })
                    continue
                common = {
                    "configs_dir": opt("configs_dir"),
                    "env": opt("env"),
                    "region": opt("region") or None,
                }
                if not common["configs_dir"] or not common["env"]:
                    raise AnsibleLookupError("otelstack lookup: configs_dir and env are required")
                if term == "collector":
                    from otelstack.render import render_agent_config

                    rendered = render_agent_config(
                        common["configs_dir"], common["env"], common["region"],
                        profile=opt("profile"), agent=opt("agent") or None,
                        variant=opt("variant"),
                    )
                elif term == "sizing":
                    # The sizing model's figures for the platform (per tier: memory_limit_mib, gomemlimit_mib, ...).
                    from otelstack.model.loader import load_spec
                    from otelstack.sizing import size_platform

                    spec = load_spec(common["configs_dir"], common["env"], common["region"], agent=opt("agent") or None)
                    results.append(size_platform(spec).to_dict())
                    continue
                elif term == "gateway_names":
                    results.append(_gateway_names(common, opt("profile")))
                    continue
                elif term == "supervisor":
                    from otelstack.render import render_supervisor_config

                    rendered = render_supervisor_config(
                        common["configs_dir"], common["env"], common["region"], profile=opt("profile"),
                        agent=opt("agent") or None,
                    )
                else:
                    raise AnsibleLookupError(
                        f"otelstack lookup: unknown term {term!r}; allowed: collector, supervisor, release, layout, firewall, "
                        "firewall_unknown, version, secrets, gateway_names, sizing"
                    )
                results.append(rendered.text)
            except (OtelstackError, ValueError) as exc:
                raise AnsibleLookupError(f"otelstack: {exc}") from exc
        return results
