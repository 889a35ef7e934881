"""The ONNX query graphs side by side: how long a search's query embedding takes on each, and
how far each strays from the model's own vectors.

    python -m memsvc.evals.query_graphs /work/shared/data/locomo-dev [--tag T] [--threads N]

For every LoCoMo question (cat 1-4) it times, on each graph (`fp32`, `int8`:
`memsvc.embedding.onnx_encoder`), the question alone and the question batched with its
"topic" (here: the question without its capitalised words, as long as the topic channel's
text), tokenization included, the way a search calls the encoder; and it reports each
question vector's cosine to sentence-transformers' own fp32 vector. It also reports each
graph's CPU per document over every session's turns (in batches of 8 of similar length, ONNX
Runtime on one thread) beside the packed torch path documents take (`auto` weights, torch on
one thread), which says whether documents should move too. Recall is measured by
the LoCoMo eval itself (`MEMSVC_EMBED_PRECISION=fp32|int8 python -m memsvc.evals.locomo`).
Writes `evals/results/query-graphs-<tag>.json|.md`.
"""

from __future__ import annotations

import argparse
import re
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.evals.report import (
    RESULTS_DIR,
    environment,
    git_state,
    markdown_table,
    write_results,
)

GRAPHS = ("fp32", "int8")
_CAPITALISED = re.compile(r"\b[A-Z][\w'’]*\s*")


def measure(paths: list[str], threads: int) -> dict[str, Any]:
    from memsvc.embedding.embedder import SentenceTransformerEmbedder
    from memsvc.embedding.onnx_encoder import onnx_query_encoder
    from memsvc.evals.locomo import OVERALL_CATEGORIES, load_conversations
    from memsvc.model.settings import cache_root, default_embedder_path

    conversations = load_conversations(paths)
    questions = [q.question for conv in conversations for q in conv.questions
                 if q.category in OVERALL_CATEGORIES]
    sessions = [[f"{t.speaker}: {t.text}" for t in session.turns]
                for conv in conversations for session in conv.sessions if session.turns]
    path = default_embedder_path()
    torch_path = SentenceTransformerEmbedder(path, threads=1)
    torch_path.embed_documents(sessions[0])  # load, and warm
    rows: dict[str, Any] = {"torch (documents)": {
        "document_cpu_ms": _cpu_per_text(torch_path.embed_documents, sessions)}}
    model = SentenceTransformerEmbedder(path, precision="fp32")._load()
    reference = model.encode(questions, normalize_embeddings=True, batch_size=32,
                             show_progress_bar=False)
    encoders = {}
    for weights in GRAPHS:
        encoder = onnx_query_encoder(model, path, cache_root() / "onnx", weights=weights,
                                     threads=threads)
        one_thread = onnx_query_encoder(model, path, cache_root() / "onnx", weights=weights,
                                        threads=1)
        if encoder is None or one_thread is None:
            raise SystemExit(f"the {weights} graph could not be built or failed its check")
        encoder.encode_batch(questions[:8])  # warm the session's buffers
        encoders[weights] = encoder
        rows[weights] = {"document_cpu_ms": _cpu_per_text(partial(_in_batches, one_thread),
                                                          sessions)}
    # the graphs take turns on each question, so a machine that speeds up or slows down
    # during the run does so for both
    alone: dict[str, list[float]] = {weights: [] for weights in GRAPHS}
    paired: dict[str, list[float]] = {weights: [] for weights in GRAPHS}
    vectors: dict[str, list[np.ndarray]] = {weights: [] for weights in GRAPHS}
    for number, question in enumerate(questions):
        topic = " ".join(_CAPITALISED.sub("", question).split()) or question
        for weights in GRAPHS[number % 2:] + GRAPHS[:number % 2]:
            encoder = encoders[weights]
            start = time.perf_counter()
            vectors[weights].append(encoder.encode(question))
            alone[weights].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            encoder.encode_batch([question, topic])
            paired[weights].append((time.perf_counter() - start) * 1000)
    for weights in GRAPHS:
        got = np.stack(vectors[weights])
        got /= np.linalg.norm(got, axis=1, keepdims=True)
        cosine = np.sum(got * reference, axis=1)
        rows[weights].update({
            "alone_ms": _percentiles(alone[weights]),
            "with_topic_ms": _percentiles(paired[weights]),
            "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
        })
    return {"questions": len(questions), "threads": threads, "graphs": rows}


def _in_batches(encoder: Any, texts: list[str], size: int = 8) -> None:
    """`texts` through `encoder` in batches of similar length (little padding)."""
    ordered = sorted(texts, key=len)
    for start in range(0, len(ordered), size):
        encoder.encode_batch(ordered[start:start + size])


def _cpu_per_text(encode: Any, sessions: list[list[str]]) -> float:
    """Process CPU milliseconds per text to encode every session, one call per session."""
    start = time.process_time()
    for turns in sessions:
        encode(turns)
    return (time.process_time() - start) * 1000 / sum(len(turns) for turns in sessions)


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(samples, 50)), "p95": float(np.percentile(samples, 95))}


def render_markdown(report: dict[str, Any]) -> str:
    result = report["result"]
    rows = [
        [weights, *([r["alone_ms"]["p50"], r["alone_ms"]["p95"], r["with_topic_ms"]["p50"],
                     r["with_topic_ms"]["p95"], f"{r['cosine_min']:.5f}",
                     f"{r['cosine_mean']:.5f}"] if "alone_ms" in r else [None] * 6),
         r["document_cpu_ms"]]
        for weights, r in result["graphs"].items()
    ]
    env = report["environment"]
    return "\n".join([
        f"# ONNX query graphs ({report['tag']})",
        "",
        f"{result['questions']} LoCoMo questions (cat 1-4), one at a time and batched with "
        f"their topic; ONNX Runtime threads: {result['threads'] or 'its default'}. Cosine: "
        "each question's vector against sentence-transformers' fp32 one.",
        "",
        markdown_table(["graph", "alone p50 ms", "alone p95", "with topic p50 ms",
                        "with topic p95", "cosine min", "cosine mean",
                        "document CPU ms (1 thread)"], rows),
        "",
        f"- git `{report['git']['commit']}` (dirty: {report['git']['dirty']}); "
        f"{env['cpus']} CPUs; load average {env['load_average_1_5_15']} at start",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="LoCoMo JSON files or folders of them")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNX Runtime threads (0: its default, the cores)")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    report = {"tag": args.tag, "environment": environment(), "git": git_state(),
              "result": measure(args.paths, args.threads)}
    write_results(args.out, f"query-graphs-{args.tag}", report, render_markdown(report))
    print(render_markdown(report))


if __name__ == "__main__":
    main()
