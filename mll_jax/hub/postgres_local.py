"""A throw-away PostgreSQL cluster on this machine: for tests, benchmarks, and trying a shared hub.

Debian's `postgresql` package provides the server (`make test` installs it).
The cluster lives in a temporary directory, listens only on a Unix socket there,
trusts local connections and skips fsync: it holds nothing that must outlive it.
As root, the server runs as the `postgres` user (PostgreSQL refuses root).

With `pooler=True` a PgBouncer (Debian's `pgbouncer`) in session mode stands in
front of it, as it would in front of a hub shared by many hosts (method.md §2.1):
a client's connection is then a socket to the pooler, not a new server process.
Session mode keeps what the hub relies on: a session's advisory lock is its own
until it ends, and a client gone mid-transaction takes its server connection down
with it, so the server rolls the transaction back.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["LocalCluster", "create_database", "pooler_binary", "server_binaries"]

USER = "mll"
POOLER_PORT = 6432  # PgBouncer's own default
# Server connections the pooler may hold per database: more than the processes that ever write at once here
# (the tests' eight adders, two labellers and the runner), so no client waits for one.
POOL_SIZE = 100
POOLER_START_S = 10  # seconds to wait for the pooler's socket


def server_binaries() -> Path:
    """The directory holding initdb and pg_ctl, with a clear error if PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(shutil.which("initdb")).parent
    raise FileNotFoundError("no PostgreSQL server here; install Debian's package: sudo apt-get install postgresql")


def pooler_binary() -> Path:
    """PgBouncer's program, with a clear error if it is not installed."""
    for found in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if found and Path(found).is_file():
            return Path(found)
    raise FileNotFoundError("no PgBouncer here; install Debian's package: sudo apt-get install pgbouncer")


class LocalCluster:
    """A cluster started in a temporary directory; `url(name)` makes and names a database in it (reached through
    a session-mode PgBouncer if `pooler`)."""

    def __init__(self, pooler: bool = False) -> None:
        self._bin = server_binaries()
        self.directory = Path(tempfile.mkdtemp(prefix="mll-jax-pg-"))
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.directory, "postgres")
        data = self.directory / "data"
        self._run("initdb", "-D", data, "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
        self._run(
            "pg_ctl", "-D", data, "-l", self.directory / "log", "-w", "start",
            "-o", f"-k {self.directory} -h '' -F -c max_connections=128",
        )  # fmt: skip
        self._databases = 0
        self.pooled = pooler
        if pooler:
            self._start_pooler()

    def _start_pooler(self) -> None:
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(
            f"[databases]\n* = host={self.directory} user={USER}\n"
            f"[pgbouncer]\nlisten_addr =\nunix_socket_dir = {self.directory}\nlisten_port = {POOLER_PORT}\n"
            f"auth_type = any\npool_mode = session\ndefault_pool_size = {POOL_SIZE}\nmax_client_conn = 1000\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\npidfile = {self.directory / 'pgbouncer.pid'}\n"
        )
        if self._as:
            shutil.chown(ini, "postgres")
        command = [*self._as, str(pooler_binary()), "-d", str(ini)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        socket = self.directory / f".s.PGSQL.{POOLER_PORT}"
        deadline = time.monotonic() + POOLER_START_S
        while done.returncode == 0 and not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not socket.exists():
            log = self.directory / "pgbouncer.log"
            said = log.read_text().strip() if log.is_file() else done.stderr.strip()
            raise RuntimeError(f"pgbouncer did not start: {said}")

    def _run(self, program: str, *args) -> None:
        command = [*self._as, str(self._bin / program), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")

    @property
    def admin_url(self) -> str:
        """The cluster's maintenance database, from which others are made."""
        return f"postgresql://{USER}@/postgres?host={self.directory}"

    def url(self, name: str | None = None) -> str:
        """A new empty database's URL (`name`, or the next of db0, db1, ...)."""
        name = name or f"db{self._databases}"
        self._databases += 1
        url = create_database(self.admin_url, name)
        return self.through_pooler(url) if self.pooled else url

    def through_pooler(self, url: str) -> str:
        """The URL of this cluster's database `url` through its pooler."""
        if not self.pooled:
            raise ValueError("this cluster has no pooler; start it with LocalCluster(pooler=True)")
        return f"{url}{'&' if '?' in url else '?'}port={POOLER_PORT}"

    def stop(self) -> None:
        """Stop the pooler and the server, and delete the cluster."""
        pid = self.directory / "pgbouncer.pid"
        if pid.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid.read_text()), signal.SIGTERM)  # its clients' server connections close with it
        self._run("pg_ctl", "-D", self.directory / "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def create_database(admin_url: str, name: str, replace: bool = False) -> str:
    """Make the empty database `name` on the server of `admin_url` (dropping one of that name first if `replace`);
    its URL."""
    import psycopg

    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name {name!r}: use letters, digits and '_'")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if replace:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    scheme, _, rest = admin_url.partition("://")
    place, _, query = rest.partition("?")
    server = place.rsplit("/", 1)[0]
    return f"{scheme}://{server}/{name}" + (f"?{query}" if query else "")
