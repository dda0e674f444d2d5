"""Secret values the stack generates itself: a Pulumi dynamic provider in Python.

The issue asked for ``pulumi_random``; its provider plugin is Terraform-bridged and cannot be built here
(its Go module is not on the module proxy list this project builds from), so a small dynamic provider does
the one thing needed: a random value made once, at create, by ``secrets.token_urlsafe`` (the OS's CSPRNG),
kept in the state as a secret output (encrypted by the stack's secrets provider), never shown in a diff,
and stable across updates — only a changed length (or ``pulumi up --replace``) makes a new value.

A Secret annotated ``otelstack.io/generated-keys: K1,K2`` (the renderer marks the keys it may generate, e.g.
the ClickHouse passwords the schema Job sets) takes a generated value for each such key the stack's secret
config does not give; a key given in ``otelstack:secrets`` always wins.
"""

from __future__ import annotations

import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

DEFAULT_BYTES = 32  # 256 bits of entropy: 43 URL-safe characters


class RandomValueProvider(ResourceProvider):
    """create: a new random value; diff: a replacement only when the length changes; nothing else."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        size = int(props.get("bytes") or DEFAULT_BYTES)
        return CreateResult(id_=secrets.token_hex(8), outs={"bytes": size, "value": secrets.token_urlsafe(size)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = int(olds.get("bytes") or DEFAULT_BYTES) != int(news.get("bytes") or DEFAULT_BYTES)
        return DiffResult(changes=changed, replaces=["bytes"] if changed else [], delete_before_replace=False)


class RandomValue(Resource):
    """A random secret value, made once and kept (encrypted) in the stack's state."""

    value: pulumi.Output[str]

    def __init__(self, name: str, size: int = DEFAULT_BYTES, opts: pulumi.ResourceOptions | None = None) -> None:
        secret_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"]))
        super().__init__(RandomValueProvider(), name, {"bytes": size, "value": None}, secret_opts)
