"""compose.yaml and the Dockerfile agree with the settings, the README and the native topology."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from core.settings import Settings
from tests.deploy.processes import ROOT
from tests.deploy.test_topology import topology_env

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("seed", "api1", "api2", "worker", "beat")
SETTINGS = {name.upper() for name in Settings.model_fields}


def image_command() -> list[str]:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    cmd = [line for line in lines if line.startswith("CMD ")]
    assert len(cmd) == 1
    command: list[str] = json.loads(cmd[0][4:])
    return command


def test_the_nodes_run_the_same_entry_point_as_make_run() -> None:
    assert image_command() == ["python", "-m", "core.cli", "run"]
    assert "$(BIN)/python -m core.cli run" in (ROOT / "Makefile").read_text()
    for node in ("api1", "api2"):
        assert "command" not in SERVICES[node], "the image's command"
        assert SERVICES[node]["depends_on"]["seed"]["condition"] == (
            "service_completed_successfully"
        )
    assert SERVICES["seed"]["command"] == ["python", "-m", "core.cli", "seed"]
    assert SERVICES["seed"]["restart"] == "no"
    assert "worker" in SERVICES["worker"]["command"] and "beat" in SERVICES["beat"]["command"]


def test_every_app_variable_is_a_setting_and_the_native_topology_sets_them_all(
    tmp_path: Path,
) -> None:
    native = topology_env("mongodb://m", "redis://r", "q", "http://n", tmp_path)
    for name in APP_SERVICES:
        service = SERVICES[name]
        env = service["environment"]
        assert set(env) - {"NODE_ID"} <= SETTINGS, set(env) - SETTINGS
        assert set(env) - {"NODE_ID"} <= set(native), set(env) - set(native)
        assert env["APP_ENV"] == "production"
        assert {"path": ".env", "required": False} in service["env_file"]
        assert "app-data:/data" in service["volumes"], "outbox and backups on a volume"


def test_the_required_variables_are_listed_in_the_readme() -> None:
    text = (ROOT / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == {"JWT_SECRET", "PASSWORD_PEPPER", "PAYMENT_REFERENCE_KEY", "PUBLIC_BASE_URL"}
    readme = (ROOT / "README.md").read_text()
    production = readme[readme.index("## Production") : readme.index("## Seeding")]
    for name in required | {"CLOUDPAYMENTS_PUBLIC_ID", "SENDPULSE_CLIENT_ID", "OPENAI_API_KEY"}:
        assert f"`{name}`" in production, name
