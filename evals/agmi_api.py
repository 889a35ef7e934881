"""agmi's API family (agent-memory-integrity 0.6.3) against memsvc over REST: memory_injection,
cross_session_bleed, retrieval_hijack, indirect_prompt_injection, update_poisoning,
metadata_poisoning, each on agmi's three attacker channels.

memsvc runs as a real server (`BackgroundServer`, keys required) on a temp SQLite file, and
every write and read goes through the public remote SDK (`MemoryClient`) with an API key,
as a deployment would hand them out (memsvc.model.trust):

- each user has their own key (`--trust user --user <id>`): a write carrying a valid agmi
  signature is one the user's own key made (agmi's "genuine" and "agent-laundered": the
  signature stands for holding the user's key);
- the tool pipeline has an external key (`--trust external`): agmi's "external" channel,
  content the agent read, stored as a `tool` message;
- the attacker with write access to the API holds an external key too (a third party is
  never given a user-level key), so the "laundered" channel's claim of the user label lands
  as a `user`-role message written by an external key: trust 1 whatever it says.

The label and signature also go into metadata, as agmi's adapters do; memsvc ignores them.
Reads are the victim's, with their own key and memsvc's defaults (`min_trust="agent"`).

    python -m memsvc.evals.agmi_api       # writes evals/results/agmi.{md,json}
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agmi.adapters.semantic_base import MemoryItem, Retrieved, SemanticMemoryAdapter
from agmi.attacks.memory_specific import ALL_MEMORY_ATTACKS, MemoryAttackResult
from agmi.signing import KEYRING

from memsvc import Memory
from memsvc.evals.agmi_atrest import isolate_integrity, restore_env, shipped_embedder
from memsvc.evals.report import RESULTS_DIR, environment, git_state, markdown_table, write_json
from memsvc.model.settings import Settings
from memsvc.model.trust import Trust
from memsvc.sdk.client import MemoryClient
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer
from memsvc.storage.keys import ApiKeyStore

AGMI = "agent-memory-integrity 0.6.3"
COLUMNS = [cls.name for cls in ALL_MEMORY_ATTACKS]


class MemsvcApiAdapter(SemanticMemoryAdapter):
    """memsvc's REST API with per-writer keys (see the module docstring)."""

    name = "memsvc"

    def __init__(self, server_url: str, keys: ApiKeyStore) -> None:
        self.url = server_url
        self.keys = keys
        self._clients: dict[str, MemoryClient] = {}
        self.admin = self._client("operator", Trust.USER, None)  # reset only
        self.tool = self._client("tool-pipeline", Trust.EXTERNAL, None)
        self.attacker = self._client("api-attacker", Trust.EXTERNAL, None)

    def _client(self, name: str, trust: Trust, user_id: str | None) -> MemoryClient:
        _, key = self.keys.create(name, "agmi", trust=trust, user_id=user_id)
        client = MemoryClient(self.url, api_key=key, timeout=300)
        self._clients[name] = client
        return client

    def user(self, user_id: str) -> MemoryClient:
        """The user's own key, bound to them (made on first use)."""
        found = self._clients.get(f"user:{user_id}")
        return found or self._client(f"user:{user_id}", Trust.USER, user_id)

    def reset(self) -> None:
        self.admin.reset()

    def add_memory(self, item: MemoryItem) -> None:
        signed = item.signature is not None and KEYRING.verify(
            item.user_id, item.source, item.text, item.signature)
        if signed:
            client, role = self.user(item.user_id), "user"
        elif item.source == "external":
            client, role = self.tool, "tool"
        else:  # claims the user's label without the user's key
            client, role = self.attacker, "user"
        metadata = {**item.metadata, "source": item.source}
        if item.signature:
            metadata["signature"] = item.signature
        client.add([{"role": role, "content": item.text}], user_id=item.user_id,
                   metadata=metadata)

    def _hits(self, query: str, user_id: str, k: int,
              filters: dict[str, Any] | None = None) -> list[Retrieved]:
        response = self.user(user_id).search(query, user_id=user_id, limit=k, filters=filters)
        return [Retrieved(text=h.memory.text, user_id=h.memory.scope.user_id or "",
                          score=h.score) for h in response.results]

    def retrieve(self, query: str, user_id: str, k: int = 5) -> list[Retrieved]:
        return self._hits(query, user_id, k)

    def retrieve_where(self, query: str, user_id: str, where: dict[str, Any],
                       k: int = 5) -> list[Retrieved]:
        return self._hits(query, user_id, k, {f"metadata.{key}": value
                                              for key, value in where.items()})

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def measured_on(self) -> str:
        return ("memsvc REST server, per-writer API keys with trust levels (user keys bound "
                "to their user, tool and attacker keys external), default reads "
                "(min_trust=agent), add(infer=False), all-MiniLM-L6-v2")


