"""Moved: the launcher is the package ``memsvc.serving.vllm`` (config, install, convert,
process). This alias keeps ``from memsvc.serving.vllm_launcher import LocalVLLM`` and
``python -m memsvc.serving.vllm_launcher`` working; new code imports ``memsvc.serving.vllm``.
"""

from __future__ import annotations

from memsvc.serving.vllm import (
    DEFAULT_PORT,
    INSTALL_MARKER,
    MODEL_MARKER,
    SERVED_MODEL_NAME,
    VLLM_VERSION,
    InstallStep,
    LocalVLLM,
    VLLMConfig,
    VLLMError,
    VLLMInstallError,
    VLLMStartError,
    VLLMStatus,
    default_cache_dir,
    detect_device,
)
from memsvc.serving.vllm.__main__ import main

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
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
