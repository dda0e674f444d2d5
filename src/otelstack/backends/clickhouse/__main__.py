"""``python -m otelstack.backends.clickhouse apply``: apply rendered files (build/ENV/clickhouse/) to a server.

The admin password is a secret reference (env:NAME or file:/path), like every password in otelstack."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .http import HttpConnection
from .identifiers import ClickHouseSchemaError
from .runner import apply
from .users import read_secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otelstack.backends.clickhouse")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("apply", help="apply the migrations and users to a ClickHouse server")
    p.add_argument("--dir", type=Path, required=True, help="the rendered directory holding clickhouse/")
    p.add_argument("--url", required=True, help="HTTP(S) interface, e.g. https://clickhouse:8443")
    p.add_argument("--database", default="otel")
    p.add_argument("--user", required=True, help="a user allowed to create tables, users and grants")
    p.add_argument("--password", required=True, help="secret reference: env:NAME or file:/path")
    p.add_argument("--cafile", help="CA bundle for https")
    args = parser.parse_args(argv)
    files = {
        str(path.relative_to(args.dir)): path.read_text(encoding="utf-8")
        for path in sorted((args.dir / "clickhouse").glob("*.sql"))
    }
    try:
        conn = HttpConnection(args.url, args.user, read_secret(args.password), cafile=args.cafile)
        outcome = apply(conn, files, args.database)
    except ClickHouseSchemaError as exc:
        print(f"clickhouse: {exc}", file=sys.stderr)
        return 1
    print(f"clickhouse: applied {', '.join(outcome.applied) or 'no migration (up to date)'}; users reconciled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