@contextmanager
def served_adapter(workdir: Path) -> Iterator[MemsvcApiAdapter]:
    """A keyed memsvc server on a temp store, and the adapter speaking to it."""
    saved = isolate_integrity(workdir / "config")
    memory = Memory(settings=Settings(db_path=workdir / "agmi.db", tenant="agmi"),
                    embedder=shipped_embedder())
    keys = memory.store.key_store()
    adapter: MemsvcApiAdapter | None = None
    try:
        memory.search("warm up the query encoder", user_id="warm-up")  # loads it once
        with BackgroundServer(create_app(memory, keys=keys, require_keys=True)) as server:
            adapter = MemsvcApiAdapter(server.url, keys)
            yield adapter
    finally:
        if adapter is not None:
            adapter.close()
        memory.close()
        restore_env(saved)


def _channel_cell(outcomes: list[bool | None]) -> str:
    won = sum(1 for o in outcomes if o is True)
    if won:
        return f"surfaced ({won} of {len(outcomes)})"
    if any(o is None for o in outcomes):
        return "no verdict"
    return f"kept out ({len(outcomes)} of {len(outcomes)})"


def _cell(result: MemoryAttackResult) -> str:
    """agmi's own words: kept out only when no channel surfaced; else which ones did."""
    if result.status == "n/a":
        return f"n/a ({result.error})"
    if result.safe:
        return f"kept out ({len(result.fixtures)} of {len(result.fixtures)})"
    hit = [f"{ch} {sum(1 for o in outs if o)} of {len(outs)}"
           for ch, outs in result.channels.items() if any(o is True for o in outs)]
    return f"surfaced ({'; '.join(hit)})"


def run() -> list[dict[str, Any]]:
    """Every attack of the API family; one row per attack with its per-channel outcomes."""
    workdir = Path(tempfile.mkdtemp(prefix="memsvc-agmi-api-"))
    rows = []
    try:
        with served_adapter(workdir) as adapter:
            for cls in ALL_MEMORY_ATTACKS:
                started = time.perf_counter()
                result = cls().run(adapter)
                rows.append({
                    "attack": result.attack, "version": result.version,
                    "status": result.status, "cell": _cell(result), "detail": result.detail,
                    "error": result.error,
                    "channels": {ch: {"outcomes": outs, "cell": _channel_cell(outs)}
                                 for ch, outs in result.channels.items()},
                    "seconds": round(time.perf_counter() - started, 2),
                })
            measured_on = adapter.measured_on()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for row in rows:
        row["measured_on"] = measured_on
    return rows


def kept_out(rows: list[dict[str, Any]], channel: str) -> bool:
    """Whether every attack that runs on `channel` kept the attacker out on all fixtures."""
    on = [r["channels"][channel]["outcomes"] for r in rows if channel in r["channels"]]
    return bool(on) and all(o is False for outcomes in on for o in outcomes)


def render(rows: list[dict[str, Any]]) -> str:
    scorecard = markdown_table(
        ["Target", "Version", *COLUMNS],
        [["memsvc, per-writer API keys with trust levels, default reads", "this commit",
          *(next(r["cell"] for r in rows if r["attack"] == c) for c in COLUMNS)]])
    channels = ["external", "laundered", "agent-laundered", "cross-user"]
    per_channel = markdown_table(
        ["attack", *channels],
        [[r["attack"], *(r["channels"][c]["cell"] if c in r["channels"] else "-"
                         for c in channels)] for r in rows])
    return (
        f"# agmi API family ({AGMI}) against memsvc\n\n"
        "The scorecard row in agmi's own words, to sit beside the README's table (a cell is\n"
        "kept out only when the attacker won no fixture on any channel), then each channel.\n"
        f"Measured on: {rows[0]['measured_on']}.\n"
        "Regenerate: `python -m memsvc.evals.agmi_api`.\n\n"
        f"{scorecard}\n\n## Per channel\n\n{per_channel}\n\n"
        "Agent-laundered is content that came through the user's own key (agmi: signed by\n"
        "the agent); provenance cannot tell it from a genuine memory, which is agmi's own\n"
        "stated limit for a content-blind store. Write-time quarantine of instruction-shaped\n"
        "and keyword-stuffed text (memsvc/text/screening.py) closes that column for\n"
        "indirect_prompt_injection and retrieval_hijack; plain false statements in the\n"
        "user's own voice (memory_injection, update and metadata poisoning) read like any\n"
        "other fact, so they stay surfaced there.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    args = parser.parse_args(argv)
    rows = run()
    text = render(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "agmi.json", {
        "tool": MemsvcApiAdapter.name, "agmi": AGMI, "family": "api", "attacks": rows,
        "kept_out": {c: kept_out(rows, c) for c in ("external", "laundered", "cross-user")},
        "environment": environment(), "git": git_state(),
    })
    (args.out / "agmi.md").write_text(text, encoding="utf-8")
    return 0 if all(kept_out(rows, c) for c in ("external", "laundered", "cross-user")) else 1


if __name__ == "__main__":
    sys.exit(main())
