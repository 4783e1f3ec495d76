"""GitHub Codespaces / dev containers: .devcontainer/devcontainer.json opens the compose stack."""

from __future__ import annotations

import copy
import json

import pytest

from tests import stack_checks as checks

DEVCONTAINER_DIR = checks.REPO_DIR / ".devcontainer"
DEVCONTAINER = DEVCONTAINER_DIR / "devcontainer.json"
CONFIG = json.loads(DEVCONTAINER.read_text(encoding="utf-8"))


def test_devcontainer_matches_the_compose_stack():
    assert checks.devcontainer_problems(CONFIG, DEVCONTAINER_DIR) == []


def test_devcontainer_opens_jupyterlab_and_step_1():
    assert CONFIG["service"] == "jupyter" and 8888 in CONFIG["forwardPorts"]
    assert CONFIG["customizations"]["codespaces"]["openFiles"] == ["src/step_1_data_prep.ipynb"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dockerComposeFile", ["../compose.yaml"]),
        ("service", "notebook"),
        ("runServices", ["zookeeper", "kafka", "jupyter", "redis"]),
        ("forwardPorts", [8889]),
        ("forwardPorts", ["kafka:8888"]),
        ("overrideCommand", True),
        ("workspaceFolder", "/workspaces/pm25"),
        ("customizations", {"codespaces": {"openFiles": ["src/step_9.ipynb"]}}),
    ],
)
def test_devcontainer_check_reports_what_the_stack_does_not_have(key, value):
    variant = copy.deepcopy(CONFIG)
    variant[key] = value
    assert checks.devcontainer_problems(variant, DEVCONTAINER_DIR)
