# Copyright otelstack developers. Apache-2.0.
"""Filter plugins: release selection with otelstack's version rules (otelstack.catalog.versions)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def rollback_target(installed, active, previous=""):  # type: ignore[no-untyped-def]
    """The installed release a rollback returns to: the recorded previous one when it is older than the
    active one, else the newest installed release older than the active one; empty when there is none."""
    try:
        from otelstack.catalog.versions import rollback_target as select
    except ImportError as exc:  # pragma: no cover - environment problem
        raise AnsibleFilterError(f"the otelstack Python package is not importable by the controller's Python: {exc}") from exc
    if not isinstance(installed, (list, tuple)):
        raise AnsibleFilterError(f"rollback_target: installed must be a list of versions, not {type(installed).__name__}")
    return select([str(v) for v in installed], str(active or ""), str(previous or ""))


class FilterModule:
    def filters(self):  # type: ignore[no-untyped-def]
        return {"rollback_target": rollback_target}
