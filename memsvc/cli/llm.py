"""`memsvc llm start|stop|status`: the local vLLM server that `/v1/chat` talks to.

A thin shell over ``memsvc.serving.vllm.LocalVLLM`` (the same calls in Python:
``LocalVLLM(VLLMConfig.from_env()).start()``). ``start`` installs vLLM into its own venv and
prepares the model on first use, then waits for health; with ``MEMSVC_LLM_BASE_URL`` (or
``--base-url``) an external OpenAI-compatible server is used instead and only probed.
Serving imports load only when a command runs, so ``memsvc --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console

llm_app = typer.Typer(help="The local vLLM server (OpenAI-compatible) used by /v1/chat.",
                      no_args_is_help=True)
_err = Console(stderr=True)

PortOption = Annotated[int | None, typer.Option(
    "--port", help="Port on 127.0.0.1 (default: $MEMSVC_VLLM_PORT or 8765)", min=1,
    max=65535)]
UrlOption = Annotated[str | None, typer.Option(
    "--base-url", help="Use this OpenAI-compatible server instead (default: "
                       "$MEMSVC_LLM_BASE_URL); nothing is started or stopped")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the status as JSON")]


def _launcher(port: int | None, base_url: str | None) -> Any:
    from memsvc.serving.vllm import LocalVLLM, VLLMConfig

    return LocalVLLM(VLLMConfig.from_env(port=port, base_url=base_url))


def _errors() -> tuple[type[BaseException], ...]:
    from memsvc.llm.client import LLMUnavailableError
    from memsvc.serving.vllm import VLLMError

    return (VLLMError, LLMUnavailableError)


def _print_status(status: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    data = {**status.as_dict(), **(extra or {})}
    if as_json:
        print(json.dumps(data, indent=2))
        return
    state = "ready" if status.healthy else ("starting" if status.running else "not running")
    where = f"{status.mode} server {status.base_url}"
    pid = f", pid {status.pid}" if status.pid else ""
    model = f", model {status.model}" if status.model else ""
    print(f"{state}: {where}{pid}{model}" + (f" ({status.detail})" if status.detail else ""))
    if extra:
        print(", ".join(f"{k} {v}" for k, v in extra.items()))


def _on_other_port(launcher: Any, port: int | None) -> bool:
    """True when the caller named a port and memsvc's server runs on another one."""
    if port is None or launcher.external:
        return False
    recorded = launcher.recorded_port()
    return recorded is not None and recorded != port


@llm_app.command("start")
def start(port: PortOption = None, base_url: UrlOption = None, as_json: JsonOption = False
          ) -> None:
    """Start the local vLLM server (install and prepare the model on first use) and wait
    until it answers. Idempotent: a running server is left as it is."""
    launcher = _launcher(port, base_url)
    t0 = time.monotonic()
    try:
        status = launcher.start()
    except _errors() as exc:
        _err.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from exc
    _print_status(status, as_json, {"seconds": round(time.monotonic() - t0, 1)})


@llm_app.command("stop")
def stop(port: PortOption = None, base_url: UrlOption = None) -> None:
    """Stop the local server (SIGTERM to its process group, SIGKILL after a timeout)."""
    launcher = _launcher(port, base_url)
    if launcher.external:
        print(f"external server {launcher.base_url}: nothing to stop")
        return
    if _on_other_port(launcher, port):
        print(f"not running on port {port} (memsvc's vLLM runs on port "
              f"{launcher.recorded_port()}): nothing stopped")
        return
    print("stopped" if launcher.stop() else "not running")


@llm_app.command("status")
def status(port: PortOption = None, base_url: UrlOption = None, as_json: JsonOption = False
           ) -> None:
    """Probe the server; exit code 0 when it is ready, 3 when it is not."""
    launcher = _launcher(port, base_url)
    if _on_other_port(launcher, port):
        _err.print(f"not running on port {port} (memsvc's vLLM runs on port "
                   f"{launcher.recorded_port()})")
        raise typer.Exit(3)
    st = launcher.status()
    _print_status(st, as_json)
    if not st.healthy:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add `llm` to the main `memsvc` command."""
    app.add_typer(llm_app, name="llm")
