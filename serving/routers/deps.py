"""What every route needs: the caller's `Memory` and tenant, and the app's shared services.

The services live on `app.state` (set by `create_app`), so the routers are plain module-level
`APIRouter`s rather than closures over one app.
"""

import json
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from memsvc.model.errors import InvalidFilterError
from memsvc.sdk.memory import Memory
from memsvc.serving.chat import ChatService
from memsvc.serving.jobs import BackgroundJobs
from memsvc.serving.metrics import Metrics
from memsvc.serving.schemas import ErrorResponse

_ERR = {"model": ErrorResponse}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _ERR, 401: _ERR, 403: _ERR, 413: _ERR, 415: _ERR, 422: _ERR, 503: _ERR
}
ID_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: _ERR}

_bearer = HTTPBearer(auto_error=False, description="An API key from `memsvc keys create`.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def caller(
    request: Request,
    _b: Annotated[Any, Security(_bearer)] = None,
    _k: Annotated[Any, Security(_api_key)] = None,
) -> Memory:
    memory: Memory = request.app.state.tenancy.memory_for(request.headers)
    return memory


def caller_tenant(
    request: Request,
    _b: Annotated[Any, Security(_bearer)] = None,
    _k: Annotated[Any, Security(_api_key)] = None,
) -> str:
    tenant: str = request.app.state.tenancy.tenant_for(request.headers)
    return tenant


def metrics(request: Request) -> Metrics:
    found: Metrics = request.app.state.metrics
    return found


def jobs(request: Request) -> BackgroundJobs:
    found: BackgroundJobs = request.app.state.jobs
    return found


def chat_service(request: Request) -> ChatService:
    found: ChatService = request.app.state.chat
    return found


Caller = Annotated[Memory, Depends(caller)]
Tenant = Annotated[str, Depends(caller_tenant)]
AppMetrics = Annotated[Metrics, Depends(metrics)]
AppJobs = Annotated[BackgroundJobs, Depends(jobs)]
AppChat = Annotated[ChatService, Depends(chat_service)]


def json_param(raw: str | None, field: str) -> Any:
    """A query parameter holding JSON (`filters`), refused as the SDK refuses bad filters."""
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFilterError(f"{field} is not valid JSON: {exc.msg}", field=field) from exc
    except (ValueError, RecursionError) as exc:  # an int of 4300+ digits; nesting too deep
        raise InvalidFilterError(f"{field} is not JSON this server reads: "
                                 f"{type(exc).__name__}", field=field) from exc
