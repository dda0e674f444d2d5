"""Secret values the stack generates itself: a Pulumi dynamic provider in Python.

The issue asked for ``pulumi_random``; its provider plugin is Terraform-bridged and cannot be built here
(its Go module is not on the module proxy list this project builds from), so a small dynamic provider does
the one thing needed: a random value made once, at create, by ``secrets.token_urlsafe`` (the OS's CSPRNG),
kept in the state as a secret output (encrypted by the stack's secrets provider), never shown in a diff,
and stable across updates — only a changed length (or ``pulumi up --replace``) makes a new value. The
provider itself is otelstack.kubernetes.random_value (importable by the provider's own process); the engine
starts that process through the plugin ``pulumi-resource-pulumi-python``, which ``otelstack dist kubetools``
writes next to the built ``pulumi`` (otelstack.dist.dynamic_provider).

A Secret annotated ``otelstack.io/generated-keys: K1,K2`` (the renderer marks the keys it may generate, e.g.
the ClickHouse passwords the schema Job sets) takes a generated value for each such key the stack's secret
config does not give; a key given in ``otelstack:secrets`` always wins.
"""

from __future__ import annotations

import pulumi
from pulumi.dynamic import Resource

from otelstack.kubernetes.random_value import DEFAULT_BYTES, RandomValueProvider

__all__ = ["DEFAULT_BYTES", "RandomValue", "RandomValueProvider"]


class RandomValue(Resource):
    """A random secret value, made once and kept (encrypted) in the stack's state."""

    value: pulumi.Output[str]

    def __init__(self, name: str, size: int = DEFAULT_BYTES, opts: pulumi.ResourceOptions | None = None) -> None:
        secret_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"]))
        super().__init__(RandomValueProvider(), name, {"bytes": size, "value": None}, secret_opts)
