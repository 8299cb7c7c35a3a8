"""``run_all.py`` on the tiny profile: every stage runs, a second run skips them all, a lost
artifact re-runs exactly its stage and the stages downstream of it, and another CPU prints the
same regression cells."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cxrlib.paths import PROJECT_ROOT
from cxrlib.pipeline.stages import STAGES

pytestmark = pytest.mark.slow


#: Another CPU, emulated: PyTorch's kernels without vectorisation, oneDNN at SSE4.1, NumPy
#: without AVX2 / AVX-512, one thread. Users' machines take other kernel paths than this one.
OTHER_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4",
    "OMP_NUM_THREADS": "1",
}
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def _run_all(run_dir: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "run_all.py", "--profile", "tiny", "--run-dir", str(run_dir), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, **(env or {})},
    )


def checked_outputs(run_dir: Path) -> dict[str, list[str]]:
    """Per executed notebook, the text outputs of its ``# NBVAL_CHECK_OUTPUT`` cells."""
    found = {}
    for path in sorted((run_dir / "notebooks").glob("*.ipynb")):
        texts = []
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and CHECK_MARK in cell.source:
                for output in cell.outputs:
                    data = output.get("data", {})
                    texts.append(output.get("text") or data.get("text/plain", ""))
        found[path.name] = texts
    return found


def _downstream(name: str) -> set[str]:
    """``name`` and every stage that reads it, directly or not."""
    found = {name}
    for stage in STAGES:  # pipeline order: upstream stages come first
        if found.intersection(stage.upstream):
            found.add(stage.name)
    return found


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One run of the tiny profile on this CPU, shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    return run_dir, _run_all(run_dir)


def test_tiny_profile_runs_and_resumes(tiny_run):
    run_dir, first = tiny_run
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in STAGES:
        assert (run_dir / stage.name / ".stage.json").is_file()
        for rel in stage.outputs:
            assert (run_dir / stage.name / rel).exists(), f"{stage.name} did not write {rel}"
        assert (run_dir / "notebooks" / Path(stage.notebook).name).is_file()
    assert (run_dir / "run.json").is_file()
    assert f"results: {run_dir}" in first.stdout

    second = _run_all(run_dir)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [ln for ln in second.stdout.splitlines() if ln.startswith("run  ")] == []

    lost = STAGES[len(STAGES) // 2]  # a middle stage: its upstream must not re-run
    (run_dir / lost.name / lost.outputs[0]).unlink()
    third = _run_all(run_dir)
    assert third.returncode == 0, third.stdout + third.stderr
    reran = {
        ln.split()[1].rstrip(":") for ln in third.stdout.splitlines() if ln.startswith("run  ")
    }
    assert reran == _downstream(lost.name)


def test_another_cpu_prints_the_same_regression_cells(tiny_run, tmp_path):
    """What nbval compares must not depend on the CPU: run the tiny profile under an emulated
    other CPU and compare every ``# NBVAL_CHECK_OUTPUT`` cell's output with this CPU's."""
    here, first = tiny_run
    assert first.returncode == 0, first.stdout + first.stderr
    there = tmp_path / "there"
    other = _run_all(there, env=OTHER_CPU)
    assert other.returncode == 0, other.stdout + other.stderr
    mine, theirs = checked_outputs(here), checked_outputs(there)
    assert set(mine) == {Path(s.notebook).name for s in STAGES}
    assert all(mine.values()), "every notebook has regression cells"
    for name in mine:
        assert mine[name] == theirs[name], name
