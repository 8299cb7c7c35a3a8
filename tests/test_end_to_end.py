"""``run_all.py`` on the tiny profile: every stage runs, a second run skips them all, and a lost
artifact re-runs exactly its stage and the stages downstream of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cxrlib.paths import NOTEBOOKS_DIR, PROJECT_ROOT
from cxrlib.pipeline.stages import STAGES

pytestmark = pytest.mark.slow


def _run_all(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "run_all.py", "--profile", "tiny", "--run-dir", str(run_dir), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _downstream(name: str) -> set[str]:
    """``name`` and every stage that reads it, directly or not."""
    found = {name}
    for stage in STAGES:  # pipeline order: upstream stages come first
        if found.intersection(stage.upstream):
            found.add(stage.name)
    return found


def test_tiny_profile_runs_and_resumes(tmp_path):
    missing = [s.notebook for s in STAGES if not (NOTEBOOKS_DIR / s.notebook).is_file()]
    if missing:
        pytest.skip(f"stage notebooks not written yet: {', '.join(missing)}")
    run_dir = tmp_path / "run"
    first = _run_all(run_dir)
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
