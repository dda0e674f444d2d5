"""SHA256SUMS files: the pins of a mirror's artefacts, in the format ``sha256sum`` writes and checks.

``otelstack dist package`` writes one next to the artefacts it lays out (``sha256sum -c SHA256SUMS``
verifies them); the roles read it with the ``otelstack.platform.sha256sums`` filter into
``otel_collector_sha256``, so an offline install is verified against a list the operator chose, not only
against the ``.sha256`` file beside each artefact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

SUMS_FILE = "SHA256SUMS"
_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](\S+)")


class ChecksumsError(ValueError):
    """A SHA256SUMS text that is not in the format sha256sum writes."""


def parse_sums(text: str, source: str = SUMS_FILE) -> dict[str, str]:
    """File name → lower-case digest; a malformed line or a name listed twice with two digests is an error."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line.strip())
        if not match:
            raise ChecksumsError(f"{source}:{number}: not '<64 hex digits>  <file name>': {line.strip()[:80]!r}")
        digest, name = match[1].lower(), match[2]
        if sums.get(name, digest) != digest:
            raise ChecksumsError(f"{source}:{number}: {name} is listed twice with different digests")
        sums[name] = digest
    return sums


def format_sums(sums: Mapping[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def write_sums(directory: Path) -> Path:
    """(Re)write ``directory/SHA256SUMS`` from every ``<artefact>.sha256`` there whose artefact exists."""
    sums: dict[str, str] = {}
    for checksum in sorted(directory.glob("*.sha256")):
        artefact = checksum.with_suffix("")
        if artefact.is_file():
            digest = checksum.read_text(encoding="utf-8").split()[0].lower()
            sums.update(parse_sums(f"{digest}  {artefact.name}", str(checksum)))
    target = directory / SUMS_FILE
    tmp = target.with_name(f".{SUMS_FILE}.tmp")
    tmp.write_text(format_sums(sums), encoding="utf-8")
    tmp.replace(target)
    return target
