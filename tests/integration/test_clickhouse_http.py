"""``python -m otelstack.backends.clickhouse apply`` over the HTTP interface, against a loopback stand-in.

No ClickHouse server can be built here, so the stand-in (this file only, never shipped) serves ClickHouse's HTTP
interface from chDB, the real engine: it checks the credentials headers like the server, runs every statement on
the engine, and answers errors with ClickHouse's message and a non-200 status. Access-control statements (users,
roles, grants) need a writable access storage that chDB lacks: the stand-in parses them with the engine's parser
and records them instead of executing them, and says so in every answer (``X-Stand-In``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from otelstack.backends.clickhouse import render_clickhouse
from otelstack.backends.clickhouse.__main__ import main
from otelstack.backends.clickhouse.check import chdb_connection
from otelstack.backends.clickhouse.identifiers import literal
from otelstack.model.spec import PlatformSpec

pytest.importorskip("chdb")

ACCESS = ("CREATE ROLE", "CREATE USER", "ALTER ROLE", "ALTER USER", "GRANT", "REVOKE")


class StandIn:
    def __init__(self, conn: Any, user: str, password: str) -> None:
        self.conn, self.user, self.password = conn, user, password
        self.access: list[str] = []
        self.lock = threading.Lock()

    def handle(self, headers: Any, sql: str) -> tuple[int, str]:
        if headers.get("X-ClickHouse-User") != self.user or headers.get("X-ClickHouse-Key") != self.password:
            return 403, f"Code: 516. DB::Exception: {headers.get('X-ClickHouse-User')}: Authentication failed"
        with self.lock:
            cur = self.conn.cursor()
            try:
                if sql.lstrip().upper().startswith(ACCESS):
                    cur.execute(f"SELECT formatQuery({literal(sql)})")
                    self.access.append(sql)
                    return 200, ""
                cur.execute(sql)
                result = cur.fetchall() if cur.description else []
            except Exception as exc:
                return 500, str(exc)
        return 200, "".join("\t".join(str(v) for v in row) + "\n" for row in result)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, StandIn]]:
    with chdb_connection(PlatformSpec(environment="dev"), tmp_path / "engine") as conn:
        stand_in = StandIn(conn, "otelstack_admin", "admin-pw")

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
                status, body = stand_in.handle(self.headers, sql)
                self.send_response(status)
                self.send_header("X-Stand-In", "chdb: a stand-in for the ClickHouse HTTP interface, not a server")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}", stand_in
        finally:
            httpd.shutdown()
            httpd.server_close()


def apply_args(url: str, directory: Path) -> list[str]:
    """The files rendered into ``directory``, and the command line applying them as the stand-in's admin."""
    for path, text in render_clickhouse(PlatformSpec(environment="dev")).items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(text, encoding="utf-8")
    return ["apply", "--dir", str(directory), "--url", url, "--user", "otelstack_admin", "--password", "env:ADMIN_PW"]


def test_apply_over_http_twice(
    server: tuple[str, StandIn], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, stand_in = server
    args = apply_args(url, tmp_path / "build")
    monkeypatch.setenv("ADMIN_PW", "admin-pw")
    monkeypatch.setenv("OTELSTACK_CLICKHOUSE_PASSWORD", "writer-pw")
    monkeypatch.setenv("OTELSTACK_CLICKHOUSE_READER_PASSWORD", "reader-pw")
    assert main(args) == 0
    assert "applied 001-database, 002-traces" in capsys.readouterr().out
    assert main(args) == 0
    assert "no migration (up to date)" in capsys.readouterr().out
    cur = stand_in.conn.cursor()
    cur.execute("SELECT count() FROM otel.otelstack_schema_migrations")
    assert cur.fetchall()[0][0] == 10
    writer_hash = hashlib.sha256(b"writer-pw").hexdigest()
    assert f"ALTER USER `otel_writer` IDENTIFIED WITH sha256_hash BY '{writer_hash}'" in stand_in.access
    assert not any("writer-pw" in s for s in stand_in.access)


def test_apply_over_http_with_a_wrong_password_fails_clearly(
    server: tuple[str, StandIn], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = apply_args(server[0], tmp_path / "build")
    monkeypatch.setenv("ADMIN_PW", "Wr0ng-admin-pw")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "ClickHouse answered 403" in err and "Authentication failed" in err
    assert "Wr0ng-admin-pw" not in err
    monkeypatch.delenv("ADMIN_PW")
    assert main(args) == 1
    assert "the environment variable ADMIN_PW is not set" in capsys.readouterr().err
