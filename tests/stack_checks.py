"""Static checks of the Docker stack and the CI workflows, for machines without a Docker engine.

Each check returns a list of problems, one sentence each; an empty list means the check passed.
The checks read files or already-parsed YAML, so a test can hand them a broken variant.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_DIR = Path(__file__).resolve().parents[1]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.kraft.yml")
LOOPBACK = ("127.0.0.1", "::1", "[::1]")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
FLOATING_TAGS = ("latest", "main", "master", "edge", "nightly", "stable", "dev")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def tool(name: str) -> str:
    """A tool installed next to the running interpreter (.venv/bin), else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: run `make install`")
    return found


def _run(command: list[str]) -> list[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return []
    return [f"{Path(command[0]).name} failed: {(result.stdout + result.stderr).strip()}"]


def compose_schema_problems(*paths: Path) -> list[str]:
    """The files against the Compose Specification's JSON schema (one run: it takes seconds)."""
    return _run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *map(str, paths)])


def workflow_schema_problems(*paths: Path) -> list[str]:
    """GitHub Actions workflows against their JSON schema (actionlint cannot be installed here)."""
    return _run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, paths)])


def hadolint_problems(dockerfile: Path) -> list[str]:
    return _run([tool("hadolint"), str(dockerfile)])


# --- Compose files -------------------------------------------------------------------------


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def image_tag(image: str) -> str | None:
    """The tag of an image reference ('' for a digest-only pin), or None when it has no tag."""
    if "@sha256:" in image:
        return ""
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def unpinned_image_problems(image: str, where: str) -> list[str]:
    if "${" in image:
        return [f"{where}: image {image!r} is set by a variable, so its version cannot be checked"]
    tag = image_tag(image)
    if tag == "":
        return []
    if tag is None:
        return [f"{where}: image {image!r} has no tag (that means 'latest')"]
    if tag.lower() in FLOATING_TAGS or not re.search(r"\d", tag):
        return [f"{where}: image {image!r} has the moving tag {tag!r}; pin an explicit version"]
    return []


def compose_image_problems(compose: dict) -> list[str]:
    """Every image a compose file pulls is pinned to an explicit version."""
    problems = []
    for name, service in compose.get("services", {}).items():
        if "image" in service:
            problems += unpinned_image_problems(service["image"], f"service {name}")
        elif "build" not in service:
            problems.append(f"service {name}: neither image nor build")
    return problems


def published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) for each published port; host ip '' means all."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append((entry.get("host_ip", ""), str(entry.get("published", "")), str(entry["target"])))
            continue
        text = str(entry).split("/")[0]
        match = re.fullmatch(r"(?:(\[[^\]]+\]|[\d.]+):)?(?:([\d-]*):)?([\d-]+)", text)
        if match is None:
            ports.append(("?", "?", text))
        else:
            ports.append((match[1] or "", match[2] or "", match[3]))
    return ports


def exposed_port_problems(compose: dict) -> list[str]:
    """Every published port is bound to the loopback interface only."""
    problems = []
    for name, service in compose.get("services", {}).items():
        if service.get("network_mode") == "host":
            problems.append(f"service {name}: network_mode host publishes every port on every interface")
        for host_ip, host_port, target in published_ports(service):
            if host_ip not in LOOPBACK:
                shown = f"{host_ip or '0.0.0.0'}:{host_port or '(random)'}"
                problems.append(f"service {name}: port {target} is published on {shown}; use 127.0.0.1")
    return problems


def advertised_listeners(service: dict) -> dict[str, str]:
    """{listener name: host:port} from KAFKA_ADVERTISED_LISTENERS."""
    listeners = {}
    for item in environment(service).get("KAFKA_ADVERTISED_LISTENERS", "").split(","):
        if "://" in item:
            name, address = item.strip().split("://", 1)
            listeners[name] = address
    return listeners


def _is_local(address: str) -> bool:
    return address.rsplit(":", 1)[0] in LOCAL_HOSTS


