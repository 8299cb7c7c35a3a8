"""Controls of the report generators: shuffled inputs, the paired bootstrap of the F1
difference, stage 06's image-dependence table, and the cluster bootstrap weights they share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from cxrlib import artifacts as a
from cxrlib.artifacts import CONTROL_FILES, GENERATED_FILES, METRICS_FILE
from cxrlib.mimic.layout import CHEXPERT_LABELS, COMPETITION_LABELS
from cxrlib.reporteval import clinical, results
from cxrlib.reportgen import controls, stage
from cxrlib.resampling import group_bootstrap_weights, percentile_interval

EFFUSION = "FINDINGS: There is a moderate right pleural effusion."
NORMAL = "FINDINGS: The lungs are clear. No pleural effusion."


def _frame(splits: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"dicom_id": [f"d{i}" for i in range(len(splits))], "split": splits})


# --- shuffled inputs ---------------------------------------------------------------------------
def test_partners_are_another_image_of_the_same_split_each_lent_once():
    frame = _frame(["train"] * 5 + ["test"] * 7 + ["validate"] * 2)
    partners = controls.shuffled_partners(frame, seed=3)
    split_of = dict(zip(frame.dicom_id, frame.split, strict=True))
    assert set(partners) == set(frame.dicom_id)
    assert all(p != d and split_of[p] == split_of[d] for d, p in partners.items())
    assert sorted(partners.values()) == sorted(partners)  # every image lends its input once
    assert controls.shuffled_partners(frame, seed=3) == partners
    assert controls.shuffled_partners(frame, seed=4) != partners


def test_a_split_of_one_image_cannot_be_shuffled():
    with pytest.raises(ValueError, match="split 'test' has 1 image"):
        controls.shuffled_partners(_frame(["train", "train", "test"]))


def test_partner_images_and_instructions():
    class Images:
        def get(self, dicom_id):
            return np.full((2, 2), int(dicom_id[1:]), dtype=np.uint8)

    partners = {"d0": "d1", "d1": "d2", "d2": "d0"}
    swapped = controls.PartnerImages(Images(), partners)
    assert swapped.get("d0")[0, 0] == 1 and swapped.get("d2")[0, 0] == 0
    hints = controls.partner_instructions({"d0": "a", "d1": "b", "d2": "c"}, partners)
    assert hints == {"d0": "b", "d1": "c", "d2": "a"}
    table = controls.with_sources(pd.DataFrame({"dicom_id": ["d2", "d0"]}), partners)
    assert table[controls.INPUT_FROM].tolist() == ["d0", "d1"]


def test_the_guided_control_needs_one_instruction_per_image():
    frame = _frame(["test", "test"]).assign(findings="", impression="")
    with pytest.raises(ValueError, match="needs one instruction per image"):
        stage.control_table(None, frame, None, instructions="one for all", guided=True)


# --- bootstrap -----------------------------------------------------------------------------------
def test_group_bootstrap_weights_resample_whole_groups():
    groups = ["a", "a", "b", "c", "c", "c"]
    weights = group_bootstrap_weights(groups, n_boot=200, seed=0)
    assert weights.shape == (200, 6)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    per_group = weights[:, [0, 2, 3]]
    assert (per_group.sum(axis=1) == 3).all()  # three groups drawn per resample
    assert (group_bootstrap_weights(groups, 200, seed=0) == weights).all()
    with pytest.raises(ValueError, match="n_boot must be >= 1"):
        group_bootstrap_weights(groups, 0)


def test_percentile_interval_skips_nan():
    assert percentile_interval(np.array([np.nan, 1.0, 1.0])) == (1.0, 1.0)
    assert all(np.isnan(percentile_interval(np.array([np.nan]))))
    with pytest.raises(ValueError, match="level must be in"):
        percentile_interval(np.array([1.0]), level=1.0)


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_weighted_f1_equals_scikit_learn(average):
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 2, (40, 5)), rng.integers(0, 2, (40, 5))
    y_true[:, 4] = y_pred[:, 4] = 0  # a label nobody has scores 0, as zero_division=0
    weights = rng.integers(0, 3, (4, 40))
    expected = [
        f1_score(y_true, y_pred, average=average, sample_weight=w, zero_division=0) for w in weights
    ]
    got = clinical.weighted_f1(y_true, y_pred, weights, average=average)
    assert got == pytest.approx(expected)
    with pytest.raises(ValueError, match="average must be one of"):
        clinical.weighted_f1(y_true, y_pred, weights, average="weighted")


def _labels(positive: list[bool], label: str = "Pleural Effusion") -> pd.DataFrame:
    frame = pd.DataFrame(np.nan, index=range(len(positive)), columns=list(CHEXPERT_LABELS))
    frame[label] = [1.0 if p else 0.0 for p in positive]
    return frame


def test_f1_difference_of_a_model_and_its_control():
    truth = [True, False] * 20
    reference = _labels(truth)
    groups = list(range(len(truth)))
    same = clinical.bootstrap_f1_difference(reference, reference, reference, groups)
    assert (same["difference"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)
    # a perfect reader against its control, which calls every second image wrongly
    control = _labels([t != (i % 4 < 2) for i, t in enumerate(truth)])
    scores = clinical.bootstrap_f1_difference(reference, reference, control, groups)
    assert scores["f1"] == pytest.approx(1 / len(COMPETITION_LABELS))  # one label of five
    assert scores["difference"] == pytest.approx(scores["f1"] - scores["f1_control"])
    assert 0 < scores["ci_low"] < scores["difference"] < scores["ci_high"]
    with pytest.raises(ValueError, match="one row per report each"):
        clinical.bootstrap_f1_difference(reference, reference, control, groups[:-1])


# --- stage 06 ------------------------------------------------------------------------------------
def _write(folder: Path, name: str, rows: list[tuple[str, str, str]], **extra) -> None:
    frame = pd.DataFrame(rows, columns=["dicom_id", "reference", "generated"])
    frame.insert(0, "study_id", range(len(frame)))
    frame.insert(2, "split", "test")
    frame.assign(**extra).to_csv(folder / name, index=False)


def test_image_dependence_from_stage05_controls(tmp_path):
    folder = tmp_path / "05"
    folder.mkdir()
    ids = [f"d{i}" for i in range(30)]
    refs = [EFFUSION if i % 3 == 0 else NORMAL for i in range(30)]
    # the guided adapter repeats each reference; its control (another image's hint) does not
    _write(folder, GENERATED_FILES[True], list(zip(ids, refs, refs, strict=True)))
    shifted = refs[1:] + refs[:1]
    _write(
        folder,
        CONTROL_FILES[True],
        list(zip(ids, refs, shifted, strict=True)),
        input_from=ids[1:] + ids[:1],
    )
    reports = results.load_generated_reports(folder)
    found = results.load_control_reports(folder)
    assert found["generator"].unique().tolist() == ["llama_finetuned_guided"]
    assert found["control"].unique().tolist() == ["another image's hint"]
    assert results.load_control_reports(tmp_path / "absent").empty
    table = results.image_dependence(reports, found, {d: d for d in ids}, n_boot=200)
    assert list(table.columns) == list(results.DEPENDENCE_COLUMNS)
    assert len(table) == 2 * 2 * 2  # conventions x label sets x averages
    row = table.set_index(["labels", "average", "uncertain_as"]).loc[
        ("chexpert14", "micro", "negative")
    ]
    assert row["images"] == 30 and row["f1"] == 1.0
    assert row["f1_control"] < 1.0 and row["ci_low"] > 0
    assert results.image_dependence(reports, found.iloc[:0], {}).empty


# --- stage 04: the findings of the guided pre-training ---------------------------------------
def test_pretraining_findings_come_from_stage_03(tmp_path):
    assert stage.pretraining_findings(tmp_path, "tiny", guided=False) == ()
    assert stage.pretraining_findings(tmp_path, "/models/llama", guided=True) == ()
    with pytest.raises(FileNotFoundError, match="tiny_pretrain_guided = True.*run stage 03"):
        stage.pretraining_findings(tmp_path, "tiny", guided=True)
    folder = tmp_path / a.CNN_TRAIN_TEST
    folder.mkdir()
    pd.DataFrame({"disease": ["Cardiomegaly", "Pneumothorax"], "threshold": [0.5, 0.4]}).to_csv(
        folder / METRICS_FILE, index=False
    )
    assert stage.pretraining_findings(tmp_path, "tiny", guided=True) == (
        "Cardiomegaly",
        "Pneumothorax",
    )
