"""The external MCP conformance checker (`jbt-mcpcheck`, MCP 2026-07-28) against a real
`memsvc serve`: the way a host's or a security review's tooling will judge /mcp."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mcpcheck_passes_every_check(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MEMSVC_EMBED_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "serve", "--port", str(port),
         "--db", str(tmp_path / "mcp.db")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for _ in range(1200):
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        checker = Path(sys.executable).parent / "mcpcheck"
        result = subprocess.run([str(checker), f"{base}/mcp"], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "NO_COLOR": "1"})
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checks passed" in result.stdout and "✗" not in result.stdout
