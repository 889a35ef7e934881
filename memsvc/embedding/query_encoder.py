"""A lean forward pass for one query through a BERT sentence-transformer.

A query is one short unpadded sequence, so the model's arithmetic is small (about 4 ms for
all-MiniLM-L6-v2 on our 2-core machines) and most of the ~7 ms that sentence-transformers and
transformers spend on it is Python: module hooks, mask construction, output dataclasses. This
module runs the same arithmetic with the same weights in about twenty tensor calls per layer.

It is used only when the model is exactly what it reimplements (BERT, absolute positions, GELU,
mean pooling, optional normalization) *and* it reproduces the model's own output on probe
texts at load time; anything else falls back to the model's own forward pass. Documents keep
going through sentence-transformers' batched `encode`, where padding matters and Python
overhead is shared by the batch.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# short, long (truncated at max_seq_length), punctuation and non-ASCII, one word
_PROBES = (
    "Which pet did Caroline adopt last May?",
    " ".join(["memory"] * 400),
    "Café — naïve façade, 東京; emoji 🙂 and numbers 3.14!",
    "hi",
)
_MIN_PROBE_COSINE = 0.9999


class LeanBertQueryEncoder:
    """Encodes one text as the wrapped sentence-transformer would, with less Python per call."""

    def __init__(self, model: Any) -> None:
        transformer, pooling = model[0], model[1]
        self._tokenizer = model.tokenizer
        self._max_length = int(model.max_seq_length or 512)
        self._bert = transformer.auto_model
        self._normalize = len(model) > 2
        self._heads = int(self._bert.config.num_attention_heads)
        del pooling  # checked by `supports`: mean over every token of an unpadded sequence

    @staticmethod
    def supports(model: Any) -> bool:
        """True if `model` is the architecture this module reimplements, layer for layer."""
        try:
            names = [type(module).__name__ for module in model]
            if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
                return False
            config = model[0].auto_model.config
            pooling = model[1]
            return (
                type(model[0].auto_model).__name__ == "BertModel"
                and getattr(config, "position_embedding_type", "absolute") == "absolute"
                and config.hidden_act == "gelu"
                and getattr(pooling, "pooling_mode", None) in ("mean", None)
                and bool(getattr(pooling, "pooling_mode_mean_tokens", True))
            )
        except (AttributeError, IndexError, TypeError):
            return False

    def encode(self, text: str) -> np.ndarray:
        import torch

        ids = self._tokenizer(
            text, truncation=True, max_length=self._max_length, return_tensors="pt"
        )["input_ids"]
        with torch.inference_mode():
            vector = self._forward(ids)
        return vector.float().numpy()

    def _split_heads(self, projected: Any) -> Any:
        batch, tokens, _ = projected.shape
        return projected.view(batch, tokens, self._heads, -1).transpose(1, 2)

    def _forward(self, ids: Any) -> Any:
        import torch.nn.functional as F

        embeddings = self._bert.embeddings
        length = ids.shape[1]
        x = (
            embeddings.word_embeddings(ids)
            + embeddings.position_embeddings.weight[:length]
            + embeddings.token_type_embeddings.weight[0]
        )
        x = embeddings.LayerNorm(x)
        for layer in self._bert.encoder.layer:
            attention = layer.attention.self
            mixed = F.scaled_dot_product_attention(
                self._split_heads(attention.query(x)),
                self._split_heads(attention.key(x)),
                self._split_heads(attention.value(x)),
            )
            mixed = mixed.transpose(1, 2).reshape(x.shape)
            x = layer.attention.output.LayerNorm(layer.attention.output.dense(mixed) + x)
            x = layer.output.LayerNorm(layer.output.dense(F.gelu(layer.intermediate.dense(x))) + x)
        pooled = x.mean(dim=1)[0]
        return F.normalize(pooled, dim=0) if self._normalize else pooled


def lean_query_encoder(model: Any, weights: Any = None) -> LeanBertQueryEncoder | None:
    """The lean encoder for `model` if it supports it and matches it on the probes, else None.

    `weights` is a variant of `model` with the same layout (its int8 copy) to encode with once
    the layout is proven on `model`: quantization noise would blur that proof.
    """
    if not LeanBertQueryEncoder.supports(model):
        return None
    import torch

    encoder = LeanBertQueryEncoder(model)
    try:
        with torch.inference_mode():
            reference = model.encode(
                list(_PROBES), convert_to_numpy=True, normalize_embeddings=False,
                show_progress_bar=False, batch_size=1,
            )
        for text, expected in zip(_PROBES, reference, strict=True):
            got = encoder.encode(text)
            cosine = float(np.dot(got, expected)) / (
                float(np.linalg.norm(got) * np.linalg.norm(expected)) or 1.0
            )
            if cosine < _MIN_PROBE_COSINE:
                log.warning("lean query encoder disagrees with the model (cos %.5f on %r): "
                            "using the model's own forward pass", cosine, text[:40])
                return None
    except Exception as error:  # an unexpected layout: never worse than the slow path
        log.warning("lean query encoder unavailable (%s): using the model's own forward pass",
                    error)
        return None
    return encoder if weights is None or weights is model else LeanBertQueryEncoder(weights)
