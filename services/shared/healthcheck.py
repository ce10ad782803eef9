"""A container health probe: `python -m services.shared.healthcheck <target>`.

The target is an HTTP URL (relay, web, tasks: `http://127.0.0.1:3000/readyz`) or a gRPC
address (accounts, billing: `127.0.0.1:50051`, asked through the standard health service).
Exit status 0 when healthy, 1 otherwise, with one line saying why: what Docker's HEALTHCHECK
and compose's `healthcheck.test` expect. Without an argument it reads VELOERA_HEALTHCHECK.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_TIMEOUT_SECONDS = 3.0
DEFAULT_TARGET = "http://127.0.0.1:3000/healthz"


def check_http(url: str) -> str | None:
    """None when the URL answers 2xx within the timeout, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS) as reply:
            status = int(reply.status)
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url} unreachable: {exc}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def check_grpc(address: str) -> str | None:
    """None when the server's overall health is SERVING within the timeout, else the reason."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            return f"{address}: {exc.code().name}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def check(target: str) -> str | None:
    if target.startswith(("http://", "https://")):
        return check_http(target)
    return check_grpc(target)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = args[0] if args else os.environ.get("VELOERA_HEALTHCHECK", DEFAULT_TARGET)
    problem = check(target)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
