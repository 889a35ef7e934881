"""A tiny `bench_store` run on SQLite and the session's embedded PostgreSQL: the postgres
path, the vector cache and `--keep` / `--reuse` all work end to end (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsvc.evals import bench_store
from memsvc.storage.postgres.server import EmbeddedPostgres


def test_both_backends_then_the_kept_stores_measured_again(
    pg_server: EmbeddedPostgres, tmp_path: Path,
) -> None:
    url = pg_server.create_database("bench_store_run")
    common = {"pg_url": url, "cache_dir": tmp_path / "cache", "progress": False}
    report = bench_store.run(
        [100, 200], per_user=50, one_scope=60, backends=["sqlite", "postgres"], queries=5,
        batch=20, writers=2, keep=tmp_path / "kept", out_dir=tmp_path / "out", stem="b",
        **common)

    points = {(p["label"], p["backend"]): p for p in report["points"]}
    labels = ["100 total / 2 users", "200 total / 4 users", "60 in one scope"]
    assert set(points) == {(lab, b) for lab in labels for b in ("sqlite", "postgres")}
    for (_, backend), p in points.items():
        assert p["ingest"]["memories"] > 0 and p["ingest"]["memories_per_s"] > 0
        assert p["ingest"]["embedded_at_ingest"] == 0  # every vector came from the cache
        assert p["ingest"]["writers"] == 2
        assert p["search"]["memsvc"]["n"] == 5
        # the baselines do not depend on the backend: measured with the first one only
        assert ("numpy_cosine" in p["search"]) == (backend == "sqlite")
    assert points[("200 total / 4 users", "postgres")]["ingest"]["memories"] == 100
    assert report["embedding"]["this_run"]["docs"] == 200  # the one scope reuses the prefix
    assert {"b.json", "b.md", "b.png"} <= {f.name for f in (tmp_path / "out").iterdir()}
    assert "memsvc (postgres)" in (tmp_path / "out" / "b.md").read_text()

    again = bench_store.run(reuse=tmp_path / "kept", queries=5, out_dir=None, **common)
    assert again["embedding"]["this_run"]["docs"] == 0
    reused = {(p["label"], p["backend"]): p for p in again["points"]}
    assert set(reused) == {(lab, b) for lab in labels[1:] for b in ("sqlite", "postgres")}
    for key, p in reused.items():
        assert p["ingest"]["reused"] is True
        assert p["ingest"]["memories"] == points[key]["ingest"]["memories"]
        assert p["search"]["memsvc"]["n"] == 5
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert sum(e - s for r in manifest["ranges"]["multi"].values() for s, e in r) == 200


def test_runs_of_one_backend_each_merge_into_one_report(tmp_path: Path) -> None:
    """Two runs over the same corpus, one backend each, become one report of both (the
    baselines kept from the first); runs of another corpus or the same backend are refused."""
    common = {"cache_dir": tmp_path / "cache", "progress": False, "queries": 3, "batch": 20,
              "one_scope": 0}
    a = bench_store.run([60], per_user=30, backends=["sqlite"], out_dir=None, **common)
    b = {**a, "config": {**a["config"], "backends": ["postgres"]},
         "points": [{**p, "backend": "postgres"} for p in a["points"]]}
    merged = bench_store.merge_reports([a, b])
    assert merged["config"]["backends"] == ["sqlite", "postgres"]
    assert [(p["backend"], sorted(p["search"])) for p in merged["points"]] == [
        ("sqlite", sorted(a["points"][0]["search"])), ("postgres", ["memsvc"])]
    assert len(merged["config"]["merged_runs"]) == 2
    assert "Merged from 2 runs" in bench_store.render_markdown(merged)
    with pytest.raises(ValueError, match="more than one report"):
        bench_store.merge_reports([a, a])
    other = {**b, "config": {**b["config"], "seed": 1}}
    with pytest.raises(ValueError, match="seed"):
        bench_store.merge_reports([a, other])
