"""The adapted open educational resource is credited as CC BY-SA 4.0 requires: title, authors, institution,
project, funder, licence, and what was changed (LICENSE.md, CITATION.cff `references`, README)."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
import yaml

from pm25.config import REPO_DIR

TITLE = "OER on analyzing IoT air quality data streams using Kafka and Jupyter Notebooks"
AUTHORS = ("Jaskaran Puri", "Albert Remke", "Sandhya Rajendran", "Thomas Kujawa")
CREDIT = (TITLE, *AUTHORS, "University of Münster", "OER4SDI", "Ministry of Culture and Science", "CC BY-SA 4.0")


def citation() -> dict:
    return yaml.safe_load((REPO_DIR / "CITATION.cff").read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", ["LICENSE.md", "README.md"])
def test_document_credits_the_original_in_full(document):
    text = " ".join((REPO_DIR / document).read_text(encoding="utf-8").split())
    assert [part for part in CREDIT if part not in text] == []


def test_license_says_what_was_changed():
    text = (REPO_DIR / "LICENSE.md").read_text(encoding="utf-8")
    assert "**What we changed.**" in text


def test_citation_references_the_original_with_its_authors():
    original = next(ref for ref in citation()["references"] if ref["title"] == TITLE)
    names = [f"{author['given-names']} {author['family-names']}" for author in original["authors"]]
    assert (names, original["license"]) == (list(AUTHORS), ["CC-BY-SA-4.0", "MIT"])
    assert "OER4SDI" in original["notes"] and "Ministry of Culture and Science" in original["notes"]


def test_citation_file_is_valid_citation_file_format():
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/citation-file-format.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(json.dumps(citation(), default=str)), schema)
