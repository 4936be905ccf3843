"""Generated documentation is current: docs/cases.md is exactly what the case registry gives."""
from pathlib import Path

from pdeflow.catalogue import CASE_NOTES, case_catalogue_markdown, domain_short, domain_text
from pdeflow.cases import case_names
from pdeflow.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_cases_md_is_generated_from_the_registry():
    expected = case_catalogue_markdown()
    actual = (DOCS / "cases.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cases.md differs from the case registry: run `make docs`"


def test_every_case_has_a_section_and_notes_name_registered_cases():
    text = case_catalogue_markdown()
    for name in case_names():
        assert f"### `{name}`" in text
    stale = set(CASE_NOTES) - set(case_names())
    assert not stale, f"CASE_NOTES in pdeflow/catalogue.py name cases that are not registered: {sorted(stale)}"


def test_cli_prints_the_catalogue(capsys):
    assert main(["cases", "--markdown"]) == 0
    assert capsys.readouterr().out == case_catalogue_markdown()


def test_domains_are_described_generically():
    box = {"type": "box", "lower": [-5.0, 0.0], "upper": [5.0, 1.0]}
    assert domain_short(box) == "[-5, 5] × [0, 1]" and domain_text(box) == "box [-5, 5] × [0, 1]"
    # a domain type the generator does not know: every key of describe() is printed
    mesh = {"type": "mesh", "mesh": "disk", "geometry": "unit disk", "parameters": {"r": 1.0},
            "lower": [-1.0, -1.0], "upper": [1.0, 1.0]}
    assert domain_short(mesh) == "mesh `disk`"
    assert domain_text(mesh) == "mesh `disk`; geometry = unit disk; parameters = {r: 1}; bounding box [-1, 1] × [-1, 1]"
    assert domain_text({"type": "sphere", "radius": 2.0}) == "sphere; radius = 2"
