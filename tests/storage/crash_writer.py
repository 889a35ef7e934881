"""Child process of the crash test: writes as fast as it can and reports each acknowledged add.

It prints `ready` once the store is open, then one line `<memory ids>` after every `add` that
returned. Anything it printed was acknowledged; the parent kills it with SIGKILL at random.
"""

from __future__ import annotations

import sys

from memsvc import Memory
from memsvc.model.settings import Settings


def main(db_path: str, worker: str) -> None:
    memory = Memory(settings=Settings(db_path=db_path))  # the real embedder and store
    memory.embedder.embed_documents(["warm up"])
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        result = memory.add(
            [
                {"role": "user", "name": "Ann", "content": f"{worker} note {i}: I walked the dog"},
                {"role": "assistant", "content": f"{worker} reply {i}: good for you"},
            ],
            user_id=f"user-{i % 3}",
            session_id=worker,
        )
        ids = [c.id for c in result.results]
        if i % 4 == 0:
            memory.update(ids[0], f"{worker} note {i}: I walked the dog twice")
        if i % 5 == 0:
            memory.delete(ids[1], hard=i % 10 == 0)
            ids = ids[:1]
        print(" ".join(ids), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
