"""GitHub Codespaces / dev containers: .devcontainer/devcontainer.json opens the compose stack."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft201909Validator

from tests import stack_checks as checks

DEVCONTAINER_DIR = checks.REPO_DIR / ".devcontainer"
DEVCONTAINER = DEVCONTAINER_DIR / "devcontainer.json"
CONFIG = json.loads(DEVCONTAINER.read_text(encoding="utf-8"))
# The dev container spec's own schema, a pinned copy: tests/schemas/README.md names its source.
SCHEMA = json.loads((checks.REPO_DIR / "tests" / "schemas" / "devContainer.base.schema.json").read_text("utf-8"))


def schema_errors(config: dict) -> list[str]:
    return [error.message for error in Draft201909Validator(SCHEMA).iter_errors(config)]


def test_devcontainer_follows_the_dev_container_schema():
    Draft201909Validator.check_schema(SCHEMA)
    assert schema_errors(CONFIG) == []


@pytest.mark.parametrize(
    "change",
    [
        {"forwardPort": [8888]},  # a misspelt key
        {"forwardPorts": [70000]},  # not a port
        {"shutdownAction": "stopContainerz"},
        {"dockerComposeFile": 42},
    ],
)
def test_the_schema_rejects_what_a_dev_container_tool_would(change):
    assert schema_errors({**CONFIG, **change})


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


def test_the_codespace_edits_the_folder_the_image_installs_the_package_from():
    # The image installs pm25 in editable mode from its WORKDIR (tests/test_docker_stack.py checks that),
    # so an edit to src/pm25 in the Codespace is what the next import in a kernel gets.
    dockerfile = (checks.REPO_DIR / "Dockerfile").read_text(encoding="utf-8")
    workdirs = [args for keyword, args in checks.dockerfile_instructions(dockerfile) if keyword == "WORKDIR"]
    assert CONFIG["workspaceFolder"] == workdirs[-1].replace("${NB_USER}", CONFIG["remoteUser"])
