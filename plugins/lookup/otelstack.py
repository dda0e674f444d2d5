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
    ports and secret variable names that every otelstack role uses.
options:
  _terms:
    description: What to render, one of C(collector), C(supervisor), C(release), C(layout).
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
    description: Level-5 (agent) overrides, same shape as a configs/ level file.
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

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402


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


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):  # type: ignore[no-untyped-def]
        self.set_options(var_options=variables, direct=kwargs)
        opt = lambda name: _plain(self.get_option(name))  # noqa: E731
        try:
            from otelstack.catalog import versions
            from otelstack.errors import OtelstackError
            from otelstack.render import render_agent_config, render_supervisor_config
            from otelstack.security.layout import vm_facts
        except ImportError as exc:  # pragma: no cover - environment problem
            raise AnsibleLookupError(
                f"the otelstack Python package is not importable by the controller's Python: {exc}"
            ) from exc
        results = []
        for term in map(str, terms):
            try:
                if term == "layout":
                    results.append(vm_facts())
                    continue
                if term == "release":
                    rel = versions.opampsupervisor() if opt("component") == "opampsupervisor" \
                        else versions.otelcol_contrib()
                    arch = opt("arch")
                    name = rel.archive_name(arch)
                    results.append({
                        "name": rel.name, "version": rel.version, "binary": rel.binary, "artefact": name,
                        "checksum_file": rel.checksums_name(arch), "url": rel.url(name),
                        "checksum_url": rel.url(rel.checksums_name(arch)),
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
                    rendered = render_agent_config(
                        common["configs_dir"], common["env"], common["region"],
                        profile=opt("profile"), agent=opt("agent") or None,
                        variant=opt("variant"),
                    )
                elif term == "supervisor":
                    rendered = render_supervisor_config(
                        common["configs_dir"], common["env"], common["region"], profile=opt("profile")
                    )
                else:
                    raise AnsibleLookupError(
                        f"otelstack lookup: unknown term {term!r}; allowed: collector, supervisor, release, layout"
                    )
                results.append(rendered.text)
            except (OtelstackError, ValueError) as exc:
                raise AnsibleLookupError(f"otelstack: {exc}") from exc
        return results
