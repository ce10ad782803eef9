"""The Grafana dashboard and the Prometheus alert rules: valid PromQL (promtool), alerts that
fire on the series the services export (promtool test rules), and no query naming a metric no
service exports (a renamed metric would silently blank a panel or mute an alert)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

# Every module that defines collectors, so the default registry holds them all.
import services.accounts.metrics
import services.billing.metrics
import services.relay.metrics
import services.shared.grpcutil
import services.shared.metrics
import services.tasks.metrics
import services.web.metrics  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "veloera-alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "veloera-alerts.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "veloera.json"
INSTALL_TIMEOUT = 600.0
METRIC = re.compile(r"\bveloera_[a-z0-9_]+")


def ensure_promtool() -> str:
    """promtool from Debian's prometheus package, installed with apt-get when missing and this
    process is root (as tests/browser does for chromium)."""
    found = shutil.which("promtool")
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("these tests need promtool: run `apt-get install -y prometheus`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
    ):
        subprocess.run(command, check=True, env=env, timeout=INSTALL_TIMEOUT, capture_output=True)
    found = shutil.which("promtool")
    assert found is not None
    return found


def promtool(*args: str, cwd: Path = ROOT) -> None:
    done = subprocess.run(
        [ensure_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def exported_metrics() -> set[str]:
    """Sample names the services' collectors produce (histograms with _bucket/_sum/_count)."""
    names: set[str] = set()
    for collector in REGISTRY.collect():
        names.add(collector.name)
        names.update(sample.name for sample in collector.samples)
        if collector.type == "counter":
            names.add(collector.name + "_total")
        if collector.type == "histogram":
            names.update(collector.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def rule_expressions() -> list[str]:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_alert_rules_pass_promtool() -> None:
    promtool("check", "rules", str(RULES))


def test_alerts_fire_on_the_series_the_services_export() -> None:
    promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool has no query checker: each panel query becomes a recording rule to parse."""
    queries = [expr.replace("$__rate_interval", "5m") for expr in dashboard_expressions()]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"veloera_dashboard:query_{index}", "expr": expr}
                    for index, expr in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    promtool("check", "rules", str(path))


def test_every_queried_metric_is_exported() -> None:
    exported = exported_metrics()
    queried = {
        name
        for expr in rule_expressions() + dashboard_expressions()
        for name in METRIC.findall(expr)
    }
    assert queried, "no metric found in the queries"
    assert queried - exported == set()


def test_dashboard_covers_what_operators_watch() -> None:
    queried = " ".join(dashboard_expressions())
    for metric in (
        "veloera_relay_requests_total",  # request rate and errors
        "veloera_relay_upstream_seconds_bucket",  # latency percentiles
        "veloera_relay_tokens_total",  # tokens
        "veloera_billing_quota_charged_total",  # quota
        "veloera_relay_channels",  # channel health
        "veloera_jetstream_message_age_seconds_bucket",  # settlement lag
        "veloera_billing_leases_total",  # lease usage
        "veloera_jetstream_consumer_pending",  # consumer lag
        "veloera_db_pool_connections",  # DB pool
    ):
        assert metric in queried, metric
