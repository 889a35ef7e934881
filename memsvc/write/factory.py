"""The write path's extractor and decider, built from `Settings`.

``MEMSVC_EXTRACTOR`` and ``MEMSVC_DECIDER`` (``rules`` | ``llm``) are read once, in
`Settings.from_env`; `Memory.__init__` calls these builders, so the SDK, ``memsvc serve``,
``memsvc mcp`` and the background jobs (which run `Memory.infer`) all get the same write path
from the same settings. With ``llm`` both use memsvc's one LLM client against
``settings.llm_url`` (the configured OpenAI-compatible server, else the local vLLM of
``memsvc llm start``) and degrade as the rules would have decided when it fails: the
extractor hands a failed batch to the rules and records why (``metadata.fallback``), and the
manager keeps the rules' decision when the decider raises (``metadata.decider_error``).
"""

from __future__ import annotations

from memsvc.extractors.base import Extractor
from memsvc.extractors.llm import LLMExtractor
from memsvc.extractors.rules import RuleExtractor
from memsvc.llm.client import LLMClient
from memsvc.model.settings import Settings
from memsvc.write.llm_decider import LLMDecider
from memsvc.write.manager import Decider

__all__ = ["build_decider", "build_extractor", "build_llm_client"]


def build_llm_client(settings: Settings) -> LLMClient:
    """The blocking client for the configured LLM server (nothing is contacted yet)."""
    return LLMClient(settings.llm_url, model=settings.llm_model, api_key=settings.llm_api_key,
                     timeout_s=settings.llm_timeout_s)


def build_extractor(settings: Settings, llm: LLMClient | None = None) -> Extractor:
    """The extractor `add(infer=True)` runs: the rules, or the LLM with the rules as fallback."""
    if settings.extractor == "llm":
        return LLMExtractor(llm or build_llm_client(settings), fallback=RuleExtractor())
    return RuleExtractor()


def build_decider(settings: Settings, llm: LLMClient | None = None) -> Decider | None:
    """The manager's delegate for close calls; None: the rules decide alone."""
    if settings.decider == "llm":
        return LLMDecider(llm or build_llm_client(settings))
    return None
