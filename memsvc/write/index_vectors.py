"""The vectors a batch of candidates is indexed by: each one's own, leaning towards its context.

A candidate with a `context` (an episode's preceding turn) is indexed by
normalize(v(text) + w · v(context)), w being `Settings.episode_context_weight`
(``MEMSVC_EPISODE_CONTEXT_WEIGHT``; 0 indexes the text alone). A reply is then found by
questions worded like the turn it answers, while its own words still dominate. Mixing two
vectors, rather than embedding "context + text" as one passage, keeps what a turn says about
itself (a date, a name) from being diluted: on the LoCoMo dev conversations the joint passage
raised raw R@10 but lost multi-hop and temporal questions. Every text is embedded once per
batch, so an episode's context (the turn before it, in the same batch) costs no extra
forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memsvc.embedding.embedder import Embedder
from memsvc.extractors.base import Candidate


def candidate_vectors(
    embedder: Embedder, candidates: Sequence[Candidate], *, context_weight: float
) -> np.ndarray:
    """One unit vector per candidate, in order (see the module docstring)."""
    mixed = context_weight > 0
    texts = list(dict.fromkeys([c.text for c in candidates]
                               + [c.context for c in candidates if c.context and mixed]))
    if not texts:
        return embedder.embed_documents([])
    vectors = embedder.embed_documents(texts)
    row = {text: i for i, text in enumerate(texts)}
    out = np.stack([vectors[row[c.text]] for c in candidates])
    for i, candidate in enumerate(candidates):
        if candidate.context and mixed:
            out[i] = out[i] + context_weight * vectors[row[candidate.context]]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.asarray(out / np.where(norms > 0, norms, 1.0), dtype=np.float32)
