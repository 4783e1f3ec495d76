"""The Docker stack and CI workflows, checked statically: each check passes on the real files and
reports a broken variant of them."""

from __future__ import annotations

import copy
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from pm25.config import DEFAULT_BOOTSTRAP_SERVERS
from tests import stack_checks as checks

REPO = checks.REPO_DIR
PYTHON = sys.version_info[:2]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


@pytest.fixture(params=checks.COMPOSE_FILES)
def compose_path(request: pytest.FixtureRequest) -> Path:
    return REPO / request.param


@pytest.fixture
def compose(compose_path: Path) -> dict:
    return checks.load_yaml(compose_path)


def broken(document: dict, change) -> dict:
    """A deep copy of a parsed YAML document with one change applied."""
    variant = copy.deepcopy(document)
    change(variant)
    return variant


def write(tmp_path: Path, name: str, document: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# --- Compose Specification schema ----------------------------------------------------------


def test_compose_files_follow_the_compose_spec():
    assert checks.compose_schema_problems(*(REPO / name for name in checks.COMPOSE_FILES)) == []


def test_compose_schema_check_reports_an_unknown_service_key(tmp_path):
    compose = checks.load_yaml(REPO / "docker-compose.yml")
    variant = broken(compose, lambda c: c["services"]["kafka"].update(port=["9092:9092"]))
    problems = checks.compose_schema_problems(write(tmp_path, "compose.yml", variant))
    assert any("port" in problem for problem in problems), problems


# --- Dockerfile lint -----------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    assert checks.hadolint_problems(REPO / "Dockerfile") == []


def test_hadolint_check_reports_pip_install_with_cache(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(DOCKERFILE.replace("pip install --no-cache-dir", "pip install"), encoding="utf-8")
    assert any("DL3042" in problem for problem in checks.hadolint_problems(dockerfile))


# --- Pinned images -------------------------------------------------------------------------


def test_every_compose_image_is_pinned(compose):
    assert checks.compose_image_problems(compose) == []


@pytest.mark.parametrize(
    "image",
    ["confluentinc/cp-kafka", "confluentinc/cp-kafka:latest", "kafbat/kafka-ui:main", "x:${TAG}"],
)
def test_image_check_reports_an_unpinned_image(compose, image):
    variant = broken(compose, lambda c: c["services"]["kafka"].update(image=image))
    assert checks.compose_image_problems(variant)


def test_image_check_accepts_a_digest_and_a_registry_port():
    assert checks.unpinned_image_problems("registry:5000/kafka@sha256:" + "0" * 64, "x") == []
    assert checks.unpinned_image_problems("registry:5000/kafka:7.9.6", "x") == []
    assert checks.unpinned_image_problems("registry:5000/kafka", "x")


# --- Loopback-only ports -------------------------------------------------------------------


def test_every_published_port_is_on_loopback(compose):
    assert checks.exposed_port_problems(compose) == []


@pytest.mark.parametrize(
    "ports",
    [["8888:8888"], ["0.0.0.0:8888:8888"], [8888], [{"target": 8888, "published": 8888}]],
)
def test_port_check_reports_a_port_on_every_interface(compose, ports):
    variant = broken(compose, lambda c: c["services"]["jupyter"].update(ports=ports))
    assert checks.exposed_port_problems(variant)


def test_port_check_accepts_the_long_syntax_on_loopback(compose):
    port = {"target": 8888, "published": 8888, "host_ip": "127.0.0.1"}
    variant = broken(compose, lambda c: c["services"]["jupyter"].update(ports=[port]))
    assert checks.exposed_port_problems(variant) == []


# --- Listeners and bootstrap servers -------------------------------------------------------


def test_clients_use_the_container_listener_and_the_host_one_is_the_default(compose):
    assert checks.bootstrap_problems(compose, DEFAULT_BOOTSTRAP_SERVERS) == []


def test_host_listener_is_what_the_notebooks_use_outside_docker():
    assert DEFAULT_BOOTSTRAP_SERVERS == "localhost:9092"


@pytest.mark.parametrize("bootstrap", ["kafka:9092", "localhost:9092", "broker:29092"])
def test_bootstrap_check_reports_a_client_address_no_listener_serves(compose, bootstrap):
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    variant = broken(compose, lambda c: c["services"]["jupyter"]["environment"].update(env))
    assert any("jupyter" in problem for problem in checks.bootstrap_problems(variant, "localhost:9092"))


def test_bootstrap_check_reports_a_host_listener_other_than_the_default(compose):
    def move_host_listener(c):
        env = c["services"]["kafka"]["environment"]
        env["KAFKA_ADVERTISED_LISTENERS"] = env["KAFKA_ADVERTISED_LISTENERS"].replace(
            "localhost:9092", "localhost:19092"
        )

    assert checks.bootstrap_problems(broken(compose, move_host_listener), "localhost:9092")


def test_bootstrap_check_reports_an_unpublished_host_listener(compose):
    variant = broken(compose, lambda c: c["services"]["kafka"].pop("ports"))
    assert checks.bootstrap_problems(variant, "localhost:9092")


def test_bootstrap_check_reports_a_default_that_differs_from_the_host_listener(compose):
    assert checks.bootstrap_problems(compose, "localhost:9093")


# --- Bind mounts ---------------------------------------------------------------------------


def test_bind_mount_sources_exist(compose, compose_path):
    assert checks.bind_mount_problems(compose, compose_path.parent) == []


def test_jupyter_mounts_src_and_data_into_work(compose):
    volumes = compose["services"]["jupyter"]["volumes"]
    assert volumes == [
        "./src:/home/jovyan/work/src",
        "./data:/home/jovyan/work/data",
        "./README.md:/home/jovyan/work/README.md:ro",
        "./TEACHERS.md:/home/jovyan/work/TEACHERS.md:ro",
        "./img:/home/jovyan/work/img:ro",
    ]


@pytest.mark.parametrize("source", ["./notebooks", "/home/someone/pm25/src"])
def test_bind_mount_check_reports_a_missing_or_outside_source(compose, compose_path, source):
    variant = broken(compose, lambda c: c["services"]["jupyter"]["volumes"].append(f"{source}:/x"))
    assert checks.bind_mount_problems(variant, compose_path.parent)


# --- Token and root ------------------------------------------------------------------------


def test_jupyter_token_comes_only_from_the_optional_env_file(compose):
    assert checks.token_problems(compose) == []


@pytest.mark.parametrize(
    "token",
    [None, "", "${JUPYTER_TOKEN}", "${JUPYTER_TOKEN:-}", "$JUPYTER_TOKEN", "${JUPYTER_TOKEN:?set it}", "letmein"],
)
def test_token_check_reports_a_token_that_may_be_empty_required_or_committed(compose, token):
    variant = broken(compose, lambda c: c["services"]["jupyter"]["environment"].update(JUPYTER_TOKEN=token))
    assert checks.token_problems(variant)


def test_token_check_reports_an_interpolated_token_in_the_command(compose):
    command = "start-notebook.py --IdentityProvider.token=${JUPYTER_TOKEN}"
    variant = broken(compose, lambda c: c["services"]["jupyter"].update(command=command))
    assert checks.token_problems(variant)


def test_stack_starts_without_an_env_file(compose):
    assert checks.optional_env_problems(compose) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["services"]["jupyter"].update(env_file=".env"),
        lambda c: c["services"]["jupyter"].update(env_file=[{"path": ".env"}]),
        lambda c: c["services"]["jupyter"].update(env_file=[{"path": ".env", "required": True}]),
        lambda c: c["services"]["kafka"]["environment"].update(KAFKA_HEAP_OPTS="${HEAP:?set HEAP in .env}"),
    ],
    ids=["plain env_file", "required by default", "required", "required variable"],
)
def test_optional_env_check_reports_what_stops_a_fresh_clone(compose, change):
    assert checks.optional_env_problems(broken(compose, change))


