"""The query-graph benchmark on the small LoCoMo file made for the tests."""

from __future__ import annotations

import json
from pathlib import Path

from memsvc.evals import query_graphs

DATA = Path(__file__).parent / "data"


def test_both_graphs_are_timed_and_compared_with_the_model(tmp_path: Path) -> None:
    query_graphs.main([str(DATA / "locomo_tiny.json"), "--tag", "t", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "query-graphs-t.json").read_text())["result"]
    fp32, int8 = result["graphs"]["fp32"], result["graphs"]["int8"]
    assert fp32["cosine_min"] > 0.9999  # the same arithmetic
    assert 0.998 < int8["cosine_min"] < 0.99999  # really quantized, still close
    for graph in (fp32, int8, result["graphs"]["torch (documents)"]):
        assert graph["document_cpu_ms"] > 0
    assert (tmp_path / "query-graphs-t.md").read_text().count("| int8 |") == 1
