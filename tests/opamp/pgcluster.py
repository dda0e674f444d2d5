"""A throwaway PostgreSQL cluster for the tests and bench/opamp_fleet.py: initdb into a temporary
directory, the server on a free loopback port (and a Unix socket in that directory), stopped and
deleted at the end. No system service is used. PostgreSQL refuses to run as root, so as root the
cluster belongs to the `postgres` user (Debian's package creates it) or `nobody`.

Host connections need the superuser's password (scram-sha-256), so the server's settings reach it the
way production does: a password from a secret reference, never in the URL.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

USER = "otelstack"
PASSWORD = "pg-password-for-tests-0123456789"


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self, bin_dir: Path, **server_options: str) -> None:
        self.bin_dir = bin_dir
        self.owner: str | None = None
        if os.geteuid() == 0:
            self.owner = "postgres" if _user_exists("postgres") else "nobody"
        self.dir = Path(tempfile.mkdtemp(prefix="otelstack-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.port = _free_port()
        self.options = {"max_connections": "200", "fsync": "off", "full_page_writes": "off", **server_options}
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.owner is not None:
            entry = pwd.getpwnam(self.owner)
            for path in (self.dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin_dir / program), *args],
            capture_output=True,
            text=True,
            user=self.owner,
            cwd=self.dir,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> PgCluster:
        options = " ".join(
            [f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir}"]
            + [f"-c {key}={value}" for key, value in self.options.items()]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname: str) -> str:
        """The URL the server's settings take (no password: it comes from PASSWORD through a secret)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(dbname), password=PASSWORD, autocommit=True)

    def create_database(self, prefix: str = "fleet") -> str:
        name = f"{prefix}_{time.monotonic_ns()}"
        with self.connect() as db:
            db.execute(f"CREATE DATABASE {name}".encode())
        return name


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