def test_env_example_leaves_the_token_to_the_server():
    assert checks.env_example_problems((REPO / ".env.example").read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("line", ["JUPYTER_TOKEN=", "JUPYTER_TOKEN=change-me", "export JUPYTER_TOKEN=x"])
def test_env_example_check_reports_a_token_line(line):
    assert checks.env_example_problems(f"# settings\n{line}\nOSEM_OFFLINE=0\n")


# --- Topics only from code -----------------------------------------------------------------


def test_broker_does_not_auto_create_topics(compose):
    assert checks.auto_create_problems(compose) == []


@pytest.mark.parametrize("value", [None, "true", False])
def test_auto_create_check_reports_a_broker_that_may_create_topics(compose, value):
    def change(c):
        env = c["services"]["kafka"]["environment"]
        env.pop("KAFKA_AUTO_CREATE_TOPICS_ENABLE")
        if value is not None:
            env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] = value

    assert checks.auto_create_problems(broken(compose, change))


def test_no_file_runs_jupyter_as_root_or_without_token(compose_path):
    for path in [compose_path, REPO / "Dockerfile", *WORKFLOWS]:
        assert checks.unsafe_text_problems(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize(
    "line",
    [
        'CMD ["start-notebook.py", "--allow-root"]',
        "CMD start-notebook.py --IdentityProvider.token=''",
        'command: start-notebook.py --ServerApp.token=""',
    ],
)
def test_unsafe_text_check_reports_root_or_an_empty_token(line):
    assert checks.unsafe_text_problems(DOCKERFILE + line + "\n", "Dockerfile")


# --- Dockerfile contents -------------------------------------------------------------------


def test_dockerfile_installs_requirements_on_a_pinned_python_no_older_than_ci():
    assert checks.dockerfile_problems(DOCKERFILE, PYTHON) == []


def test_image_is_built_from_the_repo_so_it_copies_the_requirements_make_installs(compose):
    # The Dockerfile copies requirements.txt from the build context: the repo, where make finds it.
    assert compose["services"]["jupyter"]["build"] == "."
    assert "-r requirements.txt" in (REPO / "Makefile").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        ("python-3.13.14", "python-3.10.14", "Python 3.10, older than CI's 3.11"),
        ("python-3.13.14", "python-3.13", "no Python patch release"),
        ("minimal-notebook:python-3.13.14", "minimal-notebook:2024-05-27", "does not name"),
        ("minimal-notebook:python-3.13.14", "minimal-notebook:latest", "moving tag"),
        ("--requirement requirements.txt", "jupyterlab==4.6.6", "pip install -r"),
        ("COPY --chown=${NB_UID}:${NB_GID} requirements.txt", "COPY --chown=${NB_UID}:${NB_GID} other.txt", "COPY"),
        ("pip install --no-cache-dir", "pip install", "no-cache-dir"),
        ("HEALTHCHECK", "# HEALTHCHECK", "HEALTHCHECK"),
        ("ENV DOCKER_STACKS_JUPYTER_CMD=lab", "ENV DOCKER_STACKS_JUPYTER_CMD=lab\nUSER root", "root"),
    ],
)
def test_dockerfile_check_reports_a_broken_variant(old, new, reported):
    assert old in DOCKERFILE
    problems = checks.dockerfile_problems(DOCKERFILE.replace(old, new), (3, 11))
    assert any(reported in problem for problem in problems), problems


