"""The REST routes, one router per area (memories, read, manage, ops); `create_app` in
serving/app.py includes them. Each route is a thin call of the `Memory` method it names, at
the path and with the parameters memsvc/sdk/operations.py declares for it.
"""

# What REST has beyond the SDK's operations; tests/memsvc/test_sdk_spec.py checks every
# other `/v1/` route and parameter against the spec.
REST_ONLY_ROUTES = frozenset({
    ("GET", "/v1/jobs/{job_id}"),  # progress of a background add or consolidation
    ("GET", "/v1/memories/{memory_id}/graph"),  # the explorer's entity graph
    ("DELETE", "/v1/users/{user_id}"),  # delete_all(user_id=..., hard=True), by path
})
REST_ONLY_PARAMS: dict[str, frozenset[str]] = {
    "add": frozenset({"background"}),  # answer 202 once the messages are stored
    "consolidate": frozenset({"background"}),  # answer 202; a worker runs it (PostgreSQL)
}
