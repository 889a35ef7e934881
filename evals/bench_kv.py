"""KV-cache reuse benchmark: memsvc's prompt layout vs memories-in-the-system-prompt.

A multi-turn chat workload is replayed against a real vLLM server (prefix caching on) twice
in one run, once per layout, and for each layout we measure what the prefix cache actually
did -- not what it should do:

- cached share: prompt tokens served from the prefix cache / all prompt tokens, from each
  response's ``usage.prompt_tokens_details.cached_tokens`` and, independently, from the
  server's ``/metrics`` counters (``vllm:prefix_cache_hits_total`` /
  ``vllm:prefix_cache_queries_total``) before and after the layout's run;
- time to first token (streamed; p50 / p95) and total prefill time (sum of TTFTs: requests
  are sent one at a time, so TTFT is prefill plus one decode step).

Workload (LoCoMo files): every conversation gives two users, one per speaker. A user's chat
replays the conversation from a starting session on: that speaker's utterances are the user
messages, the other speaker's replies are the assistant turns kept in the history (the model
generates only ``--max-tokens`` tokens per request, enough to time the first token). Users
are interleaved round-robin, turn by turn, so the cache must hold several conversations at
once. Each layout runs under its own ``cache_salt``, so neither warms the other.

Memories come from memsvc itself (``--retrieval memsvc``, the default): before the chats,
each user's earlier sessions (those before their chat starts) are ingested into a fresh
store in a temp dir with ``Memory.add(infer=True)``, consolidation writes the user's profile
memory (the profile block), and each turn's memories are ``Memory.search(message, limit=5)``
for that user, with the turn's session date as ``now``. Retrieval runs once per turn before
either layout runs, so both layouts see the same memories. ``--retrieval overlap`` keeps the
old word-overlap stand-in (no embedder needed).

Usage::

    python -m memsvc.evals.bench_kv /work/shared/data/locomo-dev/*.json
    python -m memsvc.evals.bench_kv data/*.json --base-url http://gpu-box:8000 --turns 30

Writes ``evals/results/bench_kv.json`` (``layouts.<name>.cached_share``, ``ttft_p50_s``,
``ttft_p95_s``; ``ttft_speedup`` = system_prompt p50 / memsvc p50), ``bench_kv.md`` and
``bench_kv.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from memsvc import Memory
from memsvc.evals.report import RESULTS_DIR, environment, git_state, markdown_table, write_json
from memsvc.llm.client import LLMClient
from memsvc.model.settings import Settings
from memsvc.serving.prompt_layout import (
    LAYOUT_MEMSVC,
    LAYOUT_SYSTEM_PROMPT,
    LayoutOptions,
    Turn,
    build_messages,
    build_prewarm_request,
    fit_history,
)
from memsvc.serving.vllm import LocalVLLM, VLLMConfig

SYSTEM_PROMPT = (
    "You are the user's close friend, chatting with them over many weeks. You have a "
    "long-term memory: a profile of the user and notes from earlier conversations are given "
    "to you. Reply warmly and briefly, in one or two sentences, the way a friend would. Use "
    "what you remember when it is relevant, mention dates when they matter, and never invent "
    "facts that are not in your memory or in the conversation. If you are not sure, ask."
)

#: Layouts the benchmark knows. "memsvc" and "system_prompt" are the two the issue compares;
#: the others isolate one choice of memsvc's layout.
LAYOUT_VARIANTS: dict[str, LayoutOptions] = {
    LAYOUT_MEMSVC: LayoutOptions(),
    "memsvc_no_replay": LayoutOptions(replay_context=False),
    "memsvc_repeat_memories": LayoutOptions(skip_shown_memories=False),
    LAYOUT_SYSTEM_PROMPT: LayoutOptions(layout=LAYOUT_SYSTEM_PROMPT),
}

STOPWORDS = frozenset("""a an and are as at be been but by can could did do does for from had has
have he her hers him his how i i'm i've if in into is it it's its just me my of oh on or our
so that that's the their them then there these they this to too up us was we were what when
where which who why will with would yeah yes you you're your yours really so much very thanks
hey hi wow also about been get got going know like lot one some than think""".split())


@dataclass
class ChatPair:
    user: str
    assistant: str
    session: int


@dataclass
class BenchUser:
    """One simulated user: their chat (pairs), the memory pool and a profile."""

    user_id: str
    name: str
    pairs: list[ChatPair]
    #: every utterance of the conversation: (session, date, speaker, text)
    utterances: list[tuple[int, str, str, str]]
    profile: list[dict[str, str]] | str
    history: list[Turn] = field(default_factory=list)
    #: the memories of each turn (index = turn), filled by ``retrieve_with_memsvc``
    memories: list[list[dict[str, Any]]] = field(default_factory=list)


def _session_keys(conv: dict[str, Any]) -> list[int]:
    return sorted(int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k))


def _date(conv: dict[str, Any], s: int) -> str:
    """'1:56 pm on 8 May, 2023' -> '2023-05-08' (stable, no time of day)."""
    raw = str(conv.get(f"session_{s}_date_time", ""))
    m = re.search(r"(\d{1,2}) (\w+),? (\d{4})", raw)
    if not m:
        return raw
    months = ["january", "february", "march", "april", "may", "june", "july", "august",
              "september", "october", "november", "december"]
    try:
        month = months.index(m.group(2).lower()) + 1
    except ValueError:
        return raw
    return f"{int(m.group(3)):04d}-{month:02d}-{int(m.group(1)):02d}"


def _text(turn: dict[str, Any]) -> str:
    text = str(turn.get("text", "")).strip()
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def load_users(paths: Sequence[Path], turns: int, max_users: int) -> list[BenchUser]:
    """Two users per conversation (one per speaker), each with at least ``turns`` pairs."""
    users: list[BenchUser] = []
    for path in paths:
        conv = json.loads(path.read_text())
        sessions = _session_keys(conv)
        utterances = [(s, _date(conv, s), str(t["speaker"]), _text(t))
                      for s in sessions for t in conv[f"session_{s}"]]
        for k, speaker in enumerate((conv["speaker_a"], conv["speaker_b"])):
            start = sessions[min(1 + 3 * k, len(sessions) - 1)]  # sessions 2 and 5
            pairs: list[ChatPair] = []
            cur_user: list[str] = []
            cur_reply: list[str] = []
            cur_session = start
            for s, _d, who, text in utterances:
                if s < start:
                    continue
                if who == speaker:
                    if cur_reply and cur_user:
                        pairs.append(ChatPair(" ".join(cur_user), " ".join(cur_reply),
                                              cur_session))
                        cur_user, cur_reply = [], []
                    if not cur_user:
                        cur_session = s
                    cur_user.append(text)
                elif cur_user:
                    cur_reply.append(text)
                if len(pairs) >= turns:
                    break
            if len(pairs) < turns:
                print(f"warning: {path.name}/{speaker}: only {len(pairs)} turns",
                      file=sys.stderr)
            own = [text for s, _d, who, text in utterances
                   if s < start and who == speaker and len(text) > 60]
            profile = [{"text": f"{speaker} is the user.", "kind": "profile"}] + [
                {"text": f"{speaker} once said: {t}", "kind": "fact"} for t in own[:6]]
            users.append(BenchUser(f"{path.stem}:{speaker}", speaker, pairs, utterances,
                                   profile))
    return users[:max_users]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if w not in STOPWORDS and len(w) > 2}


def stand_in_memories(user: BenchUser, message: str, session: int, k: int = 5) -> list[dict]:
    """The k turns of earlier sessions sharing most words with the message (ties: recent)."""
    q = _words(message)
    scored = []
    for idx, (s, date, who, text) in enumerate(user.utterances):
        if s >= session:
            break
        scored.append((len(q & _words(text)), idx, s, date, who, text))
    scored.sort(key=lambda x: (-x[0], -x[1]))
    return [{"text": f"{who}: {text}", "kind": "episode", "valid_from": date}
            for _o, _i, _s, date, who, text in scored[:k]]


def _iso(date: str) -> str | None:
    return f"{date}T12:00:00Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else None


def retrieve_with_memsvc(users: list[BenchUser], db_path: Path, *, k: int = 5,
                         embedder: Any = None) -> dict[str, Any]:
    """Fill ``user.memories`` (per turn) and ``user.profile`` from a real memsvc store.

    Each user's sessions before their first chat turn are ingested (one ``add`` per session,
    ``infer=True``: episodes plus the rule extractor's memories), the ``profile`` step of
    consolidation writes their profile memory, and each turn's message is searched in the
    user's scope. Returns ingest/search timings and counts for the report.
    """
    stats = {"ingested_messages": 0, "memories": 0, "ingest_s": 0.0, "searches": 0,
             "search_s": 0.0, "profiles": 0}
    kwargs: dict[str, Any] = {"embedder": embedder} if embedder is not None else {}
    with Memory(settings=Settings(db_path=db_path), **kwargs) as memory:
        for u in users:
            start = min((p.session for p in u.pairs), default=0)
            sessions: dict[int, list[dict[str, Any]]] = {}
            for s, date, who, text in u.utterances:
                if s < start and text:
                    sessions.setdefault(s, []).append(
                        {"role": "user", "name": re.sub(r"\W+", "_", who), "content": text,
                         "timestamp": _iso(date)})
            t0 = time.perf_counter()
            for s, messages in sorted(sessions.items()):
                memory.add(messages, user_id=u.user_id, session_id=f"session-{s}", infer=True)
                stats["ingested_messages"] += len(messages)
            memory.consolidate(user_id=u.user_id, steps=["profile"])
            stats["ingest_s"] += time.perf_counter() - t0
            profile = memory.get_all(user_id=u.user_id, kinds=["profile"]).items
            if profile:
                u.profile = profile[0].text
                stats["profiles"] += 1
            dates = {s: d for s, d, _w, _t in u.utterances}
            u.memories = []
            for pair in u.pairs:
                t0 = time.perf_counter()
                found = memory.search(pair.user, user_id=u.user_id, limit=k,
                                      now=_iso(dates.get(pair.session, "")))
                stats["search_s"] += time.perf_counter() - t0
                stats["searches"] += 1
                u.memories.append([
                    {"text": r.memory.text, "kind": r.memory.kind.value,
                     "valid_from": r.memory.valid_from}
                    for r in found.results if r.memory.kind.value != "profile"])
        stats["memories"] = memory.stats().memories
    return stats


def _metrics(base_url: str) -> dict[str, float]:
    try:
        text = httpx.get(base_url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for name in ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
                 "vllm:request_prefill_time_seconds_sum"):
        out[name] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith(name + "{") or line.startswith(name + " "))
    return out


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def run_layout(client: LLMClient, users: list[BenchUser], name: str, *, turns: int,
               max_tokens: int, history_budget: int, prewarm: bool, salt: str,
               base_url: str) -> dict[str, Any]:
    opts = LAYOUT_VARIANTS[name]
    model = client.resolve_model()
    for u in users:
        u.history = []
    prewarm_stats = {"requests": 0, "prompt_tokens": 0, "seconds": 0.0}
    if prewarm and opts.layout == LAYOUT_MEMSVC:
        # A new session: each user's profile head is computed once, before their first turn.
        for u in users:
            req = build_prewarm_request(SYSTEM_PROMPT, u.profile, model, options=opts)
            r = client.chat(req["messages"], max_tokens=1, cache_salt=salt)
            prewarm_stats["requests"] += 1
            prewarm_stats["prompt_tokens"] += r.usage.prompt_tokens if r.usage else 0
            prewarm_stats["seconds"] += r.latency_s
    before = _metrics(base_url)
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for t in range(turns):
        for u in users:
            if t >= len(u.pairs):
                continue
            pair = u.pairs[t]
            memories = (u.memories[t] if t < len(u.memories)
                        else stand_in_memories(u, pair.user, pair.session))
            history = fit_history(u.history, history_budget, options=opts)
            build = build_messages(SYSTEM_PROMPT, u.profile, history, pair.user, memories, opts)
            ttft = None
            usage = None
            text = []
            t0 = time.perf_counter()
            for chunk in client.stream_chat(build.messages, max_tokens=max_tokens,
                                            cache_salt=salt):
                if ttft is None and chunk.delta:
                    ttft = chunk.elapsed_s
                text.append(chunk.delta)
                if chunk.usage is not None:
                    usage = chunk.usage
            total = time.perf_counter() - t0
            if ttft is None:
                ttft = total
            rows.append({
                "layout": name, "user": u.user_id, "turn": t,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "cached_tokens": usage.cached_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else None,
                "ttft_s": round(ttft, 4), "total_s": round(total, 4),
                "history_turns": len(history),
            })
            u.history = [*u.history, Turn("user", pair.user, context=build.context),
                         Turn("assistant", pair.assistant)]
    wall = time.perf_counter() - t_start
    after = _metrics(base_url)
    prompt = sum(r["prompt_tokens"] or 0 for r in rows)
    cached = sum(r["cached_tokens"] or 0 for r in rows)
    ttfts = [r["ttft_s"] for r in rows]
    hits = after.get("vllm:prefix_cache_hits_total", 0) - before.get(
        "vllm:prefix_cache_hits_total", 0)
    queries = after.get("vllm:prefix_cache_queries_total", 0) - before.get(
        "vllm:prefix_cache_queries_total", 0)
    server_prefill = after.get("vllm:request_prefill_time_seconds_sum", 0) - before.get(
        "vllm:request_prefill_time_seconds_sum", 0)
    first_turns = [r for r in rows if r["turn"] == 0]
    return {
        "options": {"layout": opts.layout, "replay_context": opts.replay_context,
                    "skip_shown_memories": opts.skip_shown_memories},
        "requests": len(rows),
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "cached_share": cached / prompt if prompt else None,
        "metrics_cached_share": hits / queries if queries else None,
        "metrics_hits": hits,
        "metrics_queries": queries,
        "first_turn_cached_share": (
            sum(r["cached_tokens"] or 0 for r in first_turns)
            / max(1, sum(r["prompt_tokens"] or 0 for r in first_turns))),
        "mean_prompt_tokens": prompt / len(rows) if rows else None,
        "ttft_p50_s": _pct(ttfts, 0.5),
        "ttft_p95_s": _pct(ttfts, 0.95),
        "ttft_mean_s": statistics.fmean(ttfts) if ttfts else None,
        "total_prefill_s": sum(ttfts),
        # the server's own account (vllm:request_prefill_time_seconds), without HTTP/queueing
        "server_prefill_s": server_prefill if after else None,
        "wall_s": wall,
        "prewarm": prewarm_stats,
        "rows": rows,
    }


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {LAYOUT_MEMSVC: "tab:green", LAYOUT_SYSTEM_PROMPT: "tab:red",
              "memsvc_no_replay": "tab:olive", "memsvc_repeat_memories": "tab:cyan"}
    for name, lay in result["layouts"].items():
        by_turn: dict[int, list[float]] = {}
        for r in lay["rows"]:
            by_turn.setdefault(r["turn"], []).append(r["ttft_s"])
        xs = sorted(by_turn)
        ax1.plot(xs, [statistics.median(by_turn[x]) for x in xs], marker="o", ms=3,
                 label=name, color=colors.get(name))
    ax1.xaxis.get_major_locator().set_params(integer=True)
    ax1.set_xlabel("turn")
    ax1.set_ylabel("time to first token, median over users (s)")
    ax1.set_title("TTFT per turn")
    ax1.legend()
    ax1.grid(alpha=0.3)
    names = list(result["layouts"])
    x = range(len(names))
    w = 0.38
    ax2.bar([i - w / 2 for i in x],
            [result["layouts"][n]["cached_share"] or 0 for n in names], w,
            label="cached_tokens", color="tab:blue")
    ax2.bar([i + w / 2 for i in x],
            [result["layouts"][n]["metrics_cached_share"] or 0 for n in names], w,
            label="/metrics", color="tab:gray")
    ax2.axhline(0.9, ls="--", color="k", lw=1, label="target 90 %")
    ax2.set_xticks(list(x), names)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share of prompt tokens from the prefix cache")
    ax2.set_title(f"Prefix-cache share (TTFT speedup {result['ttft_speedup']:.1f}x)"
                  if result.get("ttft_speedup") else "Prefix-cache share")
    ax2.legend(loc="upper right")
    fig.suptitle(f"bench_kv: {result['config']['model']} on {result['config']['server']}, "
                 f"{result['config']['users']} users x {result['config']['turns']} turns",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    retrieval = cfg.get("retrieval") or {"mode": "overlap", "k": 5}
    if retrieval["mode"] == "memsvc":
        source = (f"memsvc `Memory.search` (top {retrieval['k']}) over each user's earlier "
                  f"sessions ({retrieval.get('ingested_messages', '?')} messages ingested with "
                  f"`add(infer=True)`, {retrieval.get('memories', '?')} memories); profile "
                  f"block from consolidation's profile memory")
    else:
        source = f"word-overlap stand-in ({retrieval['k']} turns of earlier sessions)"
    rows = []
    for name, lay in result["layouts"].items():
        rows.append([name, lay["requests"], round(lay["mean_prompt_tokens"] or 0),
                     lay["cached_share"], lay["metrics_cached_share"],
                     lay["first_turn_cached_share"], lay["ttft_p50_s"], lay["ttft_p95_s"],
                     lay["total_prefill_s"], lay.get("server_prefill_s")])
    table = markdown_table(["layout", "requests", "mean prompt tokens", "cached share",
                            "cached share (/metrics)", "first-turn cached share",
                            "TTFT p50 (s)", "TTFT p95 (s)", "total prefill (s)",
                            "server prefill (s)"], rows)
    targets = result["targets"]
    return "\n".join([
        "# KV-cache reuse: memsvc layout vs memories in the system prompt",
        "",
        f"Model `{cfg['model']}` at {cfg['server']}; {cfg['users']} users x {cfg['turns']} "
        f"turns, interleaved; {cfg['max_tokens']} generated tokens per request; data: "
        f"{', '.join(cfg['data'])}. Retrieved memories: {source}. No GPU: vLLM CPU "
        f"build on {result.get('environment', {}).get('cpus', '?')} cores (load average "
        f"at start {result.get('environment', {}).get('load_average_1_5_15', '?')}).",
        "",
        table,
        "",
        f"TTFT speedup (system_prompt p50 / memsvc p50): **{result['ttft_speedup']:.2f}x**"
        if result.get("ttft_speedup") else "",
        "",
        f"Targets: cached share >= 90 %: {'met' if targets['cached_share_ge_0_9'] else 'NOT met'}; "
        f"TTFT speedup >= 3x: {'met' if targets['ttft_speedup_ge_3'] else 'NOT met'}.",
        "",
        "![bench_kv](bench_kv.png)",
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="+", type=Path, help="LoCoMo conversation JSON files")
    p.add_argument("--base-url", default=None,
                   help="an OpenAI-compatible server; default: the local vLLM (started if "
                        "needed, stopped afterwards if this run started it)")
    p.add_argument("--turns", type=int, default=20, help="chat turns per user")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=8, help="tokens generated per request")
    p.add_argument("--history-budget", type=int, default=5000,
                   help="approximate tokens of history kept (model context is 8k)")
    p.add_argument("--layouts", default=f"{LAYOUT_MEMSVC},{LAYOUT_SYSTEM_PROMPT}",
                   help=f"comma-separated, from: {', '.join(LAYOUT_VARIANTS)}")
    p.add_argument("--no-prewarm", action="store_true")
    p.add_argument("--retrieval", choices=["memsvc", "overlap"], default="memsvc",
                   help="memsvc: ingest earlier sessions and search them (default); overlap: "
                        "the word-overlap stand-in")
    p.add_argument("--k", type=int, default=5, help="memories retrieved per turn")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)

    names = [s.strip() for s in args.layouts.split(",") if s.strip()]
    unknown = [n for n in names if n not in LAYOUT_VARIANTS]
    if unknown:
        p.error(f"unknown layouts {unknown}; choose from {list(LAYOUT_VARIANTS)}")
    users = load_users(args.data, args.turns, args.users)
    if not users:
        p.error("no users could be built from the data")
    retrieval: dict[str, Any] = {"mode": args.retrieval, "k": args.k}
    if args.retrieval == "memsvc":
        with tempfile.TemporaryDirectory(prefix="bench_kv-") as tmp:
            print("ingesting earlier sessions into memsvc ...", file=sys.stderr)
            retrieval.update(retrieve_with_memsvc(users, Path(tmp) / "bench_kv.db", k=args.k))
        print(f"  {retrieval}", file=sys.stderr)
    launcher = LocalVLLM(VLLMConfig.from_env(base_url=args.base_url))
    started_here = False
    if not launcher.external and not launcher.status().healthy:
        t0 = time.perf_counter()
        launcher.start()
        started_here = True
        print(f"started local vLLM in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    try:
        client = launcher.client(timeout_s=300)
        model = client.resolve_model()
        run_id = uuid.uuid4().hex[:8]
        layouts: dict[str, Any] = {}
        for layout in names:
            print(f"running layout {layout} ...", file=sys.stderr)
            layouts[layout] = run_layout(
                client, users, layout, turns=args.turns, max_tokens=args.max_tokens,
                history_budget=args.history_budget, prewarm=not args.no_prewarm,
                salt=f"bench-{run_id}-{layout}", base_url=launcher.base_url)
            lay = layouts[layout]
            print(f"  cached share {lay['cached_share']:.3f} (metrics "
                  f"{lay['metrics_cached_share'] or 0:.3f}), TTFT p50 {lay['ttft_p50_s']:.3f} s "
                  f"p95 {lay['ttft_p95_s']:.3f} s, prefill {lay['total_prefill_s']:.1f} s",
                  file=sys.stderr)
    finally:
        if started_here:
            launcher.stop()
    mem = layouts.get(LAYOUT_MEMSVC)
    sp = layouts.get(LAYOUT_SYSTEM_PROMPT)
    speedup = (sp["ttft_p50_s"] / mem["ttft_p50_s"]
               if mem and sp and mem["ttft_p50_s"] else None)
    result = {
        "benchmark": "bench_kv",
        "config": {
            "model": model, "server": launcher.base_url,
            "server_mode": "external" if launcher.external else f"local ({launcher.device})",
            "users": len(users), "turns": args.turns, "max_tokens": args.max_tokens,
            "history_budget": args.history_budget, "prewarm": not args.no_prewarm,
            "data": [str(d) for d in args.data], "retrieval": retrieval,
            "server_command": None if launcher.external else launcher.server_command(),
        },
        "environment": environment(),
        "git": git_state(),
        "layouts": layouts,
        "ttft_speedup": speedup,
        "targets": {
            "cached_share_ge_0_9": bool(mem and (mem["cached_share"] or 0) >= 0.9),
            "ttft_speedup_ge_3": bool(speedup and speedup >= 3),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench_kv.json", result)
    (args.out / "bench_kv.md").write_text(_markdown(result), encoding="utf-8")
    _plot(result, args.out / "bench_kv.png")
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
