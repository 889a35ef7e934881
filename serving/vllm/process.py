"""Running the vLLM server: start, health, status, stop -- and `LocalVLLM`, the whole launcher.

What was found out on a 2-core CPU machine (vLLM 0.32.0):

- ``vllm serve`` fails because the CPU distribution is not called ``vllm``;
  ``python -m vllm.entrypoints.openai.api_server`` works.
- ``--enforce-eager`` starts in about 30 s (compiled graphs take 90-120 s and are rebuilt at
  every start), and decode speed barely differs for a 135M model.
- The CPU attention backend needs a block size that is a multiple of 32; its default is 128.
  Prefix caching works in whole blocks, so 32 wastes fewer tokens per request.

Only processes carrying this launcher's environment tag are ever signalled (see `has_tag`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from memsvc.llm.client import LLMUnavailableError
from memsvc.serving.vllm.config import VLLMConfig, VLLMStartError, VLLMStatus, tail
from memsvc.serving.vllm.convert import ModelPreparer

# -------------------------------------------------------------------- processes and health


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (a zombie still accepts signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state not in ("Z", "X")
    return True


TAG_VAR = "MEMSVC_VLLM_TAG"


def has_tag(pid: int, tag: str) -> bool:
    """True if the process carries our environment tag.

    Every process of a server we start (the API server and the engine/worker processes it
    spawns) inherits ``MEMSVC_VLLM_TAG=<state dir>``. Checking it before signalling protects
    against PID reuse and against a stale or hand-edited pid file pointing at someone
    else's process. Without /proc (not Linux) the pid file is trusted.
    """
    if not Path("/proc/self/environ").exists():
        return True
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{TAG_VAR}={tag}".encode() in data.split(b"\0")


def tagged_pids(tag: str) -> list[int]:
    """Live (non-zombie) processes carrying our tag: the server and all its children."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    out = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid != os.getpid() and pid_alive(pid) and has_tag(pid, tag):
                out.append(pid)
    return out


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections there (not necessarily our server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def probe_health(base_url: str, timeout_s: float = 2.0) -> bool:
    """True when ``<base_url>/health`` answers 200 (vLLM's readiness probe). Never raises."""
    try:
        r = httpx.get(base_url + "/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


# ------------------------------------------------------------------------------- launcher


class LocalVLLM(ModelPreparer):
    """Install, prepare, start, stop and probe a local vLLM server -- or front an external one.

    Every method is idempotent: ``install()`` on an installed venv, ``prepare_model()`` on a
    prepared folder, ``start()`` on a running healthy server and ``stop()`` on a stopped one
    all return quickly without changing anything. State lives in the cache dir
    (``vllm/server.json`` with pid and port, ``vllm/server.log``), so a ``start`` from one
    process and a ``stop`` from another work; a file lock serializes concurrent callers.
    """

    def __init__(self, config: VLLMConfig | None = None) -> None:
        super().__init__(config)
        self._proc: subprocess.Popen[bytes] | None = None

    # -- run ---------------------------------------------------------------------------

    def server_command(self) -> list[str]:
        """The exact command line of the server (also recorded in the pid file)."""
        cfg = self.config
        cmd = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", cfg.served_model_name,
            "--host", cfg.host, "--port", str(cfg.port),
            "--max-model-len", str(cfg.max_model_len),
            "--enable-prefix-caching",
            "--enable-prompt-tokens-details",  # usage.prompt_tokens_details.cached_tokens
            "--disable-access-log-for-endpoints", "/health,/metrics",
        ]
        if cfg.enforce_eager:
            cmd.append("--enforce-eager")
        block = cfg.block_size if cfg.block_size is not None else (
            32 if self.device == "cpu" else None)
        if block:
            cmd += ["--block-size", str(block)]
        cmd += list(cfg.extra_args)
        return cmd

    def _read_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def recorded_port(self) -> int | None:
        """The port the server this launcher started was given (its pid file), or None.

        One cache dir holds one server, so `stop` and `status` act on that server whatever
        port a caller names; the CLI compares a named port with this one first, so that
        `memsvc llm stop --port N` never stops a server on another port.
        """
        state = self._read_state()
        if not state or "port" not in state:
            return None
        try:
            return int(state["port"])
        except (TypeError, ValueError):
            return None

    def _health(self, timeout_s: float = 2.0) -> bool:
        return probe_health(self.base_url, timeout_s)

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # reaps our own child, so no zombie lingers
        return pid_alive(pid) and has_tag(pid, self._tag)

    @property
    def _tag(self) -> str:
        return str(self.state_dir.resolve())

    def status(self) -> VLLMStatus:
        """Probe without changing anything. Never raises for a down server."""
        if self.external:
            ok = self._health() or self.client().health()
            return VLLMStatus(mode="external", base_url=self.base_url, running=ok, healthy=ok,
                              detail="" if ok else "external server not answering")
        state = self._read_state()
        pid = int(state["pid"]) if state and "pid" in state else None
        running = pid is not None and self._alive(pid)
        healthy = running and self._health()
        if state is None:
            detail = "not started"
        elif not running:
            detail = "stale pid file (process gone)"
        elif not healthy:
            detail = "starting (process alive, /health not ready)"
        else:
            detail = "ready"
        return VLLMStatus(mode="local", base_url=self.base_url, running=running,
                          healthy=healthy, pid=pid if running else None,
                          model=self.config.served_model_name, log_file=str(self.log_file),
                          started_at=state.get("started_at") if state else None, detail=detail)

    def wait_healthy(self, timeout_s: float | None = None, pid: int | None = None) -> float:
        """Poll ``/health`` until it answers; returns the seconds waited.

        Fails fast (with the log tail) if the server process exits, instead of waiting for
        the whole timeout -- a bad flag or a missing model shows up within seconds.
        """
        timeout = self.config.startup_timeout_s if timeout_s is None else timeout_s
        t0 = time.monotonic()
        while True:
            if self._health(timeout_s=2.0):
                return time.monotonic() - t0
            if pid is not None and not self._alive(pid):
                raise VLLMStartError(f"vLLM exited during start-up; log {self.log_file}:\n"
                                     f"{tail(self.log_file)}")
            if time.monotonic() - t0 > timeout:
                raise VLLMStartError(f"vLLM did not become healthy within {timeout:g} s; "
                                     f"log {self.log_file}:\n{tail(self.log_file)}")
            time.sleep(0.5)

    def start(self, *, wait: bool = True) -> VLLMStatus:
        """Make sure a healthy server is running; install and prepare on first use.

        External mode: checks health and raises :class:`LLMUnavailableError` if the URL does
        not answer (there is nothing to start).
        """
        if self.external:
            st = self.status()
            if not st.healthy:
                raise LLMUnavailableError(
                    f"the configured LLM server {self.base_url} is not answering /health or "
                    f"/v1/models; start it or unset MEMSVC_LLM_BASE_URL to use a local vLLM")
            return st
        self.install()
        self.prepare_model()
        with self._lock():
            state = self._read_state()
            if state and self._alive(int(state["pid"])):
                if int(state.get("port", self.config.port)) != self.config.port:
                    raise VLLMStartError(
                        f"memsvc's vLLM already runs on port {state.get('port')} (pid "
                        f"{state['pid']}), not {self.config.port}; stop it first")
                if wait:
                    self.wait_healthy(pid=int(state["pid"]))
                return self.status()
            if state:  # stale: the process is gone
                self.pid_file.unlink(missing_ok=True)
            if port_in_use(self.config.host, self.config.port):
                raise VLLMStartError(
                    f"port {self.config.port} on {self.config.host} is already in use by a "
                    f"process memsvc did not start; stop it or set MEMSVC_VLLM_PORT")
            cmd = self.server_command()
            env = self._child_env()
            env[TAG_VAR] = self._tag  # marks every process of this server (see has_tag)
            if self.device == "cpu":
                env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.config.cpu_kv_cache_gib))
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("ab") as log:
                log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} $ "
                          f"{' '.join(cmd)}\n".encode())
                log.flush()
                # Own session/process group: the engine core and worker processes vLLM
                # forks can be signalled together, and the server outlives the CLI call
                # that started it (and its Ctrl-C).
                self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env,
                                              cwd=str(self.state_dir), start_new_session=True)
            started = time.time()
            self.pid_file.write_text(json.dumps({
                "pid": self._proc.pid, "pgid": self._proc.pid, "host": self.config.host,
                "port": self.config.port, "model": self.config.served_model_name,
                "model_dir": str(self.model_dir), "started_at": started, "cmd": cmd,
                "log": str(self.log_file),
            }, indent=2))
        if wait:
            try:
                self.wait_healthy(pid=self._proc.pid)
            except VLLMStartError:
                self.stop()
                raise
        return self.status()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop the server: SIGTERM to its process group, SIGKILL after ``timeout_s``.

        Only processes carrying this launcher's environment tag are ever signalled.

        Returns True if a server was stopped. External mode: no-op (False).
        """
        if self.external:
            return False
        timeout = self.config.stop_timeout_s if timeout_s is None else timeout_s
        with self._lock():
            state = self._read_state()
            pid = int(state["pid"]) if state and "pid" in state else None
            stopped = False
            if pid is not None and self._alive(pid):
                stopped = True
                # The server leads its own process group (start_new_session), so one signal
                # reaches the engine core and workers too.
                self._signal_group(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if not self._alive(pid) and not tagged_pids(self._tag):
                        break
                    time.sleep(0.25)
            # Whatever is left: a server that ignored SIGTERM, or orphans of a crashed one.
            leftovers = tagged_pids(self._tag)
            if leftovers:
                stopped = True
                for p in leftovers:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p, signal.SIGKILL)
                end = time.monotonic() + 10
                while time.monotonic() < end and tagged_pids(self._tag):
                    time.sleep(0.2)
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=5)
                self._proc = None
            self.pid_file.unlink(missing_ok=True)
            return stopped

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def __enter__(self) -> LocalVLLM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