def editable_install_problems(dockerfile: str, compose: dict) -> list[str]:
    """The image installs the package in editable mode from the folder where compose mounts ./src, without
    PYTHONPATH: the kernels then import the package in this folder's src/, from any working directory."""
    problems, workdir, copied, projects = [], "/", set(), []
    for keyword, args in checks.dockerfile_instructions(dockerfile.replace("${NB_USER}", "jovyan")):
        if keyword == "WORKDIR":
            workdir = os.path.join(workdir, args)
        elif keyword == "COPY":
            source, destination = args.split()[-2:]
            copied.add((source, os.path.normpath(os.path.join(workdir, destination))))
        elif keyword == "ENV" and "PYTHONPATH" in args:
            problems.append("Dockerfile: sets PYTHONPATH; the editable install finds the package")
        elif keyword == "RUN" and (found := re.search(r"pip install .*--editable[ =]\"?([^\s\"]+)", args)):
            projects.append(os.path.normpath(os.path.join(workdir, found[1])))
    if not projects:
        return [*problems, "Dockerfile: no `pip install --editable` of the package"]
    for source in ("pyproject.toml", "src/pm25"):
        if (source, f"{projects[0]}/{source}") not in copied:
            problems.append(f"Dockerfile: does not COPY {source} to {projects[0]}/{source} before installing it")
    if f"./src:{projects[0]}/src" not in compose["services"]["jupyter"].get("volumes", []):
        problems.append(f"compose: ./src is not mounted at {projects[0]}/src, where the package is installed from")
    return problems


def test_image_installs_the_package_editable_where_compose_mounts_src(compose):
    assert editable_install_problems(DOCKERFILE, compose) == []


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        ("--editable", "", "no `pip install --editable`"),
        ("src/pm25 src/pm25", "src/pm25 /tmp/pm25", "src/pm25"),
        ("ENV DOCKER_STACKS_JUPYTER_CMD=lab", "ENV PYTHONPATH=/home/jovyan/work/src", "PYTHONPATH"),
    ],
)
def test_editable_install_check_reports_a_broken_variant(compose, old, new, reported):
    assert old in DOCKERFILE
    problems = editable_install_problems(DOCKERFILE.replace(old, new), compose)
    assert any(reported in problem for problem in problems), problems


def test_editable_install_check_reports_src_mounted_elsewhere(compose):
    variant = broken(compose, lambda c: c["services"]["jupyter"].update(volumes=["./src:/home/jovyan/src"]))
    assert any("not mounted" in problem for problem in editable_install_problems(DOCKERFILE, variant))


def test_dockerfile_check_reports_an_image_python_older_than_ci():
    assert checks.dockerfile_problems(DOCKERFILE, (3, 99))


def test_dockerignore_keeps_secrets_and_outputs_out_but_lets_requirements_in():
    assert checks.dockerignore_problems((REPO / ".dockerignore").read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("text", "reported"),
    [("*\n", "requirements.txt"), (".venv\n.git\nbuild\ndata/output\n", ".env"), ("*\n!.env\n", ".env")],
)
def test_dockerignore_check_reports_a_broken_variant(text, reported):
    assert any(reported in problem for problem in checks.dockerignore_problems(text))


