"""The labeler's command lines: labelling a CSV, --prefix, --explain, the scoring tool, errors."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cxrlib import atomic
from cxrlib.cli import run_cli
from cxrlib.labeler import score
from cxrlib.labeler.command import main as labeler_main
from cxrlib.mimic.layout import CHEXPERT_LABELS

P, N, U = 1.0, 0.0, -1.0
EDEMA, EFF, NOF, PNEU = "Edema", "Pleural Effusion", "No Finding", "Pneumonia"


def _write(path: Path, columns: dict[str, list[str]]) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# --- labelling a CSV ---------------------------------------------------------------------------
def test_cli_writes_input_columns_and_labels(tmp_path: Path, capsys) -> None:
    source = _write(
        tmp_path / "reports.csv",
        {
            "study_id": ["50000001", "50000002", "50000003", "50000004"],
            "report": ["No effusion or pneumothorax.", "Possible pneumonia.", "", "NaN"],
        },
    )
    out = tmp_path / "out" / "labels.csv"
    argv = [str(source), "--text-column", "report", "--out", str(out), "--no-progress"]
    assert run_cli(labeler_main, argv) == 0
    written = pd.read_csv(out, dtype={"study_id": str}, keep_default_na=False, na_values=[""])
    assert list(written.columns) == ["study_id", "report", *CHEXPERT_LABELS]
    assert written["study_id"].tolist() == ["50000001", "50000002", "50000003", "50000004"]
    assert written.loc[0, EFF] == N and written.loc[0, NOF] == P
    assert written.loc[1, PNEU] == U and math.isnan(written.loc[1, NOF])
    assert written.loc[2, list(CHEXPERT_LABELS)].isna().all()
    # The text "NaN" is copied unchanged and is not labelled (not "No Finding").
    assert written.loc[3, "report"] == "NaN"
    assert written.loc[3, list(CHEXPERT_LABELS)].isna().all()
    raw = out.read_text().splitlines()
    # 8 empty labels, No Finding 1.0, Effusion 0.0, 2 empty, Pneumothorax 0.0, Support Devices
    assert raw[1] == "50000001,No effusion or pneumothorax.,,,,,,,,,1.0,0.0,,,0.0,"
    assert "labelled 4 reports" in capsys.readouterr().out


def test_prefix_labels_a_table_that_already_has_labels(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path / "gold.csv", {"t": ["Mild pulmonary edema."], EDEMA: ["1"]})
    out = tmp_path / "o.csv"
    argv = [str(source), "--text-column", "t", "--out", str(out), "--no-progress"]
    # Without a prefix: one clear error that names the way out.
    assert run_cli(labeler_main, argv) == 2
    err = _error(capsys)
    assert "already has label columns ['Edema']" in err and "--prefix" in err
    assert not out.exists()
    # With one: the input's columns untouched, the labels beside them.
    assert run_cli(labeler_main, [*argv, "--prefix", "pred_"]) == 0
    written = pd.read_csv(out)
    assert list(written.columns) == ["t", EDEMA, *(f"pred_{c}" for c in CHEXPERT_LABELS)]
    assert written.loc[0, EDEMA] == 1 and written.loc[0, "pred_Edema"] == P
    # A prefix that clashes too is refused.
    _write(source, {"t": ["x"], "pred_Edema": ["1"]})
    assert run_cli(labeler_main, [*argv, "--prefix", "pred_"]) == 2
    assert "choose another --prefix" in _error(capsys)


def test_explain_prints_phrase_and_trigger_of_each_label(tmp_path: Path, capsys) -> None:
    source = _write(
        tmp_path / "r.csv",
        {"t": ["No effusion.", "No pneumothorax. Possible pneumonia. Decompensated CHF."]},
    )
    assert run_cli(labeler_main, [str(source), "--text-column", "t", "--explain", "1"]) == 0
    out = capsys.readouterr().out
    lines = {
        line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()
    }
    assert "uncertain" in lines["Pneumonia"] and "'pneumonia'" in lines["Pneumonia"]
    assert "trigger 'possible'" in lines["Pneumonia"]
    assert "negative" in lines["Pneumothorax"] and "trigger 'no'" in lines["Pneumothorax"]
    assert "heart failure" in lines["Cardiomegaly"]
    assert "ruled out" in out and "not mentioned" in lines["Fracture"]
    assert "in: 'possible pneumonia.'" in out
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", ["missing.csv", "--text-column", "t"], "input CSV not found"),
        ("ok", ["in.csv", "--text-column", "nope"], "has no column 'nope'"),
        ("clash", ["in.csv", "--text-column", "t"], "already has label columns"),
        ("empty", ["in.csv", "--text-column", "t"], "cannot read"),
        ("folder", ["in.csv", "--text-column", "t"], "is a folder; give a CSV file"),
    ],
)
def test_cli_user_errors(tmp_path: Path, capsys, setup: str, args: list[str], message: str):
    if setup == "ok":
        _write(tmp_path / "in.csv", {"t": ["No effusion."]})
    elif setup == "clash":
        _write(tmp_path / "in.csv", {"t": ["x"], EDEMA: ["1.0"]})
    elif setup == "empty":
        (tmp_path / "in.csv").write_text("")
    elif setup == "folder":
        (tmp_path / "in.csv").mkdir()
    argv = [str(tmp_path / args[0]), *args[1:], "--out", str(tmp_path / "o.csv")]
    assert run_cli(labeler_main, argv) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "o.csv").exists()


def test_explain_row_out_of_range(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path / "r.csv", {"t": ["No effusion."]})
    assert run_cli(labeler_main, [str(source), "--text-column", "t", "--explain", "3"]) == 2
    assert "has 1 data rows; give a row number from 0 to 0" in _error(capsys)


def test_out_or_explain_is_required(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", {"t": ["No effusion."]})
    with pytest.raises(SystemExit):  # argparse's usage error, exit status 2
        labeler_main([str(source), "--text-column", "t"])


# --- output and input paths, checked before the work (issue: errors after the work) ----------
def test_out_that_is_a_folder_fails_before_labelling(tmp_path: Path, capsys, monkeypatch) -> None:
    source = _write(tmp_path / "r.csv", {"t": ["No effusion."]})
    monkeypatch.setattr(
        "cxrlib.labeler.command.label_reports", pytest.fail
    )  # the check must come first
    argv = [str(source), "--text-column", "t", "--out", str(tmp_path)]
    assert run_cli(labeler_main, argv) == 2
    assert f"--out {tmp_path} is a folder; give a file path" in _error(capsys)


def test_out_below_a_file_fails_before_labelling(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path / "r.csv", {"t": ["No effusion."]})
    out = source / "labels.csv"  # "r.csv" is a file, not a folder
    assert run_cli(labeler_main, [str(source), "--text-column", "t", "--out", str(out)]) == 2
    assert f"--out {out}: {source} is a file, not a folder" in _error(capsys)


def test_out_in_a_read_only_folder_fails_before_labelling(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    # os.access is replaced so the check is tested the same as root and as a user.
    source = _write(tmp_path / "r.csv", {"t": ["No effusion."]})
    out = tmp_path / "sub" / "o.csv"
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    monkeypatch.setattr("cxrlib.labeler.command.label_reports", pytest.fail)
    assert run_cli(labeler_main, [str(source), "--text-column", "t", "--out", str(out)]) == 2
    assert f"--out {out}: no permission to write in {tmp_path}" in _error(capsys)
    assert not out.parent.exists()


def test_unreadable_input_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    source = _write(tmp_path / "r.csv", {"t": ["No effusion."]})

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(source))

    monkeypatch.setattr("cxrlib.labeler._io.pd.read_csv", denied)
    argv = [str(source), "--text-column", "t", "--out", str(tmp_path / "o.csv")]
    assert run_cli(labeler_main, argv) == 2
    assert f"cannot read {source}: permission denied" in _error(capsys)


# --- the scoring tool --------------------------------------------------------------------------
GOLD = {
    "report_text": [
        "Small right pleural effusion.",  # effusion 1
        "No effusion. Possible pneumonia.",  # effusion 0, pneumonia -1
        "Possible small effusion.",  # effusion -1
        "No acute process.",  # No Finding 1
    ],
    "Pleural Effusion (gold)": ["1", "0", "1", "0"],
    "Pneumonia (gold)": ["0", "1", "", "0"],
    "No Finding (gold)": ["0", "0", "0", "1"],
}


def test_score_per_finding_and_macro(tmp_path: Path) -> None:
    table = score.score_csv(_write(tmp_path / "g.csv", GOLD), text_column="report_text")
    got = table.set_index(["finding", "uncertain_as"])
    # Effusion, uncertain as negative: predicted present [1, 0, 0, 0] vs gold [1, 0, 1, 0].
    assert got.loc[(EFF, "negative"), ["precision", "recall"]].tolist() == [1.0, 0.5]
    assert got.loc[(EFF, "negative"), "f1"] == pytest.approx(2 / 3)
    assert got.loc[(EFF, "positive"), "f1"] == 1.0  # the hedged one counts
    # Pneumonia: the hedge is missed as negative, found as positive.
    assert got.loc[(PNEU, "negative"), "f1"] == 0.0 and got.loc[(PNEU, "positive"), "f1"] == 1.0
    assert got.loc[(PNEU, "negative"), ["support", "predicted"]].tolist() == [1, 0]
    # The macro averages the findings, not No Finding.
    assert got.loc[("macro", "negative"), "f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert got.loc[("macro", "positive"), "f1"] == 1.0
    assert got.loc[(NOF, "negative"), "f1"] == 1.0
    assert table.attrs["reports"] == 4


def test_score_cli_prints_both_conventions(tmp_path: Path, capsys) -> None:
    gold = _write(tmp_path / "g.csv", GOLD)
    out = tmp_path / "scores.csv"
    argv = [str(gold), "--text-column", "report_text", "--out", str(out)]
    assert run_cli(score.main, argv) == 0
    printed = capsys.readouterr().out
    assert "4 reports, 3 labels with gold columns" in printed
    assert "uncertain as negative" in printed and "uncertain as positive" in printed
    assert "macro (findings)" in printed and "better convention" in printed
    assert len(pd.read_csv(out)) == 2 * 3 + 2  # 3 labels and the macro, both conventions


@pytest.mark.parametrize(
    ("columns", "args", "message"),
    [
        (None, [], "input CSV not found"),
        ({"report_text": ["x"]}, [], "has no gold columns: expected columns named"),
        ({"text": ["x"], "Edema (gold)": ["1"]}, [], "has no column 'report_text'"),
        ({"report_text": ["x"], "Edema (gold)": ["yes"]}, [], "row 0 holds 'yes'"),
        ({"report_text": [], "Edema (gold)": []}, [], "has a header but no rows"),
        ({"report_text": ["x"], "Edema (gold)": ["1"]}, ["--gold-suffix", "_gt"], "no gold"),
    ],
)
def test_score_user_errors(tmp_path: Path, capsys, columns, args, message) -> None:
    gold = tmp_path / "g.csv"
    if columns is not None:
        _write(gold, columns)
    assert run_cli(score.main, [str(gold), "--text-column", "report_text", *args]) == 2
    assert message in _error(capsys)


def test_score_unreadable_file_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    gold = _write(tmp_path / "g.csv", GOLD)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(gold))

    monkeypatch.setattr("cxrlib.labeler._io.pd.read_csv", denied)
    assert run_cli(score.main, [str(gold), "--text-column", "report_text"]) == 2
    assert "permission denied" in _error(capsys)


def test_present_under_both_conventions() -> None:
    values = pd.Series([1.0, 0.0, -1.0, math.nan])
    assert score.present(values, "negative").tolist() == [1, 0, 0, 0]
    assert score.present(values, "positive").tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="uncertain_as must be one of"):
        score.present(values, "maybe")


# --- module paths ------------------------------------------------------------------------------
def test_old_module_path_is_a_deprecated_alias() -> None:
    sys.modules.pop("cxrlib.reporteval.labeler", None)
    with pytest.warns(DeprecationWarning, match="import cxrlib.labeler"):
        from cxrlib.reporteval import labeler as old
    import cxrlib.labeler as new

    assert old.label_report is new.label_report and old.LABELS == new.LABELS
    assert old.main is labeler_main


@pytest.mark.parametrize("module", ["cxrlib.labeler", "cxrlib.reporteval.labeler"])
def test_python_dash_m_runs_the_cli(tmp_path: Path, module: str) -> None:
    source = _write(tmp_path / "r.csv", {"t": ["Small left pneumothorax."]})
    out = tmp_path / "o.csv"
    done = subprocess.run(
        [sys.executable, "-m", module, str(source), "--text-column", "t", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "labelled 1 reports" in done.stdout
    assert ("deprecated" in done.stderr) == (module == "cxrlib.reporteval.labeler")
    assert pd.read_csv(out).loc[0, "Pneumothorax"] == P
