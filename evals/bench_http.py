"""Load check of the REST server: concurrent clients mixing writes and searches.

Starts `memsvc serve` as its own process on 127.0.0.1 (a fresh store in a temp dir unless
--db is given), runs N concurrent clients for a fixed time, then counts every acknowledged
write back through the API (a write answered 201 whose message is missing is *lost*) and
checks the store's indexes agree with its rows. Traffic goes to 127.0.0.1 only, bounded in
time. Results: evals/results/bench_http.{json,md,png}.

    python -m memsvc.evals.bench_http --clients 16 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from memsvc.evals.report import RESULTS_DIR, environment, git_state, markdown_table, write_json

TOPICS = ("coffee", "berlin", "marathon", "python", "garden", "piano", "sister", "allergy",
          "kyoto", "budget", "dentist", "guitar", "salmon", "tennis", "laptop", "invoice")
USERS = tuple(f"bench-user-{i}" for i in range(8))


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"write": [], "search": []})
    finished_at: list[tuple[float, str]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    acknowledged: dict[str, set[str]] = field(default_factory=dict)  # user -> message ids
    jobs: list[str] = field(default_factory=list)  # ids of background writes (202)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path | str, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "serve", "--port", str(port), "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
    proc.terminate()
    raise RuntimeError("server did not start within 120 s")


async def client_loop(http: httpx.AsyncClient, cid: int, stop_at: float, write_ratio: float,
                      tally: Tally, t0: float, background_ratio: float = 0.0) -> None:
    """One client: writes (a share of them `background: true`, answered 202) and searches."""
    rng = random.Random(cid)
    seq = 0
    while time.monotonic() < stop_at:
        user = rng.choice(USERS)
        words = " ".join(rng.sample(TOPICS, 3))
        kind = "write" if rng.random() < write_ratio else "search"
        started = time.monotonic()
        try:
            if kind == "write":
                seq += 1
                background = rng.random() < background_ratio
                r = await http.post("/v1/memories", json={
                    "messages": f"client {cid} note {seq}: {words}", "user_id": user,
                    "background": background})
                if r.status_code == (202 if background else 201):
                    tally.acknowledged.setdefault(user, set()).update(r.json()["message_ids"])
                    if background:
                        tally.jobs.append(r.json()["id"])
            else:
                r = await http.post("/v1/search", json={"query": words, "user_id": user,
                                                        "limit": 10})
            ok = r.status_code in (200, 201, 202)
            if not ok:
                tally.error(f"{kind} HTTP {r.status_code}")
        except httpx.HTTPError as exc:
            ok = False
            tally.error(f"{kind} {type(exc).__name__}")
        finished = time.monotonic()
        if ok:
            tally.latencies[kind].append(finished - started)
            tally.finished_at.append((finished - t0, kind))


async def run_load(base_url: str, clients: int, duration: float, write_ratio: float,
                   warmup_writes: int) -> Tally:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        tally = await warm_up(http, warmup_writes)
        t0 = time.monotonic()
        stop_at = t0 + duration
        await asyncio.gather(*(client_loop(http, c, stop_at, write_ratio, tally, t0)
                               for c in range(clients)))
    return tally


async def warm_up(http: httpx.AsyncClient, writes: int) -> Tally:
    """Every user has memories before searches are timed; those writes count as acknowledged."""
    warm = Tally()
    for i in range(writes):
        user = USERS[i % len(USERS)]
        r = await http.post("/v1/memories", json={
            "messages": f"warm-up note {i}: {' '.join(random.sample(TOPICS, 3))}",
            "user_id": user})
        r.raise_for_status()
        warm.acknowledged.setdefault(user, set()).update(r.json()["message_ids"])
    return warm


def count_lost(base_url: str, tally: Tally) -> dict[str, int]:
    """Every acknowledged message must be readable back through the API."""
    lost = 0
    found = 0
    with httpx.Client(base_url=base_url, timeout=120) as http:
        for user, ids in tally.acknowledged.items():
            stored = {m["id"] for m in http.get("/v1/messages", params={
                "user_id": user, "limit": 100_000}).raise_for_status().json()}
            lost += len(ids - stored)
            found += len(ids & stored)
    return {"acknowledged": sum(len(v) for v in tally.acknowledged.values()),
            "found": found, "lost": lost}


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else None


def summarize(tally: Tally, duration: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    total = 0
    for kind, values in tally.latencies.items():
        total += len(values)
        out[kind] = {"count": len(values), "per_s": len(values) / duration,
                     "p50_ms": _pct(values, 50), "p95_ms": _pct(values, 95),
                     "p99_ms": _pct(values, 99), "max_ms": _pct(values, 100)}
    out["all"] = {"count": total, "per_s": total / duration,
                  "p50_ms": _pct(tally.latencies["write"] + tally.latencies["search"], 50),
                  "p95_ms": _pct(tally.latencies["write"] + tally.latencies["search"], 95)}
    return out


def render_markdown(report: dict[str, Any]) -> str:
    cfg, res = report["config"], report["results"]
    rows = [[kind, res[kind]["count"], f"{res[kind]['per_s']:.1f}",
             f"{res[kind]['p50_ms']:.1f}" if res[kind]["p50_ms"] is not None else "–",
             f"{res[kind]['p95_ms']:.1f}" if res[kind]["p95_ms"] is not None else "–"]
            for kind in ("write", "search", "all")]
    lost = report["durability"]
    lines = [
        "# HTTP load check (`evals/bench_http.py`)",
        "",
        f"{cfg['clients']} concurrent clients, {cfg['duration_s']:.0f} s, "
        f"{cfg['write_ratio']:.0%} writes / {1 - cfg['write_ratio']:.0%} searches, against "
        "`memsvc serve` on 127.0.0.1 (separate process, embedded default: SQLite + "
        "all-MiniLM-L6-v2 on CPU, no API keys).",
        "",
        markdown_table(["operation", "ok requests", "per second", "p50 ms", "p95 ms"], rows),
        "",
        f"- errors: **{sum(report['errors'].values())}** {report['errors'] or ''}",
        f"- writes acknowledged: {lost['acknowledged']}, read back: {lost['found']}, "
        f"**lost: {lost['lost']}**",
        f"- store consistent after the run: **{report['consistency']['consistent']}** "
        f"({report['consistency']['memories']} memories, "
        f"{report['consistency']['vectors']} vectors)",
        f"- machine: {report['environment']['cpus']} CPUs, {report['environment']['platform']}; "
        f"commit {report['git']['commit']}",
        f"- machine load (1-min load average, shared with other work): "
        f"{report['load_average']['before'][0]:.1f} before, "
        f"{report['load_average']['after'][0]:.1f} after",
        "",
        "Latency is measured by the clients (request sent → response read), so it includes "
        "queueing behind the other clients on the same 2 cores.",
    ]
    return "\n".join(lines) + "\n"


def plot(tally: Tally, duration: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.arange(0, duration + 1, 1.0)
    for kind in ("write", "search"):
        times = [t for t, k in tally.finished_at if k == kind]
        counts, _ = np.histogram(times, bins=bins)
        left.plot(bins[:-1], counts, label=kind)
        values = np.asarray(tally.latencies[kind]) * 1000
        if values.size:
            right.hist(values, bins=60, alpha=0.6, label=kind)
    left.set(title="completed requests per second", xlabel="s", ylabel="requests")
    right.set(title="latency", xlabel="ms", ylabel="requests", yscale="log")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--write-ratio", type=float, default=0.3)
    parser.add_argument("--warmup-writes", type=int, default=80)
    parser.add_argument("--db", type=Path, default=None, help="default: a fresh temp store")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="bench_http")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="memsvc-bench-http-")
    db = args.db or Path(tmp.name) / "bench.db"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(db, port)
    load_before = os.getloadavg()
    try:
        tally = asyncio.run(run_load(base_url, args.clients, args.duration, args.write_ratio,
                                     args.warmup_writes))
        durability = count_lost(base_url, tally)
    finally:
        server.terminate()
        server.wait(timeout=30)
    from memsvc import Memory

    with Memory(db) as memory:
        consistency = memory.store.consistency()
    report = {
        "benchmark": "bench_http",
        "config": {"clients": args.clients, "duration_s": args.duration,
                   "write_ratio": args.write_ratio, "warmup_writes": args.warmup_writes,
                   "users": len(USERS)},
        "results": summarize(tally, args.duration),
        "errors": tally.errors,
        "durability": durability,
        "consistency": consistency,
        "environment": environment(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "git": git_state(),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.out_dir / f"{args.name}.json", report)
    (args.out_dir / f"{args.name}.md").write_text(render_markdown(report))
    plot(tally, args.duration, args.out_dir / f"{args.name}.png")
    print(render_markdown(report))
    tmp.cleanup()
    ok = not tally.errors and durability["lost"] == 0 and consistency["consistent"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
