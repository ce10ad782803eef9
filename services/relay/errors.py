"""Client-facing errors in OpenAI's shape, always carrying the request id."""

from __future__ import annotations

import orjson
from starlette.responses import Response

REQUEST_ID_HEADER = "X-Veloera-Request-Id"


class RelayError(Exception):
    """An error answered to the client; `message` gets the request-id suffix when rendered."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "veloera_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param


def error_body(
    message: str, *, type_: str, code: str | None, param: str | None, request_id: str
) -> bytes:
    suffix = f" (request id: {request_id})" if request_id else ""
    return orjson.dumps(
        {"error": {"message": message + suffix, "type": type_, "param": param, "code": code}}
    )


def error_response(error: RelayError, request_id: str) -> Response:
    body = error_body(
        error.message, type_=error.type, code=error.code, param=error.param, request_id=request_id
    )
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return Response(body, status_code=error.status, headers=headers, media_type="application/json")
