"""`make launch-links`: the Binder and Codespaces links that launch this copy of the tutorial.

The links name a GitHub repository, and only git knows which one this copy is: its remote `origin` (or
its first remote). Without a GitHub remote (a ZIP download, a copy not pushed yet) it says so and shows the
pattern. Standard library only, so it runs before `make install`.
"""

from __future__ import annotations

import re
import subprocess
import sys

FIRST_NOTEBOOK = "src/step_1_data_prep.ipynb"
PATTERN = (
    f"  Binder:     https://mybinder.org/v2/gh/OWNER/REPO/HEAD?urlpath=lab/tree/{FIRST_NOTEBOOK}\n"
    "  Codespaces: https://codespaces.new/OWNER/REPO?quickstart=1"
)
# https://github.com/o/r(.git), git@github.com:o/r(.git), ssh://git@github.com/o/r(.git)
GITHUB = re.compile(r"^(?:https://|ssh://git@|git@)github\.com[/:](?P<repo>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")


def github_repository(remote_url: str) -> str | None:
    """owner/name of a GitHub remote URL, else None."""
    found = GITHUB.match(remote_url.strip())
    return found["repo"] if found else None


def launch_links(repository: str) -> tuple[str, str]:
    """The Binder link (opens step 1 in JupyterLab) and the Codespaces link of a GitHub repository."""
    return (
        f"https://mybinder.org/v2/gh/{repository}/HEAD?urlpath=lab/tree/{FIRST_NOTEBOOK}",
        f"https://codespaces.new/{repository}?quickstart=1",
    )


def remote_url() -> str | None:
    """The URL of the remote `origin`, else of the first remote; None without one (or without git)."""
    try:
        names = subprocess.run(["git", "remote"], capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    if not names:
        return None
    name = "origin" if "origin" in names else names[0]
    return subprocess.run(["git", "remote", "get-url", name], capture_output=True, text=True).stdout.strip() or None


def main() -> int:
    url = remote_url()
    repository = github_repository(url) if url else None
    if repository is None:
        where = f"Its remote {url} is not a GitHub repository" if url else "This copy has no git remote"
        print(
            f"No launch links: {where}. Binder and Codespaces launch a repository on "
            "GitHub: push this copy there (or add it: git remote add origin https://github.com/OWNER/REPO), "
            f"then run make launch-links again. The pattern:\n{PATTERN}",
            file=sys.stderr,
        )
        return 1
    binder, codespaces = launch_links(repository)
    print(f"Launch links for {repository} (the branch GitHub shows first):")
    print(f"  Binder:     {binder}")
    print(f"  Codespaces: {codespaces}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
