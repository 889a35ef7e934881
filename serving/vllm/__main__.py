"""``python -m memsvc.serving.vllm {install,prepare,start,stop,status}`` (``memsvc llm`` is
the friendlier front end)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from memsvc.llm.client import LLMUnavailableError
from memsvc.serving.vllm.config import VLLMConfig, VLLMError
from memsvc.serving.vllm.process import LocalVLLM


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m memsvc.serving.vllm {install,prepare,start,stop,status}``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m memsvc.serving.vllm",
                                     description="Manage memsvc's local vLLM server.")
    parser.add_argument("action", choices=["install", "prepare", "start", "stop", "status"])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--base-url", default=None, help="use an external server instead")
    args = parser.parse_args(argv)
    launcher = LocalVLLM(VLLMConfig.from_env(port=args.port, base_url=args.base_url))
    try:
        if args.action == "install":
            steps = launcher.install()
            print(json.dumps([asdict(s) for s in steps], indent=2) if steps
                  else "already installed")
        elif args.action == "prepare":
            print(launcher.prepare_model())
        elif args.action == "start":
            t0 = time.monotonic()
            st = launcher.start()
            print(json.dumps({**st.as_dict(), "seconds": round(time.monotonic() - t0, 1)},
                             indent=2))
        elif args.action == "stop":
            print("stopped" if launcher.stop() else "not running")
        else:
            st = launcher.status()
            print(json.dumps(st.as_dict(), indent=2))
            return 0 if st.healthy else 3
    except (VLLMError, LLMUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
