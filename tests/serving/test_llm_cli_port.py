"""`memsvc llm stop|status --port N` act only on a server on port N.

One cache dir holds one server (its pid file); before this, a named port was ignored and a
`stop --port 99999` from one checkout stopped the server another test suite was using. The
"server" here is a sleeping process carrying the launcher's environment tag, so no vLLM is
needed: `stop` signals exactly the processes with that tag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memsvc.cli.main import app
from memsvc.serving.vllm import LocalVLLM, VLLMConfig
from memsvc.serving.vllm.process import TAG_VAR, pid_alive


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> subprocess.Popen[bytes]:
    monkeypatch.setenv("MEMSVC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MEMSVC_VLLM_PORT", raising=False)
    monkeypatch.delenv("MEMSVC_LLM_BASE_URL", raising=False)
    launcher = LocalVLLM(VLLMConfig(cache_dir=tmp_path, port=18761))
    launcher.state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{TAG_VAR: str(launcher.state_dir.resolve())})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env,
                            start_new_session=True)
    launcher.pid_file.write_text(json.dumps({"pid": proc.pid, "pgid": proc.pid,
                                             "host": "127.0.0.1", "port": 18761}))
    yield proc
    proc.kill()
    proc.wait()


def test_stop_with_another_port_leaves_the_server_running(
    fake_server: subprocess.Popen[bytes],
) -> None:
    result = CliRunner().invoke(app, ["llm", "stop", "--port", "18762"])
    assert result.exit_code == 0, result.output
    assert "nothing stopped" in result.output
    assert pid_alive(fake_server.pid)


def test_status_with_another_port_says_not_running(fake_server: subprocess.Popen[bytes]) -> None:
    result = CliRunner().invoke(app, ["llm", "status", "--port", "18762"])
    assert result.exit_code == 3
    assert "runs on port 18761" in result.output
    assert pid_alive(fake_server.pid)


def test_stop_with_its_port_stops_it(fake_server: subprocess.Popen[bytes]) -> None:
    result = CliRunner().invoke(app, ["llm", "stop", "--port", "18761"])
    assert result.exit_code == 0, result.output
    assert "stopped" in result.output
    fake_server.wait(timeout=10)
    assert not pid_alive(fake_server.pid)
