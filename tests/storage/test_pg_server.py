"""The embedded PostgreSQL server: lifecycle, Unix socket only, the service account when run as
root, long socket paths, crash recovery, concurrent starts, and the `memsvc db postgres` CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa
from typer.testing import CliRunner

from memsvc.cli.main import app
from memsvc.storage.postgres.server import EmbeddedPostgres, ServerState


def test_the_session_server_is_pg18_with_pgvector_on_a_socket_only(
    pg_server: EmbeddedPostgres,
) -> None:
    url = pg_server.url()
    assert url.startswith("postgresql+psycopg://postgres@/memsvc_test?host=/")
    assert pg_server.start() == url  # idempotent
    st = pg_server.status()
    assert st.state is ServerState.RUNNING and st.socket_dir is not None
    assert (st.socket_dir / ".s.PGSQL.5432").is_socket()
    assert st.socket_dir.stat().st_mode & 0o777 == 0o700
    engine = sa.create_engine(url)
    with engine.connect() as c:
        assert c.execute(sa.text("SHOW server_version_num")).scalar_one().startswith("18")
        assert c.execute(sa.text("SHOW listen_addresses")).scalar_one() == ""  # no TCP
        version = c.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname='vector'"))
        assert version.scalar_one().startswith("0.8")
        assert c.execute(sa.text("SHOW server_encoding")).scalar_one() == "UTF8"
    engine.dispose()
    # postmaster.pid line 6 is the listen address: empty, so no TCP socket at all
    assert (pg_server.pgdata / "postmaster.pid").read_text().splitlines()[5] == ""


def test_postgres_never_runs_as_root(pg_server: EmbeddedPostgres) -> None:
    """As root, every server process runs as the service account with no root group; as
    anyone else, as that user."""
    pid = pg_server.status().pid
    fields = dict(line.split(":", 1)
                  for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    uids, gids = fields["Uid"].split(), fields["Gid"].split()
    groups = fields["Groups"].split()
    if os.geteuid() == 0:
        assert "0" not in uids and "0" not in gids and "0" not in groups, fields
        assert int(uids[0]) == pg_server.pgdata.stat().st_uid != 0
    else:
        assert int(uids[0]) == os.geteuid()


def test_long_paths_stop_start_and_recovery_after_kill9() -> None:
    """A cluster in a 0700 dir whose socket path would pass 107 bytes uses a short /tmp
    socket dir; it stops, starts again, and starts over a SIGKILLed postmaster.

    Not under pytest's tmp tree: as root the cluster's account must traverse it, and any
    pytest session starting meanwhile (other worktrees share /tmp/pytest-of-root) re-chmods
    it to 0700.
    """
    root = Path(tempfile.mkdtemp(prefix="memsvc-pg-long-"))  # 0700, like pytest's
    deep = root / ("x" * 60) / ("y" * 40)
    pg = EmbeddedPostgres(deep, fast_unsafe=True)
    assert pg.status().state is ServerState.UNINITIALIZED
    url = pg.start()
    try:
        sock = pg.status().socket_dir
        assert sock is not None and str(sock).startswith("/tmp/memsvc-pg-")
        assert len(str(deep / "run" / ".s.PGSQL.5432")) > 107
        pg.stop()
        assert pg.status().state is ServerState.STOPPED
        assert not sock.exists()  # the fallback socket dir goes with the server
        assert pg.start() == url
        pid = pg.status().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if pg.status().state is ServerState.STOPPED:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # let orphaned backends notice the postmaster died
        assert pg.start() == url
        with psycopg.connect(pg.conninfo()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_two_processes_start_one_server_and_the_cli_drives_it() -> None:
    """Two processes starting the same fresh cluster at once get one server (flock); then
    `memsvc db postgres status|stop|start` report, stop and restart it."""
    code = ("import sys; from memsvc.storage.postgres.server import EmbeddedPostgres; "
            "print(EmbeddedPostgres(sys.argv[1], fast_unsafe=True).start())")
    directory = tempfile.mkdtemp(prefix="memsvc-pg-conc-")
    procs = [subprocess.Popen([sys.executable, "-c", code, directory], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    runner = CliRunner()
    try:
        outs = [p.communicate(timeout=120)[0].strip() for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        url = outs[0]
        assert outs[1] == url and url.startswith("postgresql+psycopg://postgres@/memsvc?host=")
        running = runner.invoke(app, ["db", "postgres", "status", "--dir", directory])
        assert running.exit_code == 0 and url in running.output
        stopped = runner.invoke(app, ["db", "postgres", "stop", "--dir", directory])
        assert stopped.exit_code == 0 and "stopped" in stopped.output
        after = runner.invoke(app, ["db", "postgres", "status", "--dir", directory])
        assert after.exit_code == 3 and after.output.startswith("stopped")
        started = runner.invoke(app, ["db", "postgres", "start", "--dir", directory])
        assert started.exit_code == 0 and started.output.strip() == url
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        EmbeddedPostgres(directory).stop()
        shutil.rmtree(directory, ignore_errors=True)
