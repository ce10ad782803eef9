"""Domain errors shared by every service; one interceptor turns them into gRPC status codes."""

from __future__ import annotations

import grpc

# Trailing-metadata key carrying the machine-readable error code across gRPC.
ERROR_CODE_KEY = "veloera-error-code"


class DomainError(Exception):
    """An expected failure with a message meant for the end user."""

    status: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class NotFound(DomainError):
    status = grpc.StatusCode.NOT_FOUND
    default_code = "not_found"


class AlreadyExists(DomainError):
    status = grpc.StatusCode.ALREADY_EXISTS
    default_code = "already_exists"


class InvalidArgument(DomainError):
    status = grpc.StatusCode.INVALID_ARGUMENT
    default_code = "invalid_argument"


class FailedPrecondition(DomainError):
    status = grpc.StatusCode.FAILED_PRECONDITION
    default_code = "failed_precondition"


class QuotaExhausted(DomainError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_code = "insufficient_user_quota"


class PermissionDenied(DomainError):
    status = grpc.StatusCode.PERMISSION_DENIED
    default_code = "permission_denied"


class Unauthenticated(DomainError):
    status = grpc.StatusCode.UNAUTHENTICATED
    default_code = "unauthenticated"


class Unavailable(DomainError):
    status = grpc.StatusCode.UNAVAILABLE
    default_code = "unavailable"


def error_code_of(error: grpc.aio.AioRpcError) -> str:
    """The domain error code a server attached to a failed call, or '' when none."""
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_CODE_KEY:
            return value if isinstance(value, str) else value.decode()
    return ""
