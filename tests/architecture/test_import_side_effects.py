"""`import memsvc` is cheap and changes nothing in the host process.

Run in a fresh interpreter, since this test process has long imported everything. Measured
as which modules get loaded, not as time: a module set is exact, a timing is noise.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, os, sys
before = dict(os.environ)
import {module}
loaded = sorted(sys.modules)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps({{"loaded": loaded, "changed": changed}}))
"""
HEAVY = ("sqlalchemy", "torch", "sentence_transformers", "fastapi", "numpy", "httpx")


def _probe(module: str) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout)


def test_import_memsvc_loads_nothing_heavy_and_leaves_the_environment_alone() -> None:
    result = _probe("memsvc")
    heavy = [m for m in result["loaded"] if m.split(".")[0] in HEAVY]
    assert heavy == []
    assert [m for m in result["loaded"] if m.startswith("memsvc.")] == []
    assert result["changed"] == []


def test_a_ground_floor_tool_does_not_pull_in_the_store() -> None:
    result = _probe("memsvc.text.timeparse")
    assert "sqlalchemy" not in result["loaded"]
    assert not any(m.startswith(("memsvc.storage", "memsvc.sdk")) for m in result["loaded"])


def test_public_names_resolve_lazily() -> None:
    import memsvc

    for name in memsvc.__all__:
        assert getattr(memsvc, name) is not None
    assert memsvc.Memory.__module__ == "memsvc.sdk.memory"


def test_loading_the_embedder_leaves_the_environment_alone() -> None:
    probe = """
import json, os
before = dict(os.environ)
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import default_embedder_path
embedder = SentenceTransformerEmbedder(default_embedder_path())
width_before_load = embedder.dim
vector = embedder.embed_query("where does alice live?")
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps({"changed": changed, "dim": width_before_load, "len": len(vector)}))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # torch itself sets a few KMP_*/TORCHINDUCTOR_* variables when imported; ours are put back
    assert not {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "GOMP_SPINCOUNT"} & set(result["changed"])
    assert (result["dim"], result["len"]) == (384, 384)
