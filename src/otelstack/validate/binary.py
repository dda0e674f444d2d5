"""Run the real collector's ``validate`` on a rendered config.

Rendered configs reference secrets (``${env:NAME}``, ``${file:/path}``) that exist only on the hosts.
For the check each reference gets a placeholder value, so the binary judges the config itself and not
this machine's environment; :func:`secret_references` lists them, so a caller that does have the
secrets' environment (the roles) can report a missing one by name before running the binary.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from otelstack.dist.locate import locate
from otelstack.yamlout import dump

# ${env:NAME}, ${env:NAME:-default}, ${file:/path}; "$${…}" is an escaped literal and not a reference.
REFERENCE = re.compile(r"(?<!\$)\$\{(env|file):([^}:]+)(?::-[^}]*)?\}")
PLACEHOLDER = "otelstack-validate-placeholder"
TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class BinaryCheck:
    ok: bool
    output: str
    binary: str
    adjusted: tuple[str, ...] = ()  # what the check changed because it runs outside the target


# `validate` builds every component; the kubelet_stats receiver then reads the pod's service-account
# token and CA (files that exist only inside a pod). Off-cluster it is checked with `auth_type: none`.
POD_ONLY_AUTH = ("kubelet_stats", "kubeletstats")


def off_cluster(text: str) -> tuple[str, list[str]]:
    """The config as `validate` can build it on this machine, and a note per change made."""
    if "serviceAccount" not in text:
        return text, []
    config = yaml.safe_load(text)
    notes = []
    for name, settings in (config.get("receivers") or {}).items():
        pod_auth = isinstance(settings, dict) and settings.get("auth_type") == "serviceAccount"
        if name.split("/")[0] in POD_ONLY_AUTH and pod_auth:
            settings["auth_type"] = "none"
            notes.append(f"receivers.{name}: checked with auth_type none (its service account exists only in a pod)")
    return (dump(config) if notes else text), notes


def secret_references(text: str) -> list[tuple[str, str]]:
    """(provider, name) of every ``${env:…}`` / ``${file:…}`` reference, in order, without repeats."""
    seen: dict[tuple[str, str], None] = {}
    for match in REFERENCE.finditer(text):
        seen[(match.group(1), match.group(2))] = None
    return list(seen)


def missing_secrets(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per secret the config references that this environment cannot give (a host's check)."""
    env = os.environ if environ is None else environ
    problems = []
    for provider, name in secret_references(text):
        if provider == "env" and not env.get(name):
            problems.append(f"secret ${{env:{name}}} is referenced but {name} is not set (or empty)")
        elif provider == "file" and not os.access(name, os.R_OK):
            problems.append(f"secret ${{file:{name}}} is referenced but {name} cannot be read")
    return problems


def with_placeholders(text: str) -> tuple[str, dict[str, str]]:
    """The config with file references turned into env references, and placeholder values for all."""
    env: dict[str, str] = {}
    files: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        provider, name = match.group(1), match.group(2)
        if provider == "env":
            env[name] = PLACEHOLDER
            return match.group(0)
        var = files.setdefault(name, f"OTELSTACK_VALIDATE_FILE_{len(files)}")
        env[var] = PLACEHOLDER
        return "${env:" + var + "}"

    return REFERENCE.sub(swap, text), env


def run_otelcol_validate(text: str, binary: str | None = None) -> BinaryCheck | None:
    """``otelcol-contrib validate`` on ``text``; None when no binary is available (see dist.locate)."""
    exe = binary or locate("otelcol-contrib")
    if exe is None:
        return None
    adjusted, notes = off_cluster(text)
    config, placeholders = with_placeholders(adjusted)
    with tempfile.TemporaryDirectory(prefix="otelstack-validate-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(config, encoding="utf-8")
        try:
            proc = subprocess.run(
                [exe, "validate", f"--config={path}"],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
                env={**os.environ, **placeholders},
            )
        except subprocess.TimeoutExpired:
            return BinaryCheck(False, f"{exe} validate did not finish in {TIMEOUT_SECONDS}s", exe)
    output = (proc.stdout + proc.stderr).strip().replace(str(path), "<config>")
    return BinaryCheck(proc.returncode == 0, output, exe, tuple(notes))
