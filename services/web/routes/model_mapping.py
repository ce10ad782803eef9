"""The global virtual-model mapping (option `global_model_mapping`, upstream
`middleware/distributor.go`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.web.api import ROLE_ADMIN, ROLE_ROOT, ApiError, Call, endpoint

OPTION_KEY = "global_model_mapping"


async def _current(call: Call) -> dict[str, Any]:
    reply = await call.deps.accounts.ListOptions(
        accounts_pb2.ListOptionsRequest(), timeout=call.deps.timeout
    )
    for option in reply.options:
        if option.key == OPTION_KEY:
            try:
                parsed = orjson.loads(option.value or "{}")
            except orjson.JSONDecodeError:
                break
            if isinstance(parsed, dict):
                return {"mapping": parsed.get("mapping") or {}}
    return {"mapping": {}}


@endpoint(ROLE_ADMIN)
async def get_mapping(call: Call) -> dict[str, Any]:
    return await _current(call)


@endpoint(ROLE_ROOT)
async def put_mapping(call: Call) -> dict[str, Any]:
    """Body: the whole config `{"mapping": {virtual: [{"model", "priorities"}]}}`."""
    body = await call.json()
    if "mapping" not in body:
        raise ApiError('the body must be {"mapping": {virtual model: [{model, priorities}]}}')
    await call.deps.accounts.UpdateOption(
        accounts_pb2.UpdateOptionRequest(
            actor_id=call.user_id, key=OPTION_KEY, value=orjson.dumps(body).decode()
        ),
        timeout=call.deps.timeout,
    )
    return await _current(call)


ROUTES = [
    Route("/api/model_mapping/", get_mapping, methods=["GET"]),
    Route("/api/model_mapping/", put_mapping, methods=["PUT"]),
    Route("/api/model_mapping/config", get_mapping, methods=["GET"]),
    Route("/api/model_mapping/config", put_mapping, methods=["PUT"]),
]
