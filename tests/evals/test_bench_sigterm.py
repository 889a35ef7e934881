"""A benchmark killed with SIGTERM still runs its `finally` blocks (which stop its embedded
PostgreSQL): `stop_cleanly_on_sigterm` turns the signal into SystemExit."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from memsvc.evals.bench_sites import stop_cleanly_on_sigterm
    if sys.argv[2] == "handled":
        stop_cleanly_on_sigterm()
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:
        Path(sys.argv[1]).write_text("cleaned up")
""")


@pytest.mark.parametrize("mode", ["handled", "default"])
def test_sigterm_runs_finally_only_when_handled(tmp_path: Path, mode: str) -> None:
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), mode],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    code = child.wait(timeout=30)
    if mode == "handled":
        assert code == 128 + signal.SIGTERM and marker.read_text() == "cleaned up"
    else:  # the default action: no cleanup, which is what left servers running
        assert code == -signal.SIGTERM and not marker.exists()
