"""The LLM client's error contract and the launcher's lifecycle, without vLLM.

Faults are produced by httpx.MockTransport (5xx, malformed bodies, timeouts) and by a
stand-in "server" process the launcher starts exactly as it starts vLLM.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from memsvc.llm.client import (
    AsyncLLMClient,
    LLMBadRequestError,
    LLMClient,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
    normalize_base_url,
)
from memsvc.model.settings import Settings
from memsvc.serving.vllm import (
    INSTALL_MARKER,
    MODEL_MARKER,
    VLLM_VERSION,
    LocalVLLM,
    VLLMConfig,
    VLLMStartError,
)

MSG = [{"role": "user", "content": "hi"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _completion(content: str = "hello", cached: int | None = 3) -> dict:
    usage: dict[str, Any] = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"model": "m", "choices": [{"message": {"role": "assistant", "content": content},
                                       "finish_reason": "stop"}], "usage": usage}


def _client(handler, **kw) -> LLMClient:
    return LLMClient("http://llm.test/v1", model="m", transport=httpx.MockTransport(handler), **kw)


# ----------------------------------------------------------------------------- client


def test_normalize_base_url() -> None:
    assert normalize_base_url("http://h:1/v1/") == "http://h:1"
    assert normalize_base_url("https://h") == "https://h"
    with pytest.raises(ValueError):
        normalize_base_url("h:1")


def test_chat_parses_content_and_cached_tokens() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, json=_completion())

    r = _client(handler, cache_salt="s1").chat(MSG, max_tokens=5)
    assert r.content == "hello" and r.usage is not None and r.usage.cached_tokens == 3
    assert seen["cache_salt"] == "s1" and seen["max_tokens"] == 5 and "stream" not in seen


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_are_unavailable(status: int) -> None:
    c = _client(lambda r: httpx.Response(status, json={"error": {"message": "overloaded"}}))
    with pytest.raises(LLMUnavailableError, match="overloaded") as exc:
        c.chat(MSG)
    assert exc.value.status_code == status


def test_client_errors_are_bad_request() -> None:
    c = _client(lambda r: httpx.Response(400, json={"error": {"message": "too long"}}))
    with pytest.raises(LLMBadRequestError, match="too long"):
        c.chat(MSG)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"choices": []}',
                                  b'{"choices": [{"message": {"content": 5}}]}'])
def test_malformed_bodies_are_response_errors(body: bytes) -> None:
    c = _client(lambda r: httpx.Response(200, content=body))
    with pytest.raises(LLMResponseError):
        c.chat(MSG)


def test_slow_server_is_a_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(LLMTimeoutError, match="did not answer"):
        _client(handler, timeout_s=0.1).chat(MSG)
    assert issubclass(LLMTimeoutError, LLMUnavailableError)


def test_down_server_is_unavailable() -> None:
    port = _free_port()
    with LLMClient(f"http://127.0.0.1:{port}", model="m", connect_timeout_s=1) as c:
        assert c.health() is False
        with pytest.raises(LLMUnavailableError, match="unreachable"):
            c.chat(MSG)
        with pytest.raises(LLMUnavailableError):
            list(c.stream_chat(MSG))


def test_streaming_sse() -> None:
    events = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2,
                                  "total_tokens": 9,
                                  "prompt_tokens_details": {"cached_tokens": 0}}},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + ": comment\n\ndata: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        assert payload["stream"] is True and payload["stream_options"]["include_usage"]
        return httpx.Response(200, content=body.encode(),
                              headers={"content-type": "text/event-stream"})

    chunks = list(_client(handler).stream_chat(MSG))
    assert "".join(c.delta for c in chunks) == "Hello"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 7
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]


def test_stream_error_mid_way_and_garbage() -> None:
    def err(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'data: {"error": {"message": "engine died"}}\n\n')

    with pytest.raises(LLMUnavailableError, match="engine died"):
        list(_client(err).stream_chat(MSG))

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"data: {not json\n\n")

    with pytest.raises(LLMResponseError):
        list(_client(garbage).stream_chat(MSG))

    def http_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"message": "starting"}})

    with pytest.raises(LLMUnavailableError, match="starting"):
        list(_client(http_error).stream_chat(MSG))


def test_chat_json_validates_and_rejects() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}},
              "required": ["age"], "additionalProperties": False}
    sent = {}

    def ok(request: httpx.Request) -> httpx.Response:
        sent.update(json.loads(request.content))
        return httpx.Response(200, json=_completion('{"age": 31}'))

    value, _ = _client(ok).chat_json(MSG, schema, name="p")
    assert value == {"age": 31}
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["strict"] is True

    for content in ['{"age": "x"}', "not json", '{"age": 1']:
        c = _client(lambda r, content=content: httpx.Response(200, json=_completion(content)))
        with pytest.raises(LLMResponseError):
            c.chat_json(MSG, schema)

    def cut(request: httpx.Request) -> httpx.Response:
        body = _completion('{"age": 3')
        body["choices"][0]["finish_reason"] = "length"
        return httpx.Response(200, json=body)

    with pytest.raises(LLMResponseError, match="cut off"):
        _client(cut).chat_json(MSG, schema)


async def test_async_client_errors_and_chat() -> None:
    async with AsyncLLMClient("http://llm.test", model="m", transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json=_completion("yo")))) as c:
        assert (await c.chat(MSG)).content == "yo"
    async with AsyncLLMClient(f"http://127.0.0.1:{_free_port()}", model="m") as c:
        assert await c.health() is False
        with pytest.raises(LLMUnavailableError):
            await c.chat(MSG)
        with pytest.raises(LLMUnavailableError):
            async for _ in c.stream_chat(MSG):
                pass


# ----------------------------------------------------------------------------- launcher


def test_launcher_config_comes_from_the_settings(tmp_path: Path, monkeypatch) -> None:
    settings = Settings.from_env({"MEMSVC_CACHE_DIR": str(tmp_path), "MEMSVC_VLLM_PORT": "9123",
                                  "MEMSVC_VLLM_DEVICE": "cpu",
                                  "MEMSVC_VLLM_VENV": str(tmp_path / "v")})
    cfg = VLLMConfig.from_settings(settings, port=None)
    assert (cfg.cache_dir, cfg.port, cfg.device) == (tmp_path, 9123, "cpu")
    assert cfg.venv_dir == tmp_path / "v"
    assert cfg.model_dir == tmp_path / "models" / "SmolLM2-135M-Instruct"
    launcher = LocalVLLM(cfg)
    assert launcher.base_url == "http://127.0.0.1:9123" and not launcher.external
    assert VLLMConfig.from_settings(settings, port=9200).port == 9200  # --port wins
    assert LocalVLLM(VLLMConfig.from_settings(Settings(llm_base_url="http://x:1/v1"))).external
    monkeypatch.setenv("MEMSVC_VLLM_PORT", "9124")
    monkeypatch.setenv("MEMSVC_CACHE_DIR", str(tmp_path / "c"))
    from_env = VLLMConfig.from_env()
    assert (from_env.port, from_env.cache_dir) == (9124, tmp_path / "c")


def test_launcher_external_down_server_gives_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    launcher = LocalVLLM(VLLMConfig(cache_dir=tmp_path, base_url=url))
    st = launcher.status()
    assert st.mode == "external" and not st.healthy and not st.running
    with pytest.raises(LLMUnavailableError, match="not answering"):
        launcher.start()
    assert launcher.stop() is False
    assert launcher.install() == []  # nothing to install for an external server
    assert not (tmp_path / "vllm-venv").exists()


def test_launcher_local_not_started(tmp_path: Path) -> None:
    launcher = LocalVLLM(VLLMConfig(cache_dir=tmp_path, port=_free_port(), device="cpu"))
    st = launcher.status()
    assert not st.running and not st.healthy and st.detail == "not started"
    assert launcher.stop() is False
    with launcher.client(connect_timeout_s=1) as c, pytest.raises(LLMUnavailableError):
        c.chat(MSG)


FAKE_SERVER = textwrap.dedent('''
    import http.server, signal, sys
    args = sys.argv[1:]
    if "--fail" in args:
        print("boom: unknown flag --fail", file=sys.stderr)
        sys.exit(2)
    if "--ignore-sigterm" in args:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    port = int(args[args.index("--port") + 1])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path in ("/health", "/v1/models") else 404)
            self.end_headers()
            self.wfile.write(b'{"data": [{"id": "fake"}]}')
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
''')


def _fake_launcher(tmp_path: Path, *extra: str) -> LocalVLLM:
    """A launcher whose venv 'python' is a tiny HTTP server with /health: start, status and
    stop run their real code paths (pid file, process group, signals, health polling)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    (venv / INSTALL_MARKER).write_text(json.dumps({"vllm": VLLM_VERSION, "device": "cpu"}))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / MODEL_MARKER).write_text("{}")
    return LocalVLLM(VLLMConfig(cache_dir=tmp_path / "cache", venv_dir=venv, model_dir=model,
                                port=_free_port(), device="cpu", startup_timeout_s=30,
                                stop_timeout_s=1.5, extra_args=extra))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat_file = Path(f"/proc/{pid}/stat")
    return stat_file.exists() and stat_file.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_launcher_lifecycle_with_a_stand_in_server(tmp_path: Path) -> None:
    launcher = _fake_launcher(tmp_path)
    assert launcher.is_installed() and launcher.is_model_prepared()
    st = launcher.start()
    assert st.running and st.healthy and st.pid
    state = json.loads(launcher.pid_file.read_text())
    assert state["port"] == launcher.config.port and "--enable-prefix-caching" in state["cmd"]
    # idempotent: same process, and a second launcher (another CLI call) sees it too
    assert launcher.start().pid == st.pid
    other = LocalVLLM(launcher.config)
    assert other.status().pid == st.pid
    assert other.stop() is True
    assert _gone(st.pid)
    assert not launcher.pid_file.exists()
    assert launcher.stop() is False
    assert not launcher.status().running


