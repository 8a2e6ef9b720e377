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

__all__ = ["LocalCluster", "server_binaries"]

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
            "-o", f"-k {self.directory} -h '' -F -c max_connections=64",
        )  # fmt: skip
        self._databases = 0

    def _run(self, program: str, *args) -> None:
        command = [*self._as, str(self._bin / program), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")

    def url(self, name: str | None = None) -> str:
        """A new empty database's URL (`name`, or the next of db0, db1, ...)."""
        import psycopg

        name = name or f"db{self._databases}"
        self._databases += 1
        with psycopg.connect(self._url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self._url(name)

    def _url(self, database: str) -> str:
        return f"postgresql://{USER}@/{database}?host={self.directory}"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.directory / "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
