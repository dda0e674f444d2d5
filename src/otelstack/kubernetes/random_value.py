"""The dynamic provider behind the stack's generated secret values (stacks/components/generated.py).

It lives in the installed package, not next to the Pulumi program, because a dynamic provider runs in a
process of its own: the engine starts ``pulumi-resource-pulumi-python`` (otelstack.dist.dynamic_provider),
which unpickles the provider object the program registered. The object is pickled by reference (module and
class name), so its module must be importable by the project's interpreter from any directory — the
``stacks`` package is importable only by the program, which puts the repository on its path itself. By
reference also keeps the pickled provider, an input of every generated value, the same from run to run.

create makes a random value by ``secrets.token_urlsafe`` (the OS's CSPRNG); diff asks for a replacement
only when the length changes; there is no update: the value never changes in place.
"""

from __future__ import annotations

import secrets
from typing import Any

from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

DEFAULT_BYTES = 32  # 256 bits of entropy: 43 URL-safe characters


class RandomValueProvider(ResourceProvider):
    """create: a new random value; diff: a replacement only when the length changes; nothing else."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        size = int(props.get("bytes") or DEFAULT_BYTES)
        return CreateResult(id_=secrets.token_hex(8), outs={"bytes": size, "value": secrets.token_urlsafe(size)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = int(olds.get("bytes") or DEFAULT_BYTES) != int(news.get("bytes") or DEFAULT_BYTES)
        return DiffResult(changes=changed, replaces=["bytes"] if changed else [], delete_before_replace=False)