# --- Healthchecks and start order ----------------------------------------------------------


def test_services_have_healthchecks_and_wait_for_healthy_dependencies(compose):
    assert checks.healthcheck_problems(compose) == []


def test_healthcheck_check_reports_a_missing_healthcheck(compose):
    variant = broken(compose, lambda c: c["services"]["kafka"].pop("healthcheck"))
    assert any("kafka" in problem for problem in checks.healthcheck_problems(variant))


def test_healthcheck_check_reports_a_disabled_healthcheck(compose):
    variant = broken(compose, lambda c: c["services"]["jupyter"].update(healthcheck={"disable": True}))
    assert checks.healthcheck_problems(variant)


@pytest.mark.parametrize("depends_on", [["kafka"], {"kafka": {"condition": "service_started"}}])
def test_healthcheck_check_reports_depends_on_without_service_healthy(compose, depends_on):
    variant = broken(compose, lambda c: c["services"]["jupyter"].update(depends_on=depends_on))
    assert checks.healthcheck_problems(variant)


# --- Workflows -----------------------------------------------------------------------------


def test_there_are_ci_and_nightly_workflows():
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "nightly.yml"}


def test_workflows_follow_the_github_workflow_schema():
    assert checks.workflow_schema_problems(*WORKFLOWS) == []


def test_workflow_schema_check_reports_a_misspelt_job_key(tmp_path):
    workflow = checks.load_yaml(REPO / ".github" / "workflows" / "ci.yml")
    variant = broken(workflow, lambda w: w["jobs"]["test"].update(step=w["jobs"]["test"].pop("steps")))
    variant["on"] = variant.pop(True)  # PyYAML reads `on` as True; write it back as the key `on`
    problems = checks.workflow_schema_problems(write(tmp_path, "ci.yml", variant))
    assert any("'step'" in problem for problem in problems), problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_pins_actions_runner_and_python(path):
    assert checks.workflow_pin_problems(checks.load_yaml(path), PYTHON) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("uses", "actions/checkout@main"), ("uses", "actions/checkout"), ("runs-on", "ubuntu-latest")],
)
def test_workflow_pin_check_reports_a_moving_reference(field, value):
    workflow = checks.load_yaml(REPO / ".github" / "workflows" / "ci.yml")

    def change(w):
        job = w["jobs"]["test"]
        if field == "uses":
            job["steps"][0]["uses"] = value
        else:
            job["runs-on"] = value

    assert checks.workflow_pin_problems(broken(workflow, change), PYTHON)


def test_workflow_pin_check_reports_another_python():
    workflow = checks.load_yaml(REPO / ".github" / "workflows" / "ci.yml")
    variant = broken(workflow, lambda w: w["jobs"]["test"]["steps"][1]["with"].update({"python-version": "3.12"}))
    assert checks.workflow_pin_problems(variant, (3, 11))


def test_stack_job_runs_the_notebooks_in_the_jupyter_container_and_always_stops():
    steps = checks.load_yaml(REPO / ".github" / "workflows" / "ci.yml")["jobs"]["stack"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert any("docker compose up --build" in run and "--wait" in run for run in runs)
    assert any("docker compose exec" in run and "--nbmake" in run for run in runs)
    assert steps[-1]["if"] == "always()" and "docker compose down --volumes" in steps[-1]["run"]


def test_stack_job_starts_without_writing_env_and_checks_the_printed_token():
    steps = checks.load_yaml(REPO / ".github" / "workflows" / "ci.yml")["jobs"]["stack"]["steps"]
    runs = [step.get("run", "") for step in steps]
    start = next(i for i, run in enumerate(runs) if "docker compose up" in run)
    assert not any(".env" in run or "JUPYTER_TOKEN" in run for run in runs[: start + 1])
    token_check = next(run for run in runs[start:] if "docker compose logs jupyter" in run)
    assert "403" in token_check and "token=" in token_check


def test_nightly_runs_step_1_against_the_live_api():
    workflow = checks.load_yaml(REPO / ".github" / "workflows" / "nightly.yml")
    # PyYAML reads the key `on` as True (YAML 1.1).
    assert workflow[True]["schedule"]
    steps = workflow["jobs"]["step-1-live"]["steps"]
    assert any("src/step_1_data_prep.ipynb" in step.get("run", "") for step in steps)
    assert not any("OSEM_API_URL" in str(step) for step in steps)


def test_jupyter_reads_the_tutorial_settings_from_a_git_ignored_env_file(compose):
    assert compose["services"]["jupyter"]["env_file"] == [{"path": ".env", "required": False}]
    assert ".env" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