def bootstrap_problems(compose: dict, host_default: str) -> list[str]:
    """Clients in containers use the broker's container listener; the host listener is host_default.

    host_default is what the notebooks use outside Docker (pm25.config.DEFAULT_BOOTSTRAP_SERVERS).
    """
    services = compose.get("services", {})
    brokers = {name: s for name, s in services.items() if advertised_listeners(s)}
    if len(brokers) != 1:
        return [f"expected one service with KAFKA_ADVERTISED_LISTENERS, found {sorted(brokers) or 'none'}"]
    ((broker_name, broker),) = brokers.items()
    addresses = advertised_listeners(broker).values()
    container_side = {a for a in addresses if not _is_local(a)}
    host_side = [a for a in addresses if _is_local(a)]
    problems = []
    if host_side != [host_default]:
        problems.append(
            f"service {broker_name}: the host listener is {host_side or 'missing'}, expected "
            f"[{host_default!r}] (pm25.config.DEFAULT_BOOTSTRAP_SERVERS)"
        )
    host_port = host_default.rsplit(":", 1)[1]
    if not any(ip in LOOPBACK and port == host_port for ip, port, _ in published_ports(broker)):
        problems.append(f"service {broker_name}: the host listener's port {host_port} is not published")
    clients = 0
    for name, service in services.items():
        for key, value in environment(service).items():
            if name == broker_name or not key.replace("_", "").endswith("BOOTSTRAPSERVERS"):
                continue
            clients += 1
            for address in value.split(","):
                if address.strip() not in container_side:
                    problems.append(
                        f"service {name}: {key}={address.strip()} is not one of the broker's "
                        f"container listeners {sorted(container_side)}"
                    )
    if clients == 0:
        problems.append("no service sets KAFKA_BOOTSTRAP_SERVERS")
    return problems


def bind_mount_problems(compose: dict, compose_dir: Path) -> list[str]:
    """Bind mount sources are relative paths that exist in the repository."""
    problems = []
    for name, service in compose.get("services", {}).items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                source = volume.get("source", "") if volume.get("type") == "bind" else ""
            else:
                source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                continue  # a named volume
            if not source.startswith("."):
                problems.append(f"service {name}: bind mount {source} is outside the repository")
            elif not (compose_dir / source).exists():
                problems.append(f"service {name}: bind mount source {source} does not exist")
    return problems


def healthcheck_problems(compose: dict) -> list[str]:
    """Services outside profiles have healthchecks; depends_on waits for service_healthy."""
    services = compose.get("services", {})
    problems = []

    def healthy(name: str) -> bool:
        check = services.get(name, {}).get("healthcheck") or {}
        return bool(check.get("test")) and not check.get("disable")

    for name, service in services.items():
        if not service.get("profiles") and not healthy(name):
            problems.append(f"service {name}: no healthcheck")
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            problems.append(f"service {name}: depends_on {depends_on} only waits for start, not health")
            continue
        for target, condition in depends_on.items():
            if (condition or {}).get("condition") != "service_healthy":
                problems.append(f"service {name}: depends_on {target} without condition service_healthy")
            elif not healthy(target):
                problems.append(f"service {name}: waits for {target} to be healthy, which has no healthcheck")
    return problems


EMPTY_TOKEN = re.compile(r"""token\s*=\s*(''|""|\s|$)""", re.IGNORECASE | re.MULTILINE)
INTERPOLATION = re.compile(r"\$\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<modifier>:?[-?+])?")


def strings(node) -> list[str]:
    """Every string in a parsed YAML document, keys included."""
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in strings(key) + strings(value)]
    if isinstance(node, list):
        return [text for item in node for text in strings(item)]
    return [node] if isinstance(node, str) else []


def jupyter_services(compose: dict) -> dict[str, dict]:
    """The services built from this repository's Dockerfile: the JupyterLab ones."""
    return {name: service for name, service in compose.get("services", {}).items() if "build" in service}


def token_problems(compose: dict) -> list[str]:
    """JUPYTER_TOKEN reaches JupyterLab only from the optional .env, so unset stays unset.

    `${JUPYTER_TOKEN}` or `${JUPYTER_TOKEN:-}` turn an unset variable into an empty one;
    `${JUPYTER_TOKEN:?...}` makes .env required; a literal is a committed secret; a bare key's
    meaning (unset or pass-through) changed between Compose versions. Unset, JupyterLab makes
    up a random token and prints it in its log.
    """
    problems = []
    services = jupyter_services(compose)
    if not services:
        problems.append("no service is built from the Dockerfile (the JupyterLab service)")
    for name, service in services.items():
        if "JUPYTER_TOKEN" in environment(service):
            problems.append(f"service {name}: sets JUPYTER_TOKEN in environment; leave it to the optional .env")
    for text in strings(compose):
        for match in INTERPOLATION.finditer(text):
            if match["name"] == "JUPYTER_TOKEN":
                problems.append(f"{text!r} interpolates JUPYTER_TOKEN: unset would become empty or an error")
    return problems


