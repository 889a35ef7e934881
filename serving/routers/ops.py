"""`/healthz` and `/metrics`: for load balancers and Prometheus (no API key)."""

from fastapi import APIRouter, Request
from starlette.responses import Response

import memsvc
from memsvc.serving.routers.deps import AppMetrics
from memsvc.serving.schemas import Health

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> Health:
    return Health(status="ok", version=memsvc.__version__,
                  auth="api_key" if request.app.state.tenancy.keys_required() else "none")


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus(metrics: AppMetrics) -> Response:
    return metrics.render()
