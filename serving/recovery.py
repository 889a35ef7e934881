"""Start-up recovery: extract what background adds acknowledged before the last shutdown.

A background add's episodes are stored marked "extraction pending" before its 202, and the
in-process job takes the mark off (memsvc.sdk.background). Jobs live in memory, so after a
crash (or a shutdown with jobs queued) the marks remain: at start-up the server looks for
them in every tenant it knows (the default one and every tenant an API key, revoked or not,
ever named) and queues one job per scope and chunk, under the same `JobRunner`. A tenant
the server cannot name is still covered by consolidation's retry step.

Only for the in-process runner (a SQLite store): with a durable queue (PostgreSQL) every
acknowledged background add has its job in the database already. One server process per
store file is assumed: a second process starting up would take over
the pending work of a live first one (an extraction run twice is reinforced, not repeated).
"""

from __future__ import annotations

import logging

from memsvc.model.records import AddResult
from memsvc.sdk.background import pending_extractions
from memsvc.serving.background_work import ADD, add_payload
from memsvc.serving.jobs import JobRunner
from memsvc.serving.tenancy import Tenancy

log = logging.getLogger("memsvc.serving")


def known_tenants(tenancy: Tenancy) -> list[str]:
    tenants = {tenancy.default_tenant}
    if tenancy.keys is not None:
        tenants |= {k.tenant for k in tenancy.keys.list(include_revoked=True)}
    return sorted(tenants)


def recover_pending(tenancy: Tenancy, jobs: JobRunner) -> int:
    """Queue the pending extractions of every known tenant; returns how many jobs."""
    queued = 0
    for tenant in known_tenants(tenancy):
        memory = tenancy.memory(tenant)
        for scope, ids in pending_extractions(memory):
            scope_ids = {"user_id": scope.user_id, "agent_id": scope.agent_id,
                         "session_id": scope.session_id}
            jobs.submit(tenant, memory, ADD,
                        add_payload(AddResult(message_ids=ids), scope_ids, extract=True))
            queued += 1
    if queued:
        log.warning("queued %d background extractions left pending by the last run", queued)
    return queued

