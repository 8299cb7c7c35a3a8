"""The notebook contract (docs/ARCHITECTURE.md), read from the stored notebooks' JSON.

Every stage notebook: a title naming its paper section; a table of how the demo differs from
the paper whose profile columns agree with parameters/ (and which lists every setting the
demo changes); one parameters cell, then a setup cell; step cells of a few lines; an outputs
cell last; no stderr and no bare return values stored (progress bars go to the terminal).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import nbformat
import pytest

from cxrlib.config import load_profile, resolve_parameters
from cxrlib.paths import NOTEBOOKS_DIR
from cxrlib.pipeline.stages import STAGES, parameter_schemas

#: longest step cell (lines of code): a loop longer than this belongs in cxrlib
MAX_STEP_LINES = 12
DIFFERENCES_HEADING = "## This run and the paper"
_ROW = re.compile(r"^\|\s*`(?P<name>\w+)`\s*\|(?P<cells>.*)\|\s*$")


def _notebook(stage) -> nbformat.NotebookNode:
    path = NOTEBOOKS_DIR / stage.notebook
    assert path.is_file(), f"stage {stage.name} has no notebook {path}"
    return nbformat.read(path, as_version=4)


def _resolved() -> tuple[dict, dict]:
    schemas = parameter_schemas()
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "files").mkdir()
        paper = resolve_parameters(load_profile("paper"), schemas, data_root=root)
    demo = resolve_parameters(load_profile("demo"), schemas)
    return paper, demo


def show(value: object) -> str:
    """A parameter value as the notebooks' tables write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_skeleton(stage):
    nb = _notebook(stage)
    cells = nb.cells
    title = cells[0]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {stage.number} · ")
    assert f"(paper section {stage.paper_section})" in title.source.splitlines()[0]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    setup = cells[tagged[0] + 2]
    assert cells[tagged[0] + 1].source.strip() == "## Setup"
    assert setup.cell_type == "code" and setup.source.startswith("# NBVAL_IGNORE_OUTPUT")
    assert cells[-2].source.strip() == "## Outputs" and "list_outputs" in cells[-1].source
    for cell in cells[tagged[0] + 3 : -1]:
        if cell.cell_type != "code":
            continue
        lines = [ln for ln in cell.source.splitlines() if ln.strip()]
        assert len(lines) <= MAX_STEP_LINES, f"a step cell of {len(lines)} lines:\n{cell.source}"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stored_outputs_are_clean(stage):
    for cell in _notebook(stage).cells:
        for output in cell.get("outputs", []):
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"stderr stored in a cell of {stage.notebook}:\n{cell.source}\n{output.text}"
            )
            text = output.get("data", {}).get("text/plain", "")
            assert "PosixPath(" not in text, f"a bare path shown by:\n{cell.source}"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_differences_table_agrees_with_the_profiles(stage):
    """The table lists every setting the demo changes, with both profiles' values."""
    paper, demo = _resolved()
    nb = _notebook(stage)
    sections = [c.source for c in nb.cells if c.source.startswith(DIFFERENCES_HEADING)]
    assert len(sections) == 1, f"{stage.notebook} needs one '{DIFFERENCES_HEADING}' section"
    rows = {}
    for line in sections[0].splitlines():
        match = _ROW.match(line)
        if match:
            cells = [c.strip() for c in match["cells"].split("|")]
            assert len(cells) == 4, f"row of 5 columns expected: {line}"
            rows[match["name"]] = cells
    changed = {
        name
        for name in demo[stage.name]
        if demo[stage.name][name] != paper[stage.name][name] and name != "data_root"
    }
    assert changed <= set(rows), f"settings the demo changes, missing: {changed - set(rows)}"
    for name, (_paper_text, paper_profile, demo_profile, why) in rows.items():
        assert name in demo[stage.name], f"{name} is not a parameter of {stage.name}"
        assert why, f"{name}: say why the demo differs"
        if name == "data_root":  # the paper profile's is the user's own folder
            continue
        assert paper_profile == f"`{show(paper[stage.name][name])}`", name
        assert demo_profile == f"`{show(demo[stage.name][name])}`", name
