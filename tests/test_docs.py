"""The documentation's links and images: README.md, TEACHERS.md, LICENSE.md, docs/*.md and the Markdown
cells of every notebook in src/.

Every relative link and image must point to a file that exists (an anchor into a Markdown file must
match one of its headings); every image needs alt text. External links are only collected, never
fetched: list them with `.venv/bin/python tests/test_docs.py`.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(page.relative_to(REPO).as_posix() for page in (REPO / "docs").glob("*.md"))
MARKDOWN_FILES = ["README.md", "TEACHERS.md", "LICENSE.md", *DOCS]
# Linked from docs/developers.md before they are written (by other branches). A missing one is reported as
# xfail, not as a pass; once the file exists its links are checked like any other. Empty this set when they land.
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"(?P<image>!?)\[(?P<text>[^\]]*)\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s|$)", re.MULTILINE)
AUTOLINK = re.compile(r"<(?P<target>https?://[^>\s]+)>")
HTML_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
HTML_ATTR = re.compile(r"""(?P<name>src|alt)\s*=\s*(?P<q>["'])(?P<value>.*?)(?P=q)""", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(?P<title>.+?)[ \t#]*$", re.MULTILINE)


@dataclass(frozen=True)
class Link:
    document: str  # where the link is, e.g. "README.md" or "src/self_tests.ipynb"
    base: Path  # the folder relative targets start from
    target: str
    image: bool
    alt: str


def documents() -> dict[str, tuple[Path, str]]:
    """Each document's name, the folder its links start from, and its Markdown."""
    found = {name: ((REPO / name).parent, (REPO / name).read_text(encoding="utf-8")) for name in MARKDOWN_FILES}
    for notebook in sorted((REPO / "src").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        markdown = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        found[notebook.relative_to(REPO).as_posix()] = (notebook.parent, markdown)
    return found


def without_code(markdown: str) -> str:
    return INLINE_CODE.sub("CODE", FENCE.sub("", markdown))


def links_in(document: str, base: Path, markdown: str) -> list[Link]:
    text = without_code(markdown)
    links = [Link(document, base, m["target"], bool(m["image"]), m["text"].strip()) for m in LINK.finditer(text)]
    links += [Link(document, base, m["target"], False, "") for m in REFERENCE.finditer(text)]
    links += [Link(document, base, m["target"], False, "") for m in AUTOLINK.finditer(text)]
    for tag in HTML_IMG.finditer(text):
        attrs = {m["name"].lower(): m["value"] for m in HTML_ATTR.finditer(tag.group())}
        links.append(Link(document, base, attrs.get("src", ""), True, attrs.get("alt", "").strip()))
    return links


def all_links() -> list[Link]:
    return [link for name, (base, text) in documents().items() for link in links_in(name, base, text)]


def is_external(target: str) -> bool:
    return urlsplit(target).scheme in ("http", "https", "mailto", "ftp")


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading keeps its text
    title = title.replace("`", "").strip().lower()
    kept = "".join(c for c in title if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for match in HEADING.finditer(FENCE.sub("", markdown)):
        base = slug(match["title"])
        found.add(base if base not in counts else f"{base}-{counts[base]}")
        counts[base] = counts.get(base, 0) + 1
    return found


def problem(link: Link) -> str | None:
    """What is wrong with a relative link, or None."""
    parts = urlsplit(link.target)
    path = (link.base / unquote(parts.path)).resolve() if parts.path else None
    if path is not None and not path.exists():
        return f"{link.document}: {link.target} does not exist"
    if parts.fragment:
        anchored = path or (REPO / link.document)
        checkable = anchored.suffix == ".md" and anchored.exists()
        if checkable and parts.fragment.lower() not in anchors(anchored.read_text(encoding="utf-8")):
            return f"{link.document}: no heading for #{parts.fragment} in {anchored.relative_to(REPO)}"
    return None


DOCUMENTS = list(documents())


@pytest.mark.parametrize("document", DOCUMENTS)
def test_relative_links_and_images_exist(document):
    base, markdown = documents()[document]
    relative = [link for link in links_in(document, base, markdown) if not is_external(link.target)]
    assert [p for link in relative if (p := problem(link))] == []


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_image_has_alt_text(document):
    base, markdown = documents()[document]
    images = [link for link in links_in(document, base, markdown) if link.image]
    assert [link.target for link in images if not link.alt] == []


def test_the_readme_shows_the_three_diagrams():
    images = {link.target for link in all_links() if link.document == "README.md" and link.image}
    assert {"img/architecture.svg", "img/kafka_concepts.svg", "img/detector_window.svg"} <= images


def test_every_diagram_source_has_a_rendered_svg():
    sources = sorted((REPO / "img").glob("*.dot"))
    assert sources
    assert [s.name for s in sources if not s.with_suffix(".svg").exists()] == []


def test_external_links_are_well_formed():
    external = sorted({link.target for link in all_links() if is_external(link.target)})
    print("\nExternal links (not fetched):\n" + "\n".join(external))
    assert [url for url in external if not urlsplit(url).netloc and not url.startswith("mailto:")] == []


def test_license_names_both_licences():
    text = (REPO / "LICENSE.md").read_text(encoding="utf-8")
    assert "CC-BY-SA 4.0" in text
    assert "MIT License" in text


# The checker itself, on small examples.


def test_checker_finds_a_missing_file(tmp_path):
    link = links_in("x.md", tmp_path, "see [this](missing.md)")[0]
    assert "does not exist" in problem(link)


def test_checker_finds_an_image_without_alt_text(tmp_path):
    links = links_in("x.md", tmp_path, '![](a.svg) and <img src="b.svg">')
    assert [link.alt for link in links if link.image] == ["", ""]


def test_checker_ignores_links_in_code(tmp_path):
    assert links_in("x.md", tmp_path, "```\n[a](nowhere.md)\n```\n`[b](nowhere.md)`") == []


def test_checker_finds_a_wrong_anchor():
    link = Link("README.md", REPO, "TEACHERS.md#no-such-heading", False, "")
    assert "no heading" in problem(link)


def test_slug_follows_github():
    assert slug("Option B: `make lab` (no Docker)") == "option-b-make-lab-no-docker"
    assert slug("Particulate matter and why PM2.5 matters") == "particulate-matter-and-why-pm25-matters"


if __name__ == "__main__":
    for url in sorted({link.target for link in all_links() if is_external(link.target)}):
        print(url)


# -- the package's names in the notebooks: every `pm25.…` a learner reads or runs exists ---------------------

DOTTED = re.compile(r"(?<![\w.])(?P<first>[A-Za-z_]\w*)(?P<rest>(?:\.[A-Za-z_]\w*)+)")


def package_names(notebook: Path) -> set[str]:
    """The package's names a notebook uses or mentions, as `pm25.module.Name`: its imports from pm25, the
    attributes it uses of the modules it imported (unless it binds the name to something else), and the
    dotted names in backticks in its Markdown (`pm25.rules.detector.Detector`, `delivery.DeliveryReport`)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    names, modules, bound, used = set(), {"pm25": "pm25"}, set(), []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        tree = ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pm25":
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
                modules |= {alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                used.append(ast.unparse(node))
    mentioned = [
        code
        for cell in cells
        if cell["cell_type"] == "markdown"
        for code in re.findall(r"`([^`\n]+)`", "".join(cell["source"]))
    ]
    for text in [*used, *mentioned]:
        for found in DOTTED.finditer(text):
            if found["first"] in modules and found["first"] not in bound:
                names.add(modules[found["first"]] + found["rest"])
    return names


def missing_name(dotted: str) -> str | None:
    """None if `dotted` (pm25.module.Name.attribute) names something in the package; else what is missing."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):  # the longest prefix that is a module, then attributes on it
        try:
            found = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for number, attribute in enumerate(parts[end:], start=end):
            if not hasattr(found, attribute):
                return f"{'.'.join(parts[:number])} has no {attribute!r}"
            found = getattr(found, attribute)
        return None
    return f"no module {parts[0]!r}"


@pytest.mark.parametrize("notebook", sorted((REPO / "src").glob("*.ipynb")), ids=lambda path: path.name)
def test_every_package_name_a_notebook_mentions_exists(notebook):
    names = package_names(notebook)
    assert names, "the test found no pm25 name: is the pattern still right?"
    assert {name: problem for name in sorted(names) if (problem := missing_name(name))} == {}


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("The hardened version: `pm25.rules.detector.Detektor`.", "pm25.rules.detector.Detektor"),
        ("What `delivery.DeliveryRaport` counts", "pm25.streaming.delivery.DeliveryRaport"),
        ("report = delivery.DeliveryRaport()", "pm25.streaming.delivery.DeliveryRaport"),
        ("from pm25.rules.detector import Detektor", "pm25.rules.detector.Detektor"),
    ],
)
def test_a_misspelt_package_name_is_reported(tmp_path, text, name):
    cells = [
        {"cell_type": "code", "source": ["from pm25.streaming import delivery"]},
        {"cell_type": "markdown" if "`" in text else "code", "source": [text]},
    ]
    notebook = tmp_path / "step.ipynb"
    notebook.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    assert name in package_names(notebook)
    assert missing_name(name)


def test_a_name_bound_in_the_notebook_is_not_taken_for_the_module(tmp_path):
    notebook = tmp_path / "step.ipynb"
    source = "from pm25.rules import status\nstatus = status.StatusTracker()\nstatus.table()"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [source]}]}), encoding="utf-8")
    assert package_names(notebook) == {"pm25.rules.status"}  # the import, not status.table


