"""Names in ClickHouse SQL: checked before they are written, then quoted (backticks) or written as literals."""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClickHouseSchemaError(ValueError):
    """A name or setting that cannot be written into the ClickHouse schema; the message says what is allowed."""


def checked(name: str, what: str) -> str:
    """``name`` if it is a plain identifier, else a clear error naming ``what`` it is."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ClickHouseSchemaError(
            f"{what} {name!r} is not a valid ClickHouse name; allowed: a letter or '_', then letters, digits or '_' "
            "(e.g. otel, otel_cluster)"
        )
    return name


def ident(name: str, what: str = "identifier") -> str:
    """A checked identifier, backtick-quoted."""
    return f"`{checked(name, what)}`"


def qualified(database: str, table: str) -> str:
    """`database`.`table`, both checked."""
    return f"{ident(database, 'database')}.{ident(table, 'table')}"


def literal(value: str) -> str:
    """A single-quoted ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
