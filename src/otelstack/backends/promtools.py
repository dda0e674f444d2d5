"""Run the real promtool and amtool on rendered files: found in .cache/bin, the build cache, or PATH.

The rendered configs name certificates and secret files that exist only on the target hosts. For a check
each such absolute path is swapped for a placeholder file in a scratch copy, so the tool judges the config
and not this machine (the same idea as ``otelcol-contrib validate`` with placeholder secrets).
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otelstack.model.spec import PlatformSpec

TIMEOUT_SECONDS = 120
# Keys whose value is a file the program opens (TLS material, credentials, receiver secrets).
FILE_KEYS = frozenset(
    {"ca_file", "cert_file", "key_file", "credentials_file", "url_file", "routing_key_file", "api_url_file"}
)


def locate_tool(name: str) -> str | None:
    """``name`` from .cache/bin (``make binaries``), the per-user build cache, or PATH; None when absent."""
    local = Path(".cache/bin") / name
    if local.exists() and os.access(local, os.X_OK):
        return str(local.resolve())
    try:
        from otelstack.dist.build import cache_root, host_arch
        from otelstack.dist.gotools import BACKENDS, programs

        for program in programs(BACKENDS):
            if program.binary == name:
                built = program.directory(cache_root(), host_arch()) / program.binary
                if built.is_file():
                    return str(built)
    except Exception:  # an unsupported machine or an unreadable cache: fall through to PATH
        pass
    return shutil.which(name)


def missing_tool(name: str) -> str:
    return (
        f"note: {name} not found (`make binaries` or `otelstack dist backendtools --link .cache/bin` builds it); "
        "not checked by the real program"
    )


@cache
def throwaway_pair() -> tuple[str, str]:
    """A self-signed certificate and its key (PEM) for checks that load a key pair (web-config)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "otelstack-check-placeholder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _placeholder_text(key: str) -> str:
    cert, private = throwaway_pair()
    if key == "key_file":
        return private
    if key in ("cert_file", "ca_file"):
        return cert
    return "https://placeholder.invalid/otelstack-check\n"


def with_placeholder_files(node: Any, scratch: Path) -> Any:
    """``node`` with every absolute path under a FILE_KEYS key replaced by a placeholder file in ``scratch``
    (a throwaway certificate and key for TLS files, a placeholder URL for secrets)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in FILE_KEYS and isinstance(value, str) and value.startswith("/"):
                placeholder = scratch / "files" / value.lstrip("/")
                placeholder.parent.mkdir(parents=True, exist_ok=True)
                placeholder.write_text(_placeholder_text(key), encoding="utf-8")
                out[key] = str(placeholder)
            else:
                out[key] = with_placeholder_files(value, scratch)
        return out
    if isinstance(node, list):
        return [with_placeholder_files(item, scratch) for item in node]
    return node


def scratch_copy(directory: Path, *config_names: str) -> tuple[tempfile.TemporaryDirectory[str], Path]:
    """A scratch copy of ``directory`` whose ``config_names`` point at placeholder files."""
    tmp = tempfile.TemporaryDirectory(prefix="otelstack-check-")
    copy = Path(tmp.name) / directory.name
    shutil.copytree(directory, copy)
    for name in config_names:
        config = copy / name
        if config.is_file():
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
            config.write_text(yaml.safe_dump(with_placeholder_files(data, Path(tmp.name))), encoding="utf-8")
    return tmp, copy


def run_tool(argv: Sequence[str], cwd: Path, scratch: Path) -> tuple[bool, str]:
    """Run one check; (passed, its output with the scratch directory's path taken out)."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(argv)} did not finish in {TIMEOUT_SECONDS}s"
    output = (proc.stdout + proc.stderr).strip().replace(f"{scratch}/", "")
    return proc.returncode == 0, output


def web_config(spec: PlatformSpec, tls_dir: str) -> dict[str, Any]:
    """The exporter-toolkit web config (``--web.config.file``) of Prometheus and Alertmanager: HTTPS with the
    server certificate in ``tls_dir``, at the platform's minimum TLS version."""
    return {
        "tls_server_config": {
            "cert_file": f"{tls_dir}/server.crt",
            "key_file": f"{tls_dir}/server.key",
            "min_version": "TLS13" if spec.security.tls_min_version == "1.3" else "TLS12",
        }
    }
