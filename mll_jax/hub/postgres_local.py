"""A throw-away PostgreSQL cluster on this machine: for tests, benchmarks, and trying a shared hub.

Debian's `postgresql` package provides the server (`make test` installs it).
The cluster lives in a temporary directory, listens only on a Unix socket there,
trusts local connections and skips fsync: it holds nothing that must outlive it.
As root, the server runs as the `postgres` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["LocalCluster", "create_database", "server_binaries"]

USER = "mll"


def server_binaries() -> Path:
    """The directory holding initdb and pg_ctl, with a clear error if PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(shutil.which("initdb")).parent
    raise FileNotFoundError("no PostgreSQL server here; install Debian's package: sudo apt-get install postgresql")


class LocalCluster:
    """A cluster started in a temporary directory; `url(name)` makes and names a database in it."""

    def __init__(self) -> None:
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
        return create_database(self.admin_url, name)

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
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
