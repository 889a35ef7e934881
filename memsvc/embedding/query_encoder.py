"""A lean forward pass through a BERT sentence-transformer: one query, or a batch unpadded.

A query is one short unpadded sequence, so the model's arithmetic is small and most of what
sentence-transformers and transformers spend on it is Python: module hooks, mask construction,
output dataclasses. This module runs the same arithmetic with the same weights in about twenty
tensor calls per layer.

Documents come in batches (an `add` of a session's turns), and a padded batch computes every
text at the length of the longest: on LoCoMo sessions half of the tokens the model computed
were padding. `encode_batch` packs the batch's tokens into one matrix for everything that works
token by token (embeddings, projections, feed-forward, layer norms: nearly all the arithmetic)
and pads only inside attention, where a mask keeps padding out of every real token's result,
so each text's vector is the one it gets alone.

It is used only when the model is exactly what it reimplements (BERT, absolute positions, GELU,
mean pooling, optional normalization) *and* it reproduces the model's own output on probe
texts at load time, one at a time and as a batch; anything else falls back to the model's own
forward pass (sentence-transformers' `encode` for documents).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# short, long (truncated at max_seq_length), punctuation and non-ASCII, one word
PROBES = (
    "Which pet did Caroline adopt last May?",
    " ".join(["memory"] * 400),
    "Café — naïve façade, 東京; emoji 🙂 and numbers 3.14!",
    "hi",
)
_MIN_PROBE_COSINE = 0.9999
# texts per packed forward pass, longest first (as sentence-transformers batches): attention's
# padded scratch grows with batch × longest², so an import of thousands is cut in slices
_PACK_SIZE = 64


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

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of `texts` (rows in their order), each as `encode` would give it."""
        import torch

        rows = self._tokenizer(
            list(texts), truncation=True, max_length=self._max_length
        )["input_ids"]
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        out = np.zeros((len(rows), self._bert.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), _PACK_SIZE):
                chunk = order[start:start + _PACK_SIZE]
                out[chunk] = self._forward_packed([rows[i] for i in chunk]).float().numpy()
        return out

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
            x = _after_attention(layer, mixed.transpose(1, 2).reshape(x.shape), x)
        pooled = x.mean(dim=1)[0]
        return F.normalize(pooled, dim=0) if self._normalize else pooled

    def _forward_packed(self, rows: list[list[int]]) -> Any:
        """Pooled vectors of token-id `rows`, their tokens packed as one (tokens, width) matrix.

        Attention alone needs the texts apart: the packed projections are scattered into a
        zero-padded (texts, heads, longest, head width) block and a key mask hides the padding,
        so padding positions change no real token; their outputs are dropped on the way back.
        """
        import torch
        import torch.nn.functional as F

        lengths = [len(row) for row in rows]
        count, longest = len(rows), max(lengths)
        ids = torch.tensor([token for row in rows for token in row])
        positions = torch.tensor([p for n in lengths for p in range(n)])
        owner = torch.tensor([i for i, n in enumerate(lengths) for _ in range(n)])
        slots = owner * longest + positions  # each packed token's place in the padded block
        keep = torch.zeros(count * longest, dtype=torch.bool)
        keep[slots] = True
        key_mask = keep.view(count, 1, 1, longest)

        embeddings = self._bert.embeddings
        x = embeddings.LayerNorm(
            embeddings.word_embeddings(ids)
            + embeddings.position_embeddings(positions)
            + embeddings.token_type_embeddings.weight[0]
        )
        width = x.shape[1]

        def padded(projected: Any) -> Any:
            block = projected.new_zeros(count * longest, width)
            block[slots] = projected
            return block.view(count, longest, self._heads, -1).transpose(1, 2)

        for layer in self._bert.encoder.layer:
            attention = layer.attention.self
            mixed = F.scaled_dot_product_attention(
                padded(attention.query(x)), padded(attention.key(x)),
                padded(attention.value(x)), attn_mask=key_mask,
            )
            x = _after_attention(layer, mixed.transpose(1, 2).reshape(-1, width)[slots], x)
        sums = torch.zeros(count, width, dtype=torch.float32).index_add_(0, owner, x.float())
        pooled = sums / torch.tensor(lengths, dtype=torch.float32).unsqueeze(1)
        return F.normalize(pooled, dim=1) if self._normalize else pooled


def _after_attention(layer: Any, mixed: Any, x: Any) -> Any:
    """A BERT layer after its attention: output projection, residual, norm, feed-forward."""
    import torch.nn.functional as F

    x = layer.attention.output.LayerNorm(layer.attention.output.dense(mixed) + x)
    return layer.output.LayerNorm(layer.output.dense(F.gelu(layer.intermediate.dense(x))) + x)


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
                list(PROBES), convert_to_numpy=True, normalize_embeddings=False,
                show_progress_bar=False, batch_size=1,
            )
        batch = encoder.encode_batch(PROBES)
        for text, expected, packed in zip(PROBES, reference, batch, strict=True):
            for got in (encoder.encode(text), packed):
                cosine = float(np.dot(got, expected)) / (
                    float(np.linalg.norm(got) * np.linalg.norm(expected)) or 1.0
                )
                if cosine < _MIN_PROBE_COSINE:
                    log.warning("lean encoder disagrees with the model (cos %.5f on %r): "
                                "using the model's own forward pass", cosine, text[:40])
                    return None
    except Exception as error:  # an unexpected layout: never worse than the slow path
        log.warning("lean query encoder unavailable (%s): using the model's own forward pass",
                    error)
        return None
    return encoder if weights is None or weights is model else LeanBertQueryEncoder(weights)
