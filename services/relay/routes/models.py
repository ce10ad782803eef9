"""GET /v1/models and /v1/models/{model}: the models the key's group can use."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.relay.auth import AuthEntry
from services.relay.client import authorise, count, read_key
from services.relay.errors import REQUEST_ID_HEADER, RelayError, error_response
from services.relay.ids import new_request_id
from services.relay.state import RelayContext

MODEL_CREATED = 1626777600  # the fixed timestamp Veloera reports


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "veloera"}


class ModelsRoute:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    def visible_models(self, entry: AuthEntry) -> list[str]:
        table = self.ctx.snapshot.table
        if table is None:
            return []
        names = list(table.models_for(entry.group))
        served = set(names)
        # Virtual names of the global mapping whose models this group can use.
        names += sorted(
            virtual
            for virtual, targets in table.options.global_mapping.items()
            if virtual not in served and any(t in served for t in targets)
        )
        if entry.model_limits is None:
            return names
        return [name for name in names if name in entry.model_limits]

    async def list(self, request: Request) -> Response:
        request_id = new_request_id()
        try:
            entry = await authorise(self.ctx, request, read_key(request), None)
            body = {"object": "list", "data": [model_object(m) for m in self.visible_models(entry)]}
            response = self._json(body, request_id)
        except RelayError as err:
            response = error_response(err, request_id)
        count("models", response.status_code)
        return response

    async def retrieve(self, request: Request) -> Response:
        request_id = new_request_id()
        model = request.path_params["model"]
        try:
            entry = await authorise(self.ctx, request, read_key(request), None)
            if model not in self.visible_models(entry):
                raise RelayError(
                    404,
                    f"The model '{model}' does not exist",
                    type_="invalid_request_error",
                    code="model_not_found",
                    param="model",
                )
            response = self._json(model_object(model), request_id)
        except RelayError as err:
            response = error_response(err, request_id)
        count("models", response.status_code)
        return response

    @staticmethod
    def _json(body: dict[str, Any], request_id: str) -> Response:
        return Response(
            orjson.dumps(body),
            headers={REQUEST_ID_HEADER: request_id},
            media_type="application/json",
        )
