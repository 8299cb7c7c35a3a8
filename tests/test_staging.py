"""Stage-level atomicity: a stage folder holds complete outputs or none, never a mix."""

from __future__ import annotations

from pathlib import Path

from cxrlib.pipeline import fingerprint, staging

CACHE = "images"  # a reusable output, as stage 01's image cache


def _complete(folder: Path, tag: str) -> None:
    """A finished stage run: outputs, a reusable cache, and the completion record."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.csv").write_text(tag)
    (folder / CACHE).mkdir(exist_ok=True)
    (folder / CACHE / "pixels.u8").write_text(f"cache {tag}")
    fingerprint.write_record(
        folder, stage="01_x", notebook_sha="n", parameters={}, upstream={}, wall_s=0.0
    )


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != fingerprint.RECORD_NAME
    }


def test_a_rerun_starts_empty_but_keeps_the_reusable_cache(tmp_path):
    folder = tmp_path / "01_x"
    _complete(folder, "old")
    run = staging.StageFolder(folder, reusable=(CACHE,))
    run.begin()
    assert _files(folder) == {"images/pixels.u8": "cache old"}  # old results are not mixed in
    assert not fingerprint.record_path(folder).exists()
    _complete(folder, "new")
    run.commit()
    assert _files(folder) == {"result.csv": "new", "images/pixels.u8": "cache new"}
    assert not staging.previous_path(folder).exists()


def test_a_failed_rerun_restores_the_previous_results(tmp_path):
    folder = tmp_path / "01_x"
    _complete(folder, "old")
    record = fingerprint.record_path(folder).read_bytes()
    run = staging.StageFolder(folder, reusable=(CACHE,))
    run.begin()
    (folder / "result.csv").write_text("half")
    (folder / "extra.png").write_text("half")
    run.rollback()
    assert _files(folder) == {"result.csv": "old", "images/pixels.u8": "cache old"}
    assert fingerprint.record_path(folder).read_bytes() == record
    assert not staging.previous_path(folder).exists()


def test_a_failed_first_run_leaves_only_the_reusable_cache(tmp_path):
    folder = tmp_path / "01_x"
    run = staging.StageFolder(folder, reusable=(CACHE,))
    run.begin()
    (folder / CACHE).mkdir()
    (folder / CACHE / "pixels.u8").write_text("half-built, resumable")
    (folder / "result.csv").write_text("half")
    (folder / ".checkpoints.ab12.tmp").mkdir()
    run.rollback()
    assert _files(folder) == {"images/pixels.u8": "half-built, resumable"}


def test_a_run_killed_outright_is_rolled_back_by_the_next_one(tmp_path):
    folder = tmp_path / "01_x"
    _complete(folder, "old")
    staging.StageFolder(folder, reusable=(CACHE,)).begin()
    (folder / "result.csv").write_text("half")  # ... then SIGKILL: no rollback ran
    assert staging.interrupted(folder)
    assert staging.recover(folder, reusable=(CACHE,))
    assert _files(folder) == {"result.csv": "old", "images/pixels.u8": "cache old"}
    assert not staging.interrupted(folder)
    assert not staging.recover(folder, reusable=(CACHE,))  # nothing left to undo


def test_a_partial_folder_without_record_is_emptied_not_kept(tmp_path):
    """A first run killed outright leaves a folder without a record and nothing aside."""
    folder = tmp_path / "01_x"
    folder.mkdir()
    (folder / "result.csv").write_text("half")
    (folder / ".checkpoints.ab12.tmp").mkdir()
    (folder / CACHE).mkdir()
    (folder / CACHE / "pixels.u8").write_text("resumable")
    run = staging.StageFolder(folder, reusable=(CACHE,))
    run.begin()
    assert _files(folder) == {"images/pixels.u8": "resumable"}
    assert [p.name for p in folder.iterdir()] == [CACHE]
    run.rollback()
    assert _files(folder) == {"images/pixels.u8": "resumable"}
