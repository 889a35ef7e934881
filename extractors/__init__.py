"""Extractors: a batch of stored messages in, typed candidate memories out."""

from memsvc.extractors.base import Candidate, Extractor
from memsvc.extractors.episode import EpisodeExtractor

__all__ = ["Candidate", "EpisodeExtractor", "Extractor"]
