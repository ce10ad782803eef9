"""deploy/k8s: every overlay builds with `kubectl kustomize` and validates offline against the
Kubernetes 1.32 schemas (kubernetes-validate, strict: unknown fields fail), and the manifests
keep the promises README's "Deploy" and "Security model" make."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SERVICES = ("accounts", "billing", "tasks", "relay", "web")
KUBERNETES_VERSION = "1.32"

Manifest = dict[str, Any]


def build(overlay: str) -> list[Manifest]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize overlays cannot be built")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_spec(deployment: Manifest) -> Manifest:
    spec: Manifest = deployment["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_validates_against_the_schemas(overlay: str) -> None:
    docs = build(overlay)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    namespaces = {doc["metadata"].get("namespace") for doc in docs}
    assert namespaces == {"veloera-dev" if overlay == "dev" else "veloera"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_is_probed_hardened_and_drains(overlay: str) -> None:
    deployments = by_kind(build(overlay), "Deployment")
    assert set(deployments) == {f"veloera-{name}" for name in SERVICES}
    for name in SERVICES:
        spec = pod_spec(deployments[f"veloera-{name}"])
        (container,) = spec["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, (name, probe)
        if name in ("accounts", "billing"):
            assert "grpc" in container["readinessProbe"]
        else:
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["topologySpreadConstraints"]
        assert spec["serviceAccountName"] == f"veloera-{name}"
    relay = pod_spec(deployments["veloera-relay"])
    config = by_kind(build(overlay), "ConfigMap")["veloera-config"]
    # The relay's own drain (RELAY_SHUTDOWN_GRACE_SECONDS) fits inside the pod's grace period.
    drain = float(config["data"]["RELAY_SHUTDOWN_GRACE_SECONDS"])
    assert relay["terminationGracePeriodSeconds"] >= drain + 10


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_gets_only_its_own_secrets(overlay: str) -> None:
    deployments = by_kind(build(overlay), "Deployment")
    callers = {"INTERNAL_TOKEN_RELAY", "INTERNAL_TOKEN_WEB", "INTERNAL_TOKEN_TASKS"}
    wanted = {
        "relay": {"INTERNAL_TOKEN_RELAY", "NATS_PASSWORD_RELAY", "RELAY_METRICS_TOKEN"},
        "web": {"INTERNAL_TOKEN_WEB", "SESSION_SECRET", "NATS_PASSWORD_WEB"},
        "accounts": {"DATABASE_URL", "CRYPTO_SECRET", "NATS_PASSWORD_ACCOUNTS", *callers},
        "billing": {"DATABASE_URL", "CRYPTO_SECRET", "NATS_PASSWORD_BILLING", *callers},
        "tasks": {"DATABASE_URL", "NATS_PASSWORD_TASKS", "INTERNAL_TOKEN_TASKS"},
    }
    for name, keys in wanted.items():
        (container,) = pod_spec(deployments[f"veloera-{name}"])["containers"]
        given = {
            item["valueFrom"]["secretKeyRef"]["key"]
            for item in container.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        }
        assert given - {"INTERNAL_TOKEN_ADMIN"} == keys, name


def test_only_relay_and_web_are_reachable_from_outside() -> None:
    docs = build("prod")
    services = by_kind(docs, "Service")
    assert {svc["spec"]["type"] for svc in services.values()} == {"ClusterIP"}
    (ingress,) = by_kind(docs, "Ingress").values()
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"relay", "web"}
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["veloera-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    open_to_all = {
        policy["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for policy in policies.values()
        for rule in policy["spec"].get("ingress", [])
        if "from" not in rule
    }
    assert open_to_all == {"relay", "web"}
    for name in ("accounts", "billing"):
        (rule,) = policies[f"veloera-{name}-internal"]["spec"]["ingress"]
        (peer,) = rule["from"]
        allowed = next(
            expr["values"]
            for expr in peer["podSelector"]["matchExpressions"]
            if expr["key"] == "app.kubernetes.io/component"
        )
        assert sorted(allowed) == ["relay", "tasks", "web"]


def test_prod_autoscales_the_edges_and_budgets_disruptions() -> None:
    docs = build("prod")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas.values()} == {
        "veloera-relay",
        "veloera-web",
    }
    deployments = by_kind(docs, "Deployment")
    for name in ("relay", "web"):  # the autoscaler owns their replica counts
        assert "replicas" not in deployments[f"veloera-{name}"]["spec"]
    budgets = by_kind(docs, "PodDisruptionBudget")
    assert set(budgets) == {f"veloera-{name}" for name in SERVICES}
    assert "Secret" not in {doc["kind"] for doc in docs}  # the operator provides it
    jobs = by_kind(docs, "Job")
    assert jobs["veloera-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "services.cli",
        "migrate",
    ]


def test_dev_runs_postgresql_and_nats_in_the_cluster_with_the_shipped_nats_config() -> None:
    docs = build("dev")
    sets = by_kind(docs, "StatefulSet")
    assert set(sets) == {"nats", "postgres"}
    shipped = (ROOT / "deploy" / "nats" / "nats.conf").read_text()
    copy = K8S / "components" / "in-cluster-data" / "nats.conf"
    assert copy.read_text() == shipped  # kustomize cannot read above its folder: keep in step
    (config,) = (doc for doc in docs if doc["metadata"]["name"].startswith("nats-config"))
    assert config["data"]["nats.conf"] == shipped
    (secret,) = by_kind(docs, "Secret").values()
    data_url = secret["data"]["DATABASE_URL"]  # base64 of the DSN: it names the in-cluster host
    assert base64.b64decode(data_url).decode().split("@")[1].startswith("postgres:5432/")
    policies = by_kind(docs, "NetworkPolicy")
    (rule,) = policies["veloera-postgres-internal"]["spec"]["ingress"]
    allowed = rule["from"][0]["podSelector"]["matchExpressions"][1]["values"]
    assert sorted(allowed) == ["accounts", "billing", "migrate", "tasks"]  # never relay or web
