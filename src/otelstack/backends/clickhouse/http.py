"""A minimal DB-API-like connection over ClickHouse's HTTP interface, for the runner on real servers (no
driver to install; clickhouse-connect's ``dbapi`` works as well). Results come back as TabSeparated text."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from .identifiers import ClickHouseSchemaError


class HttpCursor:
    def __init__(self, connection: HttpConnection) -> None:
        self._connection = connection
        self._rows: list[tuple[str, ...]] = []

    def execute(self, operation: str, /) -> None:
        text = self._connection.post(operation)
        self._rows = [tuple(_unescape(f) for f in line.split("\t")) for line in text.splitlines()]

    def fetchall(self) -> Sequence[Sequence[Any]]:
        return self._rows


class HttpConnection:
    """``url``: http(s)://host:8123 or :8443; credentials in headers, never in the URL or the query log."""

    def __init__(self, url: str, user: str, password: str, *, cafile: str | None = None, timeout: float = 60) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ClickHouseSchemaError(f"{url!r} is not an HTTP(S) URL of ClickHouse, e.g. https://clickhouse:8443")
        self._url = url.rstrip("/") + "/?" + urlencode({"default_format": "TabSeparated", "wait_end_of_query": 1})
        self._headers = {"X-ClickHouse-User": user, "X-ClickHouse-Key": password}
        self._context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
        self._timeout = timeout

    def cursor(self) -> HttpCursor:
        return HttpCursor(self)

    def close(self) -> None:
        """Nothing to close: one request per statement."""

    def post(self, sql: str) -> str:
        request = urllib.request.Request(self._url, data=sql.encode(), headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._context) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise ClickHouseSchemaError(f"ClickHouse answered {exc.code}: {detail}") from None


def _unescape(field: str) -> str:
    return field.replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\")
