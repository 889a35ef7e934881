"""Extractors: a batch of stored messages in, typed candidate memories out.

`RuleExtractor` is the embedded default (patterns, no LLM); `LLMExtractor` asks any
OpenAI-compatible endpoint and falls back to the rules. Both emit `Candidate`s; the manager
(`memsvc.write.manager`) decides what each one does to the store.
"""

from memsvc.extractors.base import Candidate, Extractor
from memsvc.extractors.episode import EpisodeExtractor
from memsvc.extractors.llm import LLMExtractor
from memsvc.extractors.rules import RuleExtractor

__all__ = ["Candidate", "EpisodeExtractor", "Extractor", "LLMExtractor", "RuleExtractor"]
