"""RELAY_ACCESS_LOG switches the relay's access log (on by default): operators chasing
throughput can keep the metrics and drop the per-request line."""

from __future__ import annotations

from services.relay.app import create_app
from services.relay.settings import load_settings
from services.shared.access_log import AccessLogMiddleware

ENV = {"NATS_URL": "nats://127.0.0.1:4222", "INTERNAL_TOKEN_RELAY": "r" * 32}


def middleware_of(environ: dict[str, str]) -> list[type]:
    app = create_app(load_settings(environ))
    return [m.cls for m in app.user_middleware]  # type: ignore[misc]


def test_the_access_log_is_on_by_default_and_can_be_switched_off() -> None:
    assert AccessLogMiddleware in middleware_of(ENV)
    assert AccessLogMiddleware not in middleware_of({**ENV, "RELAY_ACCESS_LOG": "false"})
