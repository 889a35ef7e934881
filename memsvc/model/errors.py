"""Typed exceptions shared by every interface.

The SDK, the REST API and the MCP server all raise (or map back to) these, so a caller can
catch one family whatever the transport. Each carries a ``code`` that the HTTP layer turns
into a status and that the remote client turns back into the same class.
"""

from __future__ import annotations


class MemsvcError(Exception):
    """Base of every error memsvc raises on purpose."""

    code = "memsvc_error"
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInputError(MemsvcError, ValueError):
    """The caller sent something the store refuses; nothing was written."""

    code = "invalid_input"
    http_status = 422


class EmptyTextError(InvalidInputError):
    code = "empty_text"


class TextTooLargeError(InvalidInputError):
    code = "text_too_large"
    http_status = 413


class EncodingError(InvalidInputError):
    code = "invalid_encoding"


class InvalidTimestampError(InvalidInputError):
    code = "invalid_timestamp"


class InvalidFilterError(InvalidInputError):
    code = "invalid_filter"


class RoleNotAllowedError(InvalidInputError):
    """A stored message may not speak as the system (role `system`, or a speaker name that
    mimics a role): replayed into a prompt it would read as the deployment's own voice."""

    code = "role_not_allowed"


class ScopeRequiredError(InvalidInputError):
    """Every memory belongs to a user, an agent or a session; a call naming none is refused."""

    code = "scope_required"


class NotFoundError(MemsvcError, KeyError):
    code = "not_found"
    http_status = 404

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


class UnauthorizedError(MemsvcError):
    """A server call without a valid API key (the remote SDK raises it for HTTP 401)."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(MemsvcError):
    """A valid API key asked for something it may not do: a key bound to one user acting
    on another user's memories (the remote SDK raises it for HTTP 403)."""

    code = "forbidden"
    http_status = 403


class StoreError(MemsvcError):
    """The storage layer could not complete an operation (it was rolled back)."""

    code = "store_error"
    http_status = 503


class IntegrityError(MemsvcError):
    """A stored record (or a whole scope) failed its integrity check: its MAC, its place in
    the chain or the chain head kept outside the store. It is not served (fail closed)."""

    code = "integrity_error"
    http_status = 500


ERRORS_BY_CODE: dict[str, type[MemsvcError]] = {
    cls.code: cls
    for cls in (
        MemsvcError,
        InvalidInputError,
        EmptyTextError,
        TextTooLargeError,
        EncodingError,
        InvalidTimestampError,
        InvalidFilterError,
        RoleNotAllowedError,
        ScopeRequiredError,
        NotFoundError,
        UnauthorizedError,
        ForbiddenError,
        StoreError,
        IntegrityError,
    )
}
