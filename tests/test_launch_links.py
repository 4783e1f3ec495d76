"""Launch links launch this tutorial: `make launch-links` builds them from the git remote, the README links no
other repository's launch, and CITATION.cff names no code repository of its own until one is known (issue 26)."""

from __future__ import annotations

import os
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from pm25.classroom.launch_links import github_repository, launch_links
from tests.test_docs import REPO, all_links

LAUNCHERS = {"mybinder.org", "codespaces.new", "gitpod.io", "colab.research.google.com"}


def cited_code_repository() -> str | None:
    """owner/name of the tutorial's own code repository in CITATION.cff (not the references'), or None."""
    url = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8")).get("repository-code")
    return github_repository(url) if url else None


def launched_repository(url: str) -> str | None:
    """owner/name a launch link starts (a Binder or Codespaces link), else None for any other link."""
    parts = urlsplit(url)
    host = parts.netloc.removeprefix("www.")
    if host not in LAUNCHERS and not (host == "github.com" and parts.path.startswith("/codespaces")):
        return None
    segments = [s for s in parts.path.split("/") if s]
    if host == "mybinder.org" and segments[:2] == ["v2", "gh"]:
        return "/".join(segments[2:4])
    return "/".join(segments[-2:]) if len(segments) >= 2 else "?"


def run_make_launch_links(tmp_path, remote: str | None) -> subprocess.CompletedProcess:
    """`make launch-links` in this repository, with git answering from a fresh repository with that remote."""
    subprocess.run(["git", "init", "--quiet", tmp_path], check=True)
    if remote:
        subprocess.run(["git", "-C", tmp_path, "remote", "add", "origin", remote], check=True)
    env = {**os.environ, "GIT_DIR": str(tmp_path / ".git")}
    return subprocess.run(
        ["make", "--no-print-directory", "launch-links"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_no_readme_link_launches_another_repository():
    own = cited_code_repository()
    launching = {
        link.target: launched_repository(link.target)
        for link in all_links()
        if link.document == "README.md" and launched_repository(link.target)
    }
    assert {url: repo for url, repo in launching.items() if repo != own} == {}


def test_the_link_checker_sees_the_old_badges():
    badge = "https://mybinder.org/v2/gh/oer4sdi/OER-spatial-data-streaming/HEAD?urlpath=lab/tree/src/x.ipynb"
    assert launched_repository(badge) == "oer4sdi/OER-spatial-data-streaming"
    assert launched_repository("https://codespaces.new/a/b?quickstart=1") == "a/b"
    assert launched_repository("https://github.com/oer4sdi/OER-spatial-data-streaming") is None


def test_citation_names_no_code_repository_of_its_own_until_one_is_known():
    """The original's repository stays in `references`; the top level names none (this copy's is unknown)."""
    assert cited_code_repository() is None


@pytest.mark.parametrize(
    "remote",
    [
        "https://github.com/a-teacher/pm25-tutorial.git",
        "https://github.com/a-teacher/pm25-tutorial",
        "git@github.com:a-teacher/pm25-tutorial.git",
        "ssh://git@github.com/a-teacher/pm25-tutorial.git",
    ],
)
def test_make_launch_links_prints_the_links_of_the_remote(tmp_path, remote):
    result = run_make_launch_links(tmp_path, remote)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  Binder:     https://mybinder.org/v2/gh/a-teacher/pm25-tutorial/HEAD?urlpath=lab/tree/src/step_1_data_prep.ipynb",
        "  Codespaces: https://codespaces.new/a-teacher/pm25-tutorial?quickstart=1",
    ]


@pytest.mark.parametrize(
    ("remote", "says"),
    [(None, "This copy has no git remote"), ("https://gitlab.com/a/b.git", "is not a GitHub repository")],
)
def test_make_launch_links_says_when_there_is_none(tmp_path, remote, says):
    result = run_make_launch_links(tmp_path, remote)
    assert result.returncode != 0
    assert says in result.stderr and "OWNER/REPO" in result.stderr
    assert "mybinder.org/v2/gh/" not in result.stdout


def test_the_binder_link_opens_step_1_which_exists():
    binder, _ = launch_links("o/r")
    assert (REPO / binder.split("urlpath=lab/tree/", 1)[1]).exists()
