"""Issue 10 part 3: stateless replicas and durable background work, with real processes.

Two `memsvc serve` replicas (A, B) and `memsvc worker` processes share one schema of the
embedded PostgreSQL. The first worker's extractor is an LLM that never answers, so a
background job stays mid-run until the test kills that worker with SIGKILL; a second worker
(rules extractor) must then pick the job up again, through procrastinate's heartbeats.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from serve_process import HangingLLM, MemsvcProcess, ServeProcess

from memsvc.storage import open_key_store
from memsvc.storage.postgres.server import EmbeddedPostgres

HEARTBEAT = "0.5"  # seconds; a worker silent for three of them is presumed dead


@dataclass
class Cluster:
    url: str
    a: ServeProcess
    b: ServeProcess
    worker: MemsvcProcess
    headers: dict[str, str]
    log_dir: Path
    llm: HangingLLM

    def client(self, replica: ServeProcess, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else self.headers
        return httpx.Client(base_url=replica.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def cluster(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    schema = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = pg_server.url() + "&options=" + quote(f"-csearch_path={schema},public", safe="")
    keys = open_key_store(url)  # migrates the schema before the processes race to
    try:
        _, admin = keys.create("tests", "acme")
    finally:
        keys.close()
    logs = tmp_path_factory.mktemp("replicas")
    llm = HangingLLM().__enter__()
    hanging = {"MEMSVC_EXTRACTOR": "llm", "MEMSVC_LLM_BASE_URL": llm.url,
               "MEMSVC_LLM_MODEL": "m", "MEMSVC_LLM_TIMEOUT": "600"}
    a = ServeProcess(url, logs / "a.log")
    b = ServeProcess(url, logs / "b.log")
    worker = MemsvcProcess(["worker", "--db", url, "--heartbeat", HEARTBEAT],
                           logs / "worker1.log", env=hanging)
    started = [a, b, worker]
    try:
        a.wait_ready()
        b.wait_ready()
        yield Cluster(url, a, b, worker, {"Authorization": f"Bearer {admin}"}, logs, llm)
    finally:
        for proc in started:
            proc.stop()
        llm.__exit__()
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _wait(what: Callable[[], Any], timeout: float, label: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {label}")


def _derived(http: httpx.Client, user: str) -> list[str]:
    page = http.get("/v1/memories", params={"user_id": user, "limit": 1000}).json()
    return sorted(m["text"] for m in page["items"] if m["kind"] != "episode")


def test_a_write_through_one_replica_is_found_by_another(cluster: Cluster) -> None:
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        r = a.post("/v1/memories", json={"messages": "My sister Ana lives in Lisbon.",
                                         "user_id": "u1", "infer": True})
        assert r.status_code == 201, r.text
        hits = b.post("/v1/search", json={"query": "where does Ana live", "user_id": "u1"})
        assert hits.status_code == 200, hits.text
        assert any("Lisbon" in h["memory"]["text"] for h in hits.json()["results"])


def test_a_revoked_key_is_refused_by_every_replica_at_once(cluster: Cluster) -> None:
    keys = open_key_store(cluster.url)  # as `memsvc keys` would: a third process's view
    try:
        info, key = keys.create("short-lived", "acme")
        with cluster.client(cluster.a, key) as a, cluster.client(cluster.b, key) as b:
            for replica in (a, b):  # accepted, and now in both replicas' caches
                assert replica.get("/v1/stats").status_code == 200
                assert replica.get("/v1/stats").status_code == 200
            keys.revoke(info.id)
            assert b.get("/v1/stats").status_code == 401
            assert a.get("/v1/stats").status_code == 401
    finally:
        keys.close()


def test_the_graph_cache_follows_writes_made_by_another_replica(cluster: Cluster) -> None:
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        a.post("/v1/memories", json={"messages": "Marcus Vale is my landlord.",
                                     "user_id": "g1", "infer": True}).raise_for_status()

        def graph_found(text: str) -> bool:
            r = b.post("/v1/search", json={"query": "Marcus Vale", "user_id": "g1",
                                           "plan": "deep", "limit": 20})
            r.raise_for_status()
            return any(text in h["memory"]["text"] and "graph" in h["channel_scores"]
                       for h in r.json()["results"])

        assert graph_found("landlord")  # B has built and cached g1's graph
        a.post("/v1/memories", json={"messages": "Marcus Vale plays the cello.",
                                     "user_id": "g1", "infer": True}).raise_for_status()
        assert graph_found("cello")  # B's cached graph was rebuilt at once


def test_a_background_add_outlives_its_replica_and_a_killed_worker(cluster: Cluster) -> None:
    text = "I adopted a dog named Rex last week."
    with cluster.client(cluster.a) as a:
        r = a.post("/v1/memories", json={"messages": text, "user_id": "bg", "infer": True,
                                         "background": True})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
    with cluster.client(cluster.b) as b:
        # the first worker holds it, stuck in its LLM call
        _wait(lambda: b.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 120,
              "the first worker to start the job")
        cluster.a.kill()  # the replica that accepted the job
        job = b.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "running" and len(job["message_ids"]) == 1
        cluster.worker.kill()  # SIGKILL mid-job
        second = MemsvcProcess(["worker", "--db", cluster.url, "--heartbeat", HEARTBEAT],
                               cluster.log_dir / "worker2.log")
        try:
            done = _wait(lambda: (j := b.get(f"/v1/jobs/{job_id}").json())["status"]
                         in ("done", "failed") and j, 180, "the retried job")
        finally:
            second.stop()
        assert done["status"] == "done", done
        assert "presumed dead" in (cluster.log_dir / "worker2.log").read_text()
        # exactly what a synchronous add extracts, once
        b.post("/v1/memories", json={"messages": text, "user_id": "ref",
                                     "infer": True}).raise_for_status()
        assert _derived(b, "bg") == _derived(b, "ref") != []
        episodes = b.get("/v1/memories", params={"user_id": "bg", "kinds": "episode"}).json()
        assert [e["metadata"].get("extraction") for e in episodes["items"]] == [None]