STEP_NOTEBOOKS = {
    "1": "step_1_data_prep.ipynb",
    "2": "step_2_producer.ipynb",
    "3": "step_3_event_processing.ipynb",
    "3b": "step_3b_consumer_group.ipynb",
}


def test_one_time_plan_in_the_readme_the_lesson_plan_and_each_notebook():
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    plan = re.search(r"\*\*Time\.\*\* 90 minutes, (.*?)\*\*", readme).group(1)
    minutes = dict(re.findall(r"\bstep (\w+) (\d+)\b", plan))
    background = int(re.search(r"(\d+) minutes of background", plan).group(1))
    wrap_up = int(re.search(r"(\d+) to wrap up", plan).group(1))
    assert minutes.keys() == STEP_NOTEBOOKS.keys()
    assert background + sum(map(int, minutes.values())) + wrap_up == 90
    teachers = (REPO / "TEACHERS.md").read_text(encoding="utf-8")
    for step, name in STEP_NOTEBOOKS.items():
        notebook = json.loads((REPO / "src" / name).read_text(encoding="utf-8"))
        text = "".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown")
        assert re.findall(r"\*\*Time:\*\* (\d+) minutes", text) == [minutes[step]], name
        lesson_plan = re.findall(rf"^\| [\d–]+ \| Step {step}: [^|]*\((\d+) min\)", teachers, re.MULTILINE)
        assert lesson_plan == [minutes[step]], f"TEACHERS.md's lesson plan, step {step}"