def test_launcher_escalates_to_sigkill(tmp_path: Path) -> None:
    launcher = _fake_launcher(tmp_path, "--ignore-sigterm")
    st = launcher.start()
    t0 = time.monotonic()
    assert launcher.stop() is True
    assert _gone(st.pid)
    assert time.monotonic() - t0 < 15


def test_launcher_start_failure_reports_the_log(tmp_path: Path) -> None:
    launcher = _fake_launcher(tmp_path, "--fail")
    t0 = time.monotonic()
    with pytest.raises(VLLMStartError, match="boom: unknown flag"):
        launcher.start()
    assert time.monotonic() - t0 < 20  # fails fast, not after the start-up timeout
    assert not launcher.pid_file.exists()


def test_launcher_refuses_a_port_taken_by_someone_else(tmp_path: Path) -> None:
    launcher = _fake_launcher(tmp_path)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", launcher.config.port))
        s.listen(1)
        with pytest.raises(VLLMStartError, match="already in use"):
            launcher.start()


def test_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    launcher = _fake_launcher(tmp_path)
    launcher.state_dir.mkdir(parents=True, exist_ok=True)
    # pid 1 exists but is not a vLLM server: must not be reported or signalled
    launcher.pid_file.write_text(json.dumps({"pid": 1, "pgid": 1, "port": 1}))
    st = launcher.status()
    assert not st.running and "stale" in st.detail
    st = launcher.start()
    assert st.healthy and st.pid != 1
    assert launcher.stop() is True


def test_launcher_refuses_a_second_port_for_the_same_cache(tmp_path: Path) -> None:
    launcher = _fake_launcher(tmp_path)
    launcher.start()
    try:
        other = LocalVLLM(VLLMConfig(**{**launcher.config.__dict__, "port": _free_port()}))
        with pytest.raises(VLLMStartError, match="already runs on port"):
            other.start()
    finally:
        assert launcher.stop() is True