def optional_env_problems(compose: dict) -> list[str]:
    """`docker compose up` works without a .env: env files optional, no variable required."""
    problems = []
    for name, service in compose.get("services", {}).items():
        entries = service.get("env_file") or []
        for entry in [entries] if isinstance(entries, str | dict) else entries:
            if not isinstance(entry, dict) or entry.get("required", True) is not False:
                problems.append(f"service {name}: env_file {entry!r} is required; use path + required: false")
    for text in strings(compose):
        for match in INTERPOLATION.finditer(text):
            if match["modifier"] in (":?", "?"):
                problems.append(f"{text!r} requires {match['name']} to be set, so a fresh clone cannot start")
    return problems


def env_example_problems(text: str) -> list[str]:
    """Copying .env.example to .env sets no token, neither a known one nor an empty one."""
    lines = [line.strip() for line in text.splitlines()]
    if any(re.match(r"(export\s+)?JUPYTER_TOKEN\s*=", line) for line in lines):
        return [".env.example sets JUPYTER_TOKEN; keep it commented out so the server makes up its own"]
    return []


def auto_create_problems(compose: dict) -> list[str]:
    """The broker creates no topic on a client's request: the code creates them with their partitions."""
    problems = []
    for name, service in compose.get("services", {}).items():
        if advertised_listeners(service):
            value = environment(service).get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")
            if value != "false":
                problems.append(f'service {name}: KAFKA_AUTO_CREATE_TOPICS_ENABLE is {value!r}, expected "false"')
    return problems


def unsafe_text_problems(text: str, where: str) -> list[str]:
    """No --allow-root and no empty token anywhere in a file's text."""
    problems = []
    if "--allow-root" in text or "allow_root" in text.lower():
        problems.append(f"{where}: runs Jupyter as root (--allow-root)")
    if EMPTY_TOKEN.search(text):
        problems.append(f"{where}: sets an empty token, which turns authentication off")
    return problems


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def base_image(text: str) -> str:
    froms = [args.split()[0] for keyword, args in dockerfile_instructions(text) if keyword == "FROM"]
    return froms[-1] if froms else ""


def dockerfile_problems(text: str, python_version: tuple[int, int]) -> list[str]:
    """Base pinned to a Python release no older than CI's, requirements.txt installed, a healthcheck, not root."""
    instructions = dockerfile_instructions(text)
    image = base_image(text)
    problems = unpinned_image_problems(image, "Dockerfile FROM") if image else ["Dockerfile: no FROM"]
    match = re.search(r"python-(\d+)\.(\d+)(\.\d+)?", image_tag(image) or "")
    oldest = "{}.{}".format(*python_version)
    if match is None:
        problems.append(f"Dockerfile: the tag of {image!r} does not name its Python version")
    elif (int(match[1]), int(match[2])) < python_version:
        problems.append(f"Dockerfile: {image!r} has Python {match[1]}.{match[2]}, older than CI's {oldest}")
    elif match[3] is None:
        problems.append(f"Dockerfile: {image!r} names no Python patch release, so the tag moves with every build")
    copied = [
        args.split()[-1]
        for keyword, args in instructions
        if keyword in ("COPY", "ADD") and re.search(r"(^|\s)requirements\.txt\s", args)
    ]
    installs = [args for keyword, args in instructions if keyword == "RUN" and "pip install" in args]
    if not copied:
        problems.append("Dockerfile: does not COPY requirements.txt (the file CI installs)")
    elif not any(re.search(rf"(-r|--requirement)[ =]{re.escape(copied[0])}(\s|$)", run) for run in installs):
        problems.append(f"Dockerfile: no `pip install -r {copied[0]}` of the copied requirements.txt")
    if installs and not all("--no-cache-dir" in run for run in installs):
        problems.append("Dockerfile: pip install without --no-cache-dir keeps the cache in the image")
    if not any(keyword == "HEALTHCHECK" and "NONE" not in args.upper() for keyword, args in instructions):
        problems.append("Dockerfile: no HEALTHCHECK")
    users = [args.split(":")[0] for keyword, args in instructions if keyword == "USER"]
    if users and users[-1] in ("root", "0"):
        problems.append("Dockerfile: the last USER is root, so the server would run as root")
    return problems


