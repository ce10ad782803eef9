"""Prometheus exposition: an HTTP endpoint for processes that do not serve HTTP themselves."""

from __future__ import annotations

from prometheus_client import start_http_server


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on a background thread (gRPC services and the tasks worker)."""
    if port > 0:
        start_http_server(port, addr=host)
