"""Errors otelstack raises for bad input. Every message names where the problem is and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable


class OtelstackError(Exception):
    """Base class. ``issues`` holds one line per problem, each naming its location."""

    def __init__(self, summary: str, issues: Iterable[str] = ()) -> None:
        self.summary = summary
        self.issues: list[str] = list(issues)
        super().__init__(self._format())

    def _format(self) -> str:
        if not self.issues:
            return self.summary
        return self.summary + "\n" + "\n".join(f"  - {line}" for line in self.issues)


class SpecError(OtelstackError):
    """The platform spec (configs/ hierarchy or a namespace/agent level) is invalid."""


class ConfigValidationError(OtelstackError):
    """A rendered artefact failed validation; nothing is written."""
