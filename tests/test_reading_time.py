"""Half the reading (issue 26): the prose a learner must read, per notebook, stays under its limit.

Core prose is the markdown outside collapsed "Going deeper" sections; those hold what production adds and the
background, and no task needs them. Steps 1 to 3b together: at most about 3,500 words.
"""

import re

import nbformat
import pytest

from tests.notebooks import SRC

CORE_PROSE_LIMITS = {
    "step_1_data_prep.ipynb": 800,
    "step_2_producer.ipynb": 800,
    "step_3_event_processing.ipynb": 1200,
    "step_3b_consumer_group.ipynb": 600,
}
GOING_DEEPER = re.compile(r"<details>\s*<summary>Going deeper: [^<]+</summary>.*?</details>", re.DOTALL)


def markdown_of(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]


def core_prose_words(notebook: nbformat.NotebookNode) -> int:
    """Words a learner must read: the markdown outside collapsed "Going deeper" sections."""
    return sum(len(GOING_DEEPER.sub("", text).split()) for text in markdown_of(notebook))


def test_core_prose_words_count_everything_but_going_deeper():
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("One two three."),
            nbformat.v4.new_markdown_cell("Four.\n\n<details><summary>Going deeper: x</summary>\n\nnot\n</details>"),
            nbformat.v4.new_code_cell("not prose"),
        ]
    )
    assert core_prose_words(notebook) == 4


@pytest.mark.parametrize("name", CORE_PROSE_LIMITS)
def test_core_prose_is_within_its_limit_and_the_rest_is_collapsed(name):
    notebook = nbformat.read(SRC / name, as_version=4)
    assert core_prose_words(notebook) <= CORE_PROSE_LIMITS[name]
    deeper = [text for text in markdown_of(notebook) if "Going deeper" in text]
    assert deeper, f"{name} has no Going deeper section"
    for text in deeper:  # every one is a whole, closed <details> block
        assert text.count("Going deeper") == len(GOING_DEEPER.findall(text)) == text.count("</details>")


def test_steps_1_to_3b_together_are_at_most_3500_words():
    notebooks = [nbformat.read(SRC / name, as_version=4) for name in CORE_PROSE_LIMITS]
    assert sum(map(core_prose_words, notebooks)) <= 3500
