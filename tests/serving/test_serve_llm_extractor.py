"""`memsvc serve` with ``MEMSVC_EXTRACTOR=llm``: the setting reaches the server process.

A real `memsvc serve` subprocess on 127.0.0.1 talks to the recorded OpenAI-compatible fake
(tests/extractors/fake_openai.py, a real HTTP server replaying hand-written chat-completion
bodies; no model runs). An `add` with infer=True, answered at once and as a background job,
stores the LLM extractor's memories, and says so in their provenance and metadata.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parents[1] / "extractors"))
from fake_openai import FakeOpenAI, completion, recording

TURNS = [
    {"role": "user", "name": "Caroline", "timestamp": "2023-05-08T13:56:00Z",
     "content": "I went to a LGBTQ support group yesterday and it was so powerful."},
    {"role": "user", "name": "Melanie", "timestamp": "2023-05-08T13:57:00Z",
     "content": "Yeah, I painted that lake sunrise last year! It's special to me."},
    {"role": "user", "name": "Caroline", "timestamp": "2023-05-08T13:58:00Z",
     "content": "I live in Boston these days."},
]
LATER = {"role": "user", "name": "Caroline", "timestamp": "2023-05-09T09:00:00Z",
         "content": "Weekends are for the mountains."}
LATER_REPLY = completion(json.dumps({"memories": [{
    "turn": 1, "kind": "preference", "text": "Caroline loves hiking in the White Mountains",
    "date": None, "subject": None, "predicate": None, "object": None,
    "entities": ["Caroline", "White Mountains"], "aliases": []}]}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(1200):
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("memsvc serve did not answer /healthz")


def _extracted(base: str) -> list[dict[str, Any]]:
    page = httpx.get(f"{base}/v1/memories", params={"user_id": "caroline", "limit": 100},
                     timeout=30).json()
    return [m for m in page["items"] if m["kind"] != "episode"]


def test_serve_with_the_llm_extractor_stores_the_llms_memories(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    fake = FakeOpenAI([*recording("extraction_ok.json"), LATER_REPLY])
    with fake.running():
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEMSVC_EMBED_THREADS": "1",
               "MEMSVC_EXTRACTOR": "llm", "MEMSVC_LLM_BASE_URL": f"{fake.url}/v1"}
        env.pop("MEMSVC_LLM_MODEL", None)  # the model name comes from the server's /v1/models
        proc = subprocess.Popen(
            [sys.executable, "-m", "memsvc.cli", "serve", "--port", str(port),
             "--db", str(tmp_path / "serve.db")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            _wait_ready(base, proc)
            added = httpx.post(f"{base}/v1/memories", json={
                "messages": TURNS, "user_id": "caroline", "infer": True}, timeout=60)
            assert added.status_code == 201, added.text
            now = _extracted(base)

            job = httpx.post(f"{base}/v1/memories", json={
                "messages": [LATER], "user_id": "caroline", "infer": True,
                "background": True}, timeout=60)
            assert job.status_code == 202, job.text
            for _ in range(600):
                state = httpx.get(f"{base}/v1/jobs/{job.json()['id']}", timeout=10).json()
                if state["status"] in ("done", "failed"):
                    break
                time.sleep(0.1)
            assert state["status"] == "done", state
            later = _extracted(base)
        finally:
            proc.terminate()
            proc.communicate(timeout=30)

    assert len(fake.requests) == 2  # one call per add: the server used the LLM, twice
    assert all(r["response_format"]["json_schema"]["name"] == "memories"
               for r in fake.requests)
    assert fake.requests[0]["model"] == "recorded"
    assert sorted(m["text"] for m in now) == [
        "Caroline lives in Boston", "Caroline went to an LGBTQ support group (7 May 2023)",
        "Melanie painted a lake sunrise"]
    assert len(later) == 4
    assert "Caroline loves hiking in the White Mountains" in {m["text"] for m in later}
    for memory in later:
        assert memory["provenance"]["extractor"] == "llm"
        assert memory["provenance"]["extractor_version"] == "1:recorded"
        assert memory["metadata"]["extractor"] == "llm/1:recorded"
        assert "fallback" not in memory["metadata"]
