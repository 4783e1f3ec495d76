"""One list of learning goals (issue 26): the README's and TEACHERS.md's agree word for word, it has about six
goals, and TEACHERS.md says where each one is practised. (tests/test_quiz.py: each has two quiz questions.)"""

from __future__ import annotations

import re

from tests.test_docs import REPO

ITEM = re.compile(r"^\d+\. (?P<text>.+?)(?=^\d+\. |\Z)", re.MULTILINE | re.DOTALL)
NAME = re.compile(r"^\*\*(?P<name>[^*]+?)\.\*\* ")


def numbered_list(markdown: str) -> list[str]:
    """The first numbered list in some Markdown, one entry per item, whitespace collapsed."""
    start = re.search(r"^1\. ", markdown, re.MULTILINE).start()
    block = re.split(r"\n\s*\n(?!\s)", markdown[start:], maxsplit=1)[0]  # up to the first unindented paragraph
    return [" ".join(m["text"].split()) for m in ITEM.finditer(block)]


def numbered_list_after(document: str, heading: str) -> list[str]:
    text = (REPO / document).read_text(encoding="utf-8")
    assert heading in text, f"{document} has no {heading!r}"
    return numbered_list(text.split(heading, 1)[1])


def readme_goals() -> list[str]:
    return numbered_list_after("README.md", "**After this tutorial you can**")


def teachers_goals() -> list[str]:
    return numbered_list_after("TEACHERS.md", "## Learning goals")


def test_readme_and_teachers_list_the_same_goals():
    assert readme_goals() == teachers_goals()


def test_about_six_goals_each_with_a_bold_name():
    names = [NAME.match(goal) for goal in teachers_goals()]
    assert 5 <= len(names) <= 7 and all(names), teachers_goals()


def test_teachers_says_where_each_goal_is_practised():
    section = (REPO / "TEACHERS.md").read_text(encoding="utf-8").split("## Learning goals", 1)[1].split("\n## ", 1)[0]
    practised = set(re.findall(r"^\| (?P<goal>[^|]+?) \| (?!---)", section, re.MULTILINE)) - {"goal"}
    assert practised == {NAME.match(goal)["name"] for goal in teachers_goals()}


def test_the_list_reader_takes_every_item_and_stops_at_the_list_end():
    markdown = "Intro.\n\n1. **A.** one\n   two\n2. **B.** three\n\nAfter.\n\n1. **C.** not this one\n"
    assert numbered_list(markdown) == ["**A.** one two", "**B.** three"]
