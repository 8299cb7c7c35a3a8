"""Output paths are checked before the work: one clear error naming the option and the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlib import atomic


def test_a_new_file_in_missing_folders_is_writable(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.csv"
    assert atomic.check_writable(target) == target
    assert not (tmp_path / "a").exists()  # checking creates nothing


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        ("folder", IsADirectoryError, "--out {t} is a folder; give a file path instead"),
        ("below_file", NotADirectoryError, "--out {t}: {p} is a file, not a folder"),
    ],
)
def test_paths_that_cannot_be_files(tmp_path: Path, make: str, error, message: str) -> None:
    parent = tmp_path / "x"
    if make == "folder":
        parent.mkdir()
        target = parent
    else:
        parent.write_text("")
        target = parent / "sub" / "out.csv"
    with pytest.raises(error) as raised:
        atomic.check_writable(target)
    assert str(raised.value) == message.format(t=target, p=parent)


def test_read_only_folder(tmp_path: Path, monkeypatch) -> None:
    # os.access is replaced so the test means the same as root (who may write anywhere).
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(PermissionError, match=f"--table {tmp_path / 'new.csv'}: no permission"):
        atomic.check_writable(tmp_path / "new.csv", what="--table")


def test_folder_targets(tmp_path: Path) -> None:
    assert atomic.check_writable(tmp_path / "run", what="run folder", folder=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="run folder .*file is a file; give a folder"):
        atomic.check_writable(tmp_path / "file", what="run folder", folder=True)