def dockerignore_problems(text: str) -> list[str]:
    """requirements.txt reaches the build; secrets, the venv and outputs do not."""

    def ignored(path: str) -> bool:
        result = False
        for line in text.splitlines():
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").strip("/")
            if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
                result = not negate
        return result

    problems = []
    if ignored("requirements.txt"):
        problems.append(".dockerignore: excludes requirements.txt, which the Dockerfile copies")
    for path in (".env", ".venv", ".git", "build", "data/output"):
        if not ignored(path):
            problems.append(f".dockerignore: does not keep {path} out of the build context")
    return problems


# --- Workflows -----------------------------------------------------------------------------


def workflow_pin_problems(workflow: dict, python_version: tuple[int, int]) -> list[str]:
    """Actions pinned by version tag or commit; setup-python asks for the CI interpreter's minor."""
    problems = []
    wanted = "{}.{}".format(*python_version)
    for job_name, job in (workflow.get("jobs") or {}).items():
        if str(job.get("runs-on", "")).endswith("-latest"):
            problems.append(f"job {job_name}: runs-on {job['runs-on']} moves; pin the runner image")
        for step in job.get("steps") or []:
            uses = step.get("uses")
            if uses is None:
                continue
            ref = uses.partition("@")[2]
            if not re.fullmatch(r"v\d+(\.\d+)*|[0-9a-f]{40}", ref):
                problems.append(f"job {job_name}: {uses} is not pinned to a version tag")
            version = str((step.get("with") or {}).get("python-version", wanted))
            if uses.startswith("actions/setup-python@") and not re.fullmatch(rf"{re.escape(wanted)}(\.\d+)?", version):
                problems.append(f"job {job_name}: python-version {version}, the project uses {wanted}")
    return problems


# --- Dev container -------------------------------------------------------------------------


def devcontainer_problems(config: dict, devcontainer_dir: Path) -> list[str]:
    """The dev container's compose files, service, ports and paths exist in the compose stack."""
    files = config.get("dockerComposeFile") or []
    files = [files] if isinstance(files, str) else files
    paths = [(devcontainer_dir / name).resolve() for name in files]
    missing = [str(path) for path in paths if not path.exists()]
    if not files or missing:
        return [f"dockerComposeFile {files!r}: missing {missing or 'entry'}"]
    services = {}
    for path in paths:
        services.update(load_yaml(path).get("services", {}))
    name = config.get("service")
    if name not in services:
        return [f"service {name!r} is not in {files}"]
    service, problems = services[name], []
    if not set(config.get("runServices") or []) <= set(services):
        problems.append(f"runServices {config['runServices']} names services the compose files do not have")
    for port in config.get("forwardPorts") or []:
        other, _, number = str(port).rpartition(":")
        target = services.get(other or name)
        if target is None or number not in {container for _, _, container in published_ports(target)}:
            problems.append(f"forwardPorts {port!r}: service {other or name} publishes no container port {number}")
    if config.get("overrideCommand", False) is not False:
        problems.append("overrideCommand replaces the JupyterLab server with a sleep; set it to false")
    workspace = config.get("workspaceFolder", "")
    mounts = {}
    for volume in service.get("volumes") or []:
        source, _, target = str(volume).partition(":")
        mounts[target.split(":")[0]] = (paths[0].parent / source).resolve()
    if not any(target == workspace or target.startswith(workspace.rstrip("/") + "/") for target in mounts):
        problems.append(f"workspaceFolder {workspace!r} holds none of service {name}'s mounts {sorted(mounts)}")
    for opened in (config.get("customizations") or {}).get("codespaces", {}).get("openFiles") or []:
        in_container = f"{workspace.rstrip('/')}/{opened}"
        found = [
            source / in_container[len(target) :].lstrip("/")
            for target, source in mounts.items()
            if in_container.startswith(target.rstrip("/") + "/")
        ]
        if not any(path.exists() for path in found):
            problems.append(f"openFiles {opened!r}: {in_container} is not a mounted file of the repository")
    return problems
