"""bench_kv's plumbing (workload, stand-in retrieval, aggregation, report files) against a fake
OpenAI-compatible server; the real numbers come from running it against vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from memsvc.evals import bench_kv
from memsvc.llm.client import LLMClient

TOPICS = ["painting", "hiking", "cooking", "music", "travel"]


def _conversation(path: Path, sessions: int = 6, turns: int = 12) -> Path:
    conv: dict = {"speaker_a": "Ann", "speaker_b": "Bob"}
    for s in range(1, sessions + 1):
        conv[f"session_{s}_date_time"] = f"1:00 pm on {s} May, 2023"
        conv[f"session_{s}"] = [
            {"speaker": "Ann" if i % 2 == 0 else "Bob", "dia_id": f"D{s}:{i + 1}",
             "text": f"{'Ann' if i % 2 == 0 else 'Bob'} talks about {TOPICS[i % 5]} "
                     f"in session {s}, turn {i}, with some longer words to count here."}
            for i in range(turns)
        ]
    path.write_text(json.dumps(conv))
    return path


def test_users_pairs_and_stand_in_memories(tmp_path: Path) -> None:
    users = bench_kv.load_users([_conversation(tmp_path / "c1.json")], turns=10, max_users=4)
    assert [u.name for u in users] == ["Ann", "Bob"]
    ann = users[0]
    assert len(ann.pairs) == 10
    assert ann.pairs[0].user.startswith("Ann") and ann.pairs[0].assistant.startswith("Bob")
    assert ann.pairs[0].session == 2  # starts at session 2: session 1 is the memory pool
    mems = bench_kv.stand_in_memories(ann, "tell me about music", ann.pairs[0].session)
    assert len(mems) == 5
    assert all(m["valid_from"] == "2023-05-01" for m in mems)  # only earlier sessions
    assert all("music" in m["text"] for m in mems[:2])  # word overlap ranks first
    assert mems == bench_kv.stand_in_memories(ann, "tell me about music", 2)


def _fake_server(request: httpx.Request) -> httpx.Response:
    payload = json.loads(request.content)
    prompt = sum(len(m["content"]) for m in payload["messages"]) // 4
    cached = prompt // 2
    if payload.get("stream"):
        events = [{"choices": [{"delta": {"content": "ok"}, "finish_reason": "length"}]},
                  {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": 1,
                                            "total_tokens": prompt + 1,
                                            "prompt_tokens_details": {"cached_tokens": cached}}}]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, content=body.encode())
    return httpx.Response(200, json={
        "model": "fake", "choices": [{"message": {"content": "o"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}})


@pytest.mark.parametrize("layout", list(bench_kv.LAYOUT_VARIANTS))
def test_run_layout_aggregates(tmp_path: Path, layout: str) -> None:
    users = bench_kv.load_users([_conversation(tmp_path / "c1.json")], turns=6, max_users=2)
    client = LLMClient("http://fake.test", model="fake",
                       transport=httpx.MockTransport(_fake_server))
    res = bench_kv.run_layout(client, users, layout, turns=6, max_tokens=1,
                              history_budget=5000, prewarm=True, salt="s",
                              base_url="http://127.0.0.1:9")  # /metrics unreachable: skipped
    assert res["requests"] == 12
    assert 0.45 < res["cached_share"] <= 0.5
    assert res["metrics_cached_share"] is None
    assert res["ttft_p50_s"] is not None and res["ttft_p95_s"] >= res["ttft_p50_s"]
    assert res["prewarm"]["requests"] == (2 if layout.startswith("memsvc") else 0)


def test_report_files(tmp_path: Path) -> None:
    rows = [{"turn": t, "ttft_s": 0.1 * (t + 1)} for t in range(3)]
    lay = {"requests": 3, "mean_prompt_tokens": 100.0, "cached_share": 0.9,
           "metrics_cached_share": 0.9, "first_turn_cached_share": 0.5, "ttft_p50_s": 0.2,
           "ttft_p95_s": 0.3, "total_prefill_s": 0.6, "server_prefill_s": 0.5, "rows": rows}
    result = {"config": {"model": "m", "server": "s", "users": 1, "turns": 3, "max_tokens": 1,
                         "data": ["x.json"]},
              "layouts": {"memsvc": lay, "system_prompt": {**lay, "cached_share": 0.2}},
              "ttft_speedup": 1.0,
              "targets": {"cached_share_ge_0_9": True, "ttft_speedup_ge_3": False}}
    md = bench_kv._markdown(result)
    assert "| memsvc | 3 |" in md and "NOT met" in md
    bench_kv._plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_memories_come_from_a_real_memsvc_store(tmp_path: Path, embedder: object) -> None:
    conv = _conversation(tmp_path / "c1.json")
    data = json.loads(conv.read_text())
    data["session_1"][0]["text"] = "Ann adopted a greyhound named Biscuit from the shelter."
    conv.write_text(json.dumps(data))
    users = bench_kv.load_users([conv], turns=4, max_users=2)
    users[0].pairs[0].user = "How is your greyhound doing?"
    stats = bench_kv.retrieve_with_memsvc(users, tmp_path / "kv.db", k=3, embedder=embedder)
    ann, bob = users
    assert stats["searches"] == 8 and stats["profiles"] == 2
    # only sessions before each user's first chat turn were ingested (Ann: 1, Bob: 1-4)
    assert stats["ingested_messages"] == 12 + 4 * 12
    assert len(ann.memories) == 4 and all(len(m) <= 3 for m in ann.memories)
    assert "Biscuit" in ann.memories[0][0]["text"]  # the search, not a fixed list
    assert all(str(m["valid_from"]).startswith("2023-05-01") for m in ann.memories[0])
    assert isinstance(ann.profile, str) and ann.profile.startswith("Profile of")
    assert bob.memories != ann.memories
