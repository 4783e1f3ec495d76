"""No secret in the repository, and nothing the tutorial starts listens beyond this machine."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from pm25.brokers.embedded import EmbeddedBroker, free_port
from pm25.classroom import lab

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
PRIVATE_KEY = re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----")
# password=..., "password": "...", PASSWORD: ... with a value that is not a placeholder or a variable
PASSWORD = re.compile(r"""(?i)\b\w*(?:password|passwd|secret|token)\w*\b["']?\s*[:=]\s*["']?([^\s"'#,;)}]{6,})""")
# Variables ($X, ${X:?...}, <X>), code (settings.x, f(...)) and values that say they are fake.
PLACEHOLDER = re.compile(
    r"(?i)^(\$.*|\?.*|<.*|\{.*|x+|\*+|none|null|true|false|\w+[.(\[].*|.*(change-?me|your[-_]|example|test|s3cret|dummy|fake).*)$"
)
CANDIDATE = re.compile(r"[A-Za-z0-9+/_\-]{32,}")
KNOWN_SHAPES = re.compile(r"^(?:[0-9a-f]{24}|[0-9a-f]{40}|[0-9a-f]{64}|sha\d+-.*)$")  # openSenseMap ids, hashes


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_no_token_password_or_private_key_is_tracked(figures):
    findings = []
    files = _tracked_files()
    assert files
    for path in files:
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        figures.hostile_inputs += 1
        if PRIVATE_KEY.search(text):
            findings.append(f"{path.name}: a private key")
        for match in PASSWORD.finditer(text):
            if not PLACEHOLDER.match(match.group(1)):
                findings.append(f"{path.name}: {match.group(0)[:60]!r}")
        for match in CANDIDATE.finditer(text):
            word = match.group(0)
            if _entropy(word) > 4.5 and not KNOWN_SHAPES.match(word) and re.search(r"\d", word):
                findings.append(f"{path.name}: high-entropy {word[:12]}...")
    assert not findings, "possible secrets in tracked files:\n" + "\n".join(findings)


def test_env_is_ignored_and_the_example_holds_only_a_placeholder():
    tracked = {path.relative_to(REPO).as_posix() for path in _tracked_files()}
    assert ".env" not in tracked
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode
    assert ignored == 0, ".env is not git-ignored"
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    values = dict(re.findall(r"^(\w+)=(.*)$", example, re.MULTILINE))
    assert "JUPYTER_TOKEN" not in values  # left to JupyterLab, which makes up a random one (issue 17)
    for name, value in values.items():
        if re.search(r"TOKEN|PASSWORD|SECRET", name):
            assert PLACEHOLDER.match(value), f"{name} in .env.example looks like a real secret"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of listening TCP sockets on `port`, from /proc (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_embedded_broker_listens_on_loopback_only(figures):
    with EmbeddedBroker() as broker:
        addresses = _listening_addresses(broker.port)
    assert addresses == {"0100007F"}, f"the broker listens on {addresses} (0100007F is 127.0.0.1)"


def test_make_lab_serves_on_loopback_with_a_fresh_token(monkeypatch):
    """What tests/test_lab.py checks end to end, here for the command line alone (no server started)."""
    command = lab.jupyter_command(8888)
    assert "--ip=127.0.0.1" in command
    assert not any("token=" in part.lower() or "disable_check_xsrf" in part.lower() for part in command)
    seen = []
    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("JUPYTER_PORT", str(free_port()))  # a JupyterLab of the learner's may hold 8888
    monkeypatch.setattr(lab, "run_until_stopped", lambda command, env: seen.append(env) or 0)
    lab.main()
    lab.main()
    tokens = [env["JUPYTER_TOKEN"] for env in seen]
    assert all(len(token) >= 24 for token in tokens) and tokens[0] != tokens[1]
