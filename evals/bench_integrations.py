"""What a framework integration costs: the latency a search/recall adds over the direct SDK call.

One store with 200 memories of one user (written through the LangGraph store, so every
integration finds the same items), then for each integration 200 searches of the same
queries (k=5), interleaved round by round with the direct SDK calls they are compared to
(the order rotates each round, and every path shares one embedder and its query cache, so
no path is favoured). Two backends: the embedded store in this process, and a `memsvc
serve` in its own process on 127.0.0.1. Sync paths are compared with `Memory.search` /
`MemoryClient.search`; async paths with `AsyncMemory.search` / `AsyncMemoryClient.search`.

    python -m memsvc.evals.bench_integrations [--calls 200]

Results: evals/results/bench_integrations.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

from memsvc import AsyncMemory, AsyncMemoryClient, Memory, MemoryClient
from memsvc.compat import mem0
from memsvc.embedding.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.evals.bench_http import start_server
from memsvc.evals.report import RESULTS_DIR, environment, git_state, markdown_table, write_json
from memsvc.integrations import langchain, langgraph, openai_agents, pydantic_ai
from memsvc.model.settings import Settings, default_embedder_path

USER = "bench-alice"
NS = ("memories", USER)
K = 5
QUERIES = ["what pets does she have", "where does she work", "favourite food", "travel plans",
           "music she likes", "her sister", "allergies", "weekend hobbies", "the garden",
           "running a marathon", "coffee or tea", "books she read", "her car", "birthday",
           "the dentist", "learning piano", "budget for the trip", "kyoto", "her laptop",
           "salmon recipe"]
TOPICS = ["a guinea pig named Oscar", "a job as a nurse", "spicy ramen", "a trip to Kyoto",
          "jazz piano", "her sister Maya", "a peanut allergy", "hiking on weekends",
          "tomatoes in the garden", "the Berlin marathon", "oat-milk coffee", "sci-fi novels",
          "an old blue Volvo", "a birthday in May", "a dentist appointment", "piano lessons",
          "a trip budget of 2000 euros", "temples in Kyoto", "a new laptop", "baked salmon"]

Sync = Callable[[str], Any]
Async = Callable[[str], Awaitable[Any]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(memory: Memory | MemoryClient, n: int) -> None:
    store = langgraph.MemsvcStore(memory)
    for i in range(n):
        store.put(NS, f"k{i}", {"content": f"Alice mentioned {TOPICS[i % len(TOPICS)]} "
                                           f"(note {i})", "i": i})


def sync_paths(memory: Memory | MemoryClient) -> dict[str, Sync]:
    store = langgraph.MemsvcStore(memory)
    indexed = langgraph.MemsvcStore(memory, user_index=1)
    _, recall, _ = langchain.memory_tools(memory, user_id=USER)
    retriever = langchain.MemsvcRetriever(memory=memory, user_id=USER, k=K)
    m0 = mem0.Memory(memory=memory) if isinstance(memory, Memory) else mem0.MemoryClient(
        client=memory)
    return {
        "direct SDK search": lambda q: memory.search(q, user_id=USER, limit=K),
        "langgraph MemsvcStore.search": lambda q: store.search(NS, query=q, limit=K),
        "langgraph MemsvcStore.search, user_index=1":
            lambda q: indexed.search(NS, query=q, limit=K),
        "langchain recall tool": lambda q: recall.invoke({"query": q, "limit": K}),
        "langchain MemsvcRetriever": lambda q: retriever.invoke(q),
        "mem0 compat search": lambda q: m0.search(q, user_id=USER, limit=K),
    }


def async_paths(memory: AsyncMemory | AsyncMemoryClient) -> dict[str, Async]:
    from agents.tool_context import ToolContext
    from pydantic_ai import RunContext
    from pydantic_ai.models.test import TestModel
    from pydantic_ai.usage import RunUsage

    store = langgraph.MemsvcStore(memory)
    oa_recall = openai_agents.memory_tools(memory, user_id=USER)[1]
    toolset = pydantic_ai.memory_toolset(memory, user_id=USER)
    ctx = RunContext(deps=None, model=TestModel(), usage=RunUsage())
    tools: dict[str, Any] = {}

    async def oa(q: str) -> Any:
        args = json.dumps({"query": q, "limit": K})
        tc = ToolContext(context=None, tool_name="recall", tool_call_id="b", tool_arguments=args)
        return await oa_recall.on_invoke_tool(tc, args)

    async def pa(q: str) -> Any:
        if not tools:
            tools.update(await toolset.get_tools(ctx))
        return await toolset.call_tool("recall", {"query": q, "limit": K}, ctx, tools["recall"])

    return {
        "direct async SDK search": lambda q: memory.search(q, user_id=USER, limit=K),
        "langgraph MemsvcStore.asearch": lambda q: store.asearch(NS, query=q, limit=K),
        "openai-agents recall tool": oa,
        "pydantic-ai recall tool": pa,
    }


def measure_sync(paths: dict[str, Sync], calls: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for name in names:  # warm-up: caches, connections, lazy imports
        paths[name](QUERIES[0])
    for i in range(calls):
        q = QUERIES[i % len(QUERIES)]
        for name in names[i % len(names):] + names[: i % len(names)]:
            started = time.perf_counter()
            paths[name](q)
            times[name].append((time.perf_counter() - started) * 1000)
    return times


async def measure_async(paths: dict[str, Async], calls: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for name in names:
        await paths[name](QUERIES[0])
    for i in range(calls):
        q = QUERIES[i % len(QUERIES)]
        for name in names[i % len(names):] + names[: i % len(names)]:
            started = time.perf_counter()
            await paths[name](q)
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def summarise(backend: str, times: dict[str, list[float]], baseline: str) -> list[dict[str, Any]]:
    base = statistics.median(times[baseline])
    rows = []
    for name, values in times.items():
        p50 = statistics.median(values)
        rows.append({"backend": backend, "path": name, "calls": len(values), "p50_ms": p50,
                     "p90_ms": statistics.quantiles(values, n=10)[-1],
                     "baseline": baseline, "extra_p50_ms": p50 - base})
    return rows


def run(calls: int, items: int) -> list[dict[str, Any]]:
    # cast: the Embedder protocol's `dim` is a plain attribute, the real embedder's a property
    embedder = cast(Embedder, SentenceTransformerEmbedder(default_embedder_path()))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "embedded.db"
        memory = Memory(settings=Settings(db_path=db), embedder=embedder)
        populate(memory, items)
        rows += summarise("embedded", measure_sync(sync_paths(memory), calls),
                          "direct SDK search")
        aio = AsyncMemory(settings=Settings(db_path=db), embedder=embedder)
        rows += summarise("embedded", asyncio.run(measure_async(async_paths(aio), calls)),
                          "direct async SDK search")
        asyncio.run(aio.close())
        memory.close()

        port = _free_port()
        server = start_server(Path(tmp) / "served.db", port)
        try:
            url = f"http://127.0.0.1:{port}"
            with MemoryClient(url) as client:
                populate(client, items)
                rows += summarise("server", measure_sync(sync_paths(client), calls),
                                  "direct SDK search")

            async def remote() -> dict[str, list[float]]:
                async with AsyncMemoryClient(url) as aclient:
                    return await measure_async(async_paths(aclient), calls)

            rows += summarise("server", asyncio.run(remote()), "direct async SDK search")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    table = markdown_table(
        ["backend", "path", "p50 ms", "p90 ms", "extra p50 ms (vs baseline)"],
        [[r["backend"], r["path"], r["p50_ms"], r["p90_ms"], r["extra_p50_ms"]]
         for r in report["rows"]])
    env = report["environment"]
    return (f"# Integration overhead: search/recall latency over the direct SDK call\n\n"
            f"{report['calls']} calls per path, k={K}, {report['items']} memories of one user; "
            f"paths interleaved round by round. Baselines: `Memory.search` / "
            f"`MemoryClient.search` for sync paths, their async twins for async paths.\n\n"
            f"{table}\n\n- machine: {env.get('cpus')} CPUs, {env.get('platform')}\n"
            f"- commit: {report['git'].get('commit')} (dirty: {report['git'].get('dirty')})\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memsvc.evals.bench_integrations",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    report = {"calls": args.calls, "items": args.items, "environment": environment(),
              "git": git_state(), "rows": run(args.calls, args.items)}
    write_json(args.out_dir / "bench_integrations.json", report)
    (args.out_dir / "bench_integrations.md").write_text(render_markdown(report), encoding="utf-8")
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
