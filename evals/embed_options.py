"""Document-embedding options of issue 13: their CPU cost per document and their recall cost.

Each option changes the embedder after it loads (nothing here is a product setting):

- `packed`: the default, the lean encoder with the batch packed unpadded;
- `padded`: sentence-transformers' own padded `encode` (the path before the packed one);
- `int8docs`: documents through torch's dynamic int8 copy of the model (queries unchanged);
- `layersN`: queries and documents both through the first N layers only (documents alone
  would leave the space the queries are in).

    python -m memsvc.evals.embed_options speed /work/shared/data/locomo-dev
    python -m memsvc.evals.embed_options recall int8docs /work/shared/data/locomo-dev

`speed` prints CPU milliseconds per document (process time, torch on one thread: with more
threads a loaded machine's spinning OpenMP workers count too) and each option's cosine to the
fp32 vectors, over every LoCoMo session as one batch; `recall` runs the LoCoMo raw eval with
the option and writes `evals/results/locomo-raw-is-<option>.json|.md`.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

OPTIONS = ("packed", "padded", "int8docs", "layers4", "layers3")


def apply_option(embedder: Any, option: str, model: Any = None) -> None:
    """Switch a loaded `SentenceTransformerEmbedder` (its sentence-transformers `model`, by
    default the one it holds) to `option` (see the module doc)."""
    from memsvc.embedding.query_encoder import LeanBertQueryEncoder

    if option == "packed":
        return
    if option == "padded":
        embedder._document_encoder = None
    elif option == "int8docs":
        embedder._document_encoder = LeanBertQueryEncoder(_torch_int8(model or embedder._model))
    elif option.startswith("layers"):
        keep = int(option.removeprefix("layers"))
        for encoder in {id(e): e for e in (embedder._query_encoder,
                                            embedder._document_encoder)}.values():
            encoder._bert = copy.copy(encoder._bert)
            encoder._bert.encoder = copy.copy(encoder._bert.encoder)
            encoder._bert.encoder.layer = encoder._bert.encoder.layer[:keep]
    else:
        raise SystemExit(f"unknown option {option!r}; one of {', '.join(OPTIONS)}")


def _torch_int8(model: Any) -> Any:
    """A copy of `model` with torch's dynamic int8 Linear layers (one scale per matrix)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice for eager quantization
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )


def speed(paths: Sequence[str], options: Sequence[str] = OPTIONS) -> None:
    """CPU ms per document and cosine to fp32, per option, over every session's turns."""
    import torch

    from memsvc.embedding.embedder import SentenceTransformerEmbedder
    from memsvc.evals.locomo import load_conversations
    from memsvc.model.settings import default_embedder_path

    torch.set_num_threads(1)
    sessions = [[t.text for t in s.turns] for c in load_conversations(paths)
                for s in c.sessions if s.turns]
    reference = SentenceTransformerEmbedder(default_embedder_path(), precision="fp32")
    truth = [reference.embed_documents(texts) for texts in sessions]
    for option in options:
        embedder = SentenceTransformerEmbedder(default_embedder_path())
        embedder.embed_query("load the model")
        apply_option(embedder, option)
        best = float("inf")
        for _ in range(2):
            start, count = time.process_time(), 0
            for texts in sessions:
                embedder.embed_documents(texts)
                count += len(texts)
            best = min(best, (time.process_time() - start) * 1000 / count)
        cosines = np.concatenate([np.sum(embedder.embed_documents(texts) * want, axis=1)
                                  for texts, want in zip(sessions, truth, strict=True)])
        print(f"{option:10s} {embedder.precision:5s} {best:6.2f} CPU ms/doc "
              f"({1000 / best:5.0f} docs per CPU s), cosine to fp32 mean "
              f"{cosines.mean():.4f} min {cosines.min():.4f}", flush=True)


def recall(option: str, paths: Sequence[str]) -> int:
    """The LoCoMo raw eval with `option` applied as soon as the embedder loads."""
    from memsvc.embedding.embedder import SentenceTransformerEmbedder
    from memsvc.evals.locomo import main

    load = SentenceTransformerEmbedder._load_model

    def load_with_option(self: SentenceTransformerEmbedder) -> Any:
        model = load(self)
        apply_option(self, option, model)
        return model

    SentenceTransformerEmbedder._load_model = load_with_option  # type: ignore[method-assign]
    return main([*paths, "--mode", "raw", "--tag", f"is-{option}"])


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["help"]
    if command == "speed":
        speed(rest)
    elif command == "recall" and len(rest) >= 2:
        sys.exit(recall(rest[0], rest[1:]))
    else:
        raise SystemExit(__doc__)
