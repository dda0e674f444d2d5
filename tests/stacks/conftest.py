"""Fixtures of the stack tests: `cluster`, a Kubernetes API server with etcd on loopback (tests/stacks/cluster.py).

Tests that use it carry the `cluster` marker (`pytest -m cluster`). It starts once per session and is
skipped, with the reason, only when `make binaries` has not built the programs into .cache/bin.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otelstack.dist.kubetools import crd_files
from tests.stacks.cluster import CLUSTER_PROGRAMS, Cluster, skip_reason, start_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    reason = skip_reason(CLUSTER_PROGRAMS)
    if reason:
        pytest.skip(reason)
    with start_cluster(crds=crd_files()) as running:
        yield running
