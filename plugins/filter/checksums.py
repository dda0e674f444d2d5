# Copyright otelstack developers. Apache-2.0.
"""Filter plugins: read a SHA256SUMS text (sha256sum's format) into the pins the roles verify against."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: sha256sums
short_description: A SHA256SUMS text as a mapping of file name to SHA-256 digest
description:
  - Parses the lines C(<64 hex digits>  <file name>) that C(sha256sum) writes (and C(otelstack dist package) writes
    into its output directory) into a dict, the shape of C(otel_collector_sha256).
  - A malformed line, or a file listed twice with different digests, fails with the line number.
options:
  _input:
    description: The text of a SHA256SUMS file.
    type: str
    required: true
"""

EXAMPLES = r"""
otel_collector_sha256: "{{ lookup('ansible.builtin.file', '/srv/mirror/SHA256SUMS') | otelstack.platform.sha256sums }}"
"""

RETURN = r"""
_value:
  description: File name → lower-case hex digest.
  type: dict
"""


def sha256sums(text):  # type: ignore[no-untyped-def]
    try:
        from otelstack.dist.checksums import ChecksumsError, parse_sums
    except ImportError as exc:  # pragma: no cover - environment problem
        raise AnsibleFilterError(
            f"the otelstack Python package is not importable by the controller's Python: {exc}"
        ) from exc
    if not isinstance(text, str):
        raise AnsibleFilterError(f"sha256sums: expects the text of a SHA256SUMS file, not {type(text).__name__}")
    try:
        return parse_sums(text)
    except ChecksumsError as exc:
        raise AnsibleFilterError(f"sha256sums: {exc}") from exc


class FilterModule:
    def filters(self):  # type: ignore[no-untyped-def]
        return {"sha256sums": sha256sums}
