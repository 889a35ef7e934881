"""A recorded OpenAI-compatible server: a real HTTP server on 127.0.0.1 replaying replies.

The replies are chat-completion bodies in the OpenAI wire format, kept as JSON files under
`recordings/` (hand-written in that format: no model can be run in CI). Each POST to
`/v1/chat/completions` gets the next reply in order; a reply may instead be an HTTP status.
`GET /v1/models` lists one model, "recorded", for clients that discover it.
Requests are kept so tests can check what the extractor sent (schema, batching, retry).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).parent / "recordings"


def completion(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    """A chat-completion body as an OpenAI-compatible server sends it."""
    return {
        "id": "chatcmpl-recorded",
        "object": "chat.completion",
        "model": "recorded",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def recording(name: str) -> list[dict[str, Any] | int]:
    return json.loads((RECORDINGS / name).read_text())


class FakeOpenAI:
    def __init__(self, replies: Sequence[dict[str, Any] | int]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # model discovery: one model, "recorded"
                known = self.path.rstrip("/") in ("/v1/models", "/health")
                data = json.dumps({"object": "list", "data": [{"id": "recorded"}]}).encode()
                self.send_response(200 if known else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append(json.loads(body))
                reply = fake.replies.pop(0) if fake.replies else 500
                if isinstance(reply, int):
                    self.send_response(reply)
                    self.end_headers()
                    self.wfile.write(b'{"error": "recorded failure"}')
                    return
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[FakeOpenAI]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
