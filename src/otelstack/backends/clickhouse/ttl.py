"""TTL per retention tier (spec.retention): moves between volumes, then deletion.

The tiers are ages: a row is on ``hot`` until ``hot_days``, on ``warm`` until ``warm_days``, on ``cold`` until
``cold_days``, in ``archive`` until ``archive_days`` (0: no such tier). Data in every tier stays queryable, so
the table's only ``DELETE`` is at the total (the last non-zero tier). With a storage policy configured
(``backends.clickhouse.storage_policy``, volumes named after the tiers) each later tier becomes
``TTL … TO VOLUME '<tier>'`` at the age where the tier before it ends; without one every tier lives on the
default disk and only the deletion applies (ClickHouse cannot move data to a volume that does not exist).
A tier as long as the one before it (e.g. warm_days = hot_days) holds nothing and gets no move.
"""

from __future__ import annotations

from otelstack.model.spec import SignalRetention

from .identifiers import literal

VOLUMES = ("hot", "warm", "cold", "archive")


def tier_moves(retention: SignalRetention) -> list[tuple[int, str]]:
    """(age in days, volume) at which rows move to each later tier that holds data."""
    moves: list[tuple[int, str]] = []
    previous_end = retention.hot_days
    for volume, days in (
        ("warm", retention.warm_days),
        ("cold", retention.cold_days),
        ("archive", retention.archive_days),
    ):
        if days > previous_end:
            moves.append((previous_end, volume))
            previous_end = days
    return moves


def ttl_expression(time_expr: str, retention: SignalRetention, *, tiered: bool) -> str:
    """The body of a ``TTL`` clause: the moves (when ``tiered``), then the deletion at the total."""
    parts = [
        f"{time_expr} + toIntervalDay({days}) TO VOLUME {literal(volume)}" for days, volume in tier_moves(retention)
    ]
    if not tiered:
        parts = []
    parts.append(f"{time_expr} + toIntervalDay({retention.total_days}) DELETE")
    return ", ".join(parts)
