"""Where an `add` spends CPU time, per stage (issue 13): extraction, embedding, the manager's
plan (its lookups per candidate), the store's write transaction.

Ingests every LoCoMo session as one `add`, as the application mode does, and sums each stage's
process CPU time (not wall clock: on a shared machine wall clock measures the neighbours).
Run it with `MEMSVC_EMBED_THREADS=1` on a loaded machine: with two torch threads, a worker
spinning while its partner waits for a core counts as CPU time too. `--padded` embeds
documents through sentence-transformers' padded `encode`, the path before the packed one.

    MEMSVC_EMBED_THREADS=1 python -m memsvc.evals.ingest_profile /work/shared/data/locomo-dev \
        --mode raw|infer [--padded]

Prints only; nothing is written.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def profile(paths: Sequence[str], mode: str, *, padded: bool = False) -> dict[str, float]:
    """CPU ms per turn of each stage of `add`, and of the whole call ("add")."""
    from memsvc import Memory
    from memsvc.evals.locomo import MODES, load_conversations

    spent: dict[str, float] = {}

    def timed(label: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return call(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - start
        return run

    turns = 0
    with tempfile.TemporaryDirectory(prefix="memsvc-ingest-profile-") as tmp:
        memory = Memory(db_path=Path(tmp) / "profile.db")
        try:
            memory.embedder.embed_documents(["load the model"])
            if padded:
                memory.embedder._document_encoder = None  # type: ignore[attr-defined]
            memory.embedder.embed_documents = timed(  # type: ignore[method-assign]
                "embed", memory.embedder.embed_documents)
            memory._manager.plan = timed("plan", memory._manager.plan)  # type: ignore[method-assign]
            memory.store.apply = timed("apply", memory.store.apply)
            if memory.extractor is not None:
                memory.extractor.extract = timed(
                    "extract", memory.extractor.extract)
            add = timed("add", memory.add)
            for conv in load_conversations(paths):
                for session in conv.sessions:
                    if not session.turns:
                        continue
                    add([{"role": "user", "name": t.speaker, "content": t.text}
                         for t in session.turns], user_id=conv.sample_id,
                        session_id=f"session_{session.number}", timestamp=session.timestamp,
                        infer=MODES[mode])
                    turns += len(session.turns)
        finally:
            memory.close()
    return {label: round(seconds * 1000 / max(turns, 1), 3) for label, seconds in spent.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memsvc.evals.ingest_profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--mode", choices=("raw", "infer"), default="raw")
    parser.add_argument("--padded", action="store_true")
    args = parser.parse_args(argv)
    stages = profile(args.paths, args.mode, padded=args.padded)
    other = stages["add"] - sum(ms for label, ms in stages.items() if label != "add")
    for label, ms in [*stages.items(), ("other", round(other, 3))]:
        print(f"{label:8s} {ms:7.3f} CPU ms per turn")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
