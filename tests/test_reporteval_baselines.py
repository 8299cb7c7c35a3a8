"""Baselines and the evaluation of several generators, on tiny stage outputs built here."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlib.artifacts import HINT_COLUMN
from cxrlib.labeler import label_report
from cxrlib.mimic.layout import PAPER_FINDINGS
from cxrlib.reporteval import baselines, results

# Six report samples: four train, two test. Embeddings put test image t1 next to train a2
# and t2 next to train a3 (cosine similarity, so the scale of a vector does not matter).
SAMPLES = pd.DataFrame(
    {
        "subject_id": [10000001, 10000002, 10000003, 10000004, 10000005, 10000006],
        "study_id": [50000001, 50000002, 50000003, 50000004, 50000005, 50000006],
        "dicom_id": ["a1", "a2", "a3", "a4", "t1", "t2"],
        "path": ["x"] * 6,
        "split": ["train", "train", "train", "train", "test", "test"],
        "findings": [
            "No effusion.",
            "Small left pleural effusion.",
            "Mild cardiomegaly.",
            "",
            "Left pleural effusion.",
            "The heart is enlarged.",
        ],
        "impression": ["Normal.", "", "", "Pneumothorax.", "Effusion.", ""],
    }
)
EMBEDDINGS = {
    "a1": [1.0, 0.0, 0.0],
    "a2": [0.0, 1.0, 0.0],
    "a3": [0.0, 0.0, 1.0],
    "a4": [1.0, 1.0, 1.0],
    "t1": [0.1, 5.0, 0.2],
    "t2": [0.0, 0.3, 2.0],
}


@pytest.fixture
def stage03(tmp_path: Path) -> Path:
    folder = tmp_path / "03_cnn_train_test"
    folder.mkdir()
    ids = list(EMBEDDINGS)
    np.savez(
        folder / baselines.EMBEDDINGS_FILE,
        dicom_id=np.array(ids),
        embedding=np.array([EMBEDDINGS[d] for d in ids], dtype=np.float32),
    )
    probs = pd.DataFrame({"dicom_id": ids})
    for finding in PAPER_FINDINGS:
        probs[finding] = 0.1
    probs.loc[probs.dicom_id == "t1", "Pleural Effusion"] = 0.9
    probs.loc[probs.dicom_id == "t2", ["Cardiomegaly", "Atelectasis"]] = [0.7, 0.5]
    probs.to_csv(folder / "report_image_probs.csv", index=False)
    # Atelectasis threshold 0.6: t2's 0.5 stays below it.
    thresholds = {f: 0.5 for f in PAPER_FINDINGS} | {"Atelectasis": 0.6}
    pd.DataFrame({"disease": list(thresholds), "threshold": list(thresholds.values())}).to_csv(
        folder / "metrics.csv", index=False
    )
    return folder


def test_template_reports_label_back_exactly() -> None:
    # Every subset of findings: the labeler reads back exactly what the template states.
    for k in range(len(PAPER_FINDINGS) + 1):
        for predicted in itertools.combinations(PAPER_FINDINGS, k):
            labels = label_report(baselines.template_report(predicted, PAPER_FINDINGS))
            for finding in PAPER_FINDINGS:
                assert labels[finding] == (1.0 if finding in predicted else 0.0), (
                    predicted,
                    finding,
                )
            assert (
                labels["No Finding"] == 1.0 if not predicted else math.isnan(labels["No Finding"])
            )


def test_template_other_finding_is_generic() -> None:
    text = baselines.template_report(["Edema"], ["Edema", "Fracture"])
    labels = label_report(text)
    assert (labels["Edema"], labels["Fracture"]) == (1.0, 0.0)


def test_constant_normal_report_is_normal() -> None:
    labels = label_report(baselines.constant_normal_report())
    assert labels["No Finding"] == 1.0
    for finding in ("Pleural Effusion", "Pneumothorax", "Consolidation", "Cardiomegaly"):
        assert labels[finding] == 0.0
    assert baselines.constant_normal_report().startswith("FINDINGS: ")


def test_nearest_neighbours_cosine() -> None:
    database = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    queries = np.array([[10.0, 0.5], [0.0, 0.1], [2.0, 2.1], [0.0, 0.0]])
    # The zero vector has similarity 0 with everything: the first row wins the tie.
    assert baselines.nearest_neighbours(queries, database).tolist() == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="differ in width"):
        baselines.nearest_neighbours(queries[:, :1], database)


def test_baseline_reports_end_to_end(stage03: Path) -> None:
    table = baselines.baseline_reports(SAMPLES, stage03, eval_split="test")
    assert list(table.columns) == list(baselines.REPORT_COLUMNS)
    assert table.generator.tolist() == [g for g in baselines.BASELINES for _ in range(2)]
    by = table.set_index(["generator", "dicom_id"])["generated"]
    assert by["nearest_neighbour", "t1"] == "FINDINGS: Small left pleural effusion."
    assert by["nearest_neighbour", "t2"] == "FINDINGS: Mild cardiomegaly."
    assert label_report(by["cnn_template", "t1"])["Pleural Effusion"] == 1.0
    t2 = label_report(by["cnn_template", "t2"])
    assert (t2["Cardiomegaly"], t2["Atelectasis"]) == (1.0, 0.0)
    assert by["constant_normal", "t1"] == baselines.constant_normal_report()
    reference = table.set_index(["generator", "dicom_id"])["reference"]
    assert (
        reference["cnn_template", "t1"] == "FINDINGS: Left pleural effusion.\nIMPRESSION: Effusion."
    )


def test_baseline_errors(stage03: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eval_split must be one of"):
        baselines.baseline_reports(SAMPLES, stage03, eval_split="testing")
    with pytest.raises(ValueError, match="no report samples in split 'validate'"):
        baselines.baseline_reports(SAMPLES, stage03, eval_split="validate")
    with pytest.raises(ValueError, match="unknown baselines"):
        baselines.baseline_reports(SAMPLES, stage03, baselines=["oracle"])
    with pytest.raises(FileNotFoundError, match="run stage 03_cnn_train_test first"):
        baselines.baseline_reports(SAMPLES, tmp_path / "missing", baselines=["nearest_neighbour"])
    extra = pd.concat([SAMPLES, SAMPLES.iloc[[5]].assign(dicom_id="t3")], ignore_index=True)
    with pytest.raises(ValueError, match="have no CNN embedding"):
        baselines.baseline_reports(extra, stage03, baselines=["nearest_neighbour"])
    with pytest.raises(ValueError, match="have no CNN probabilities"):
        baselines.baseline_reports(extra, stage03, baselines=["cnn_template"])


# --- evaluation of several generators ------------------------------------------------------------
def _stage05(tmp_path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    folder = tmp_path / "05_llama_training"
    folder.mkdir()
    frame = pd.DataFrame(rows, columns=["dicom_id", "split", "reference", "generated"])
    frame.insert(0, "study_id", 50000005)
    frame.to_csv(folder / "generated_reports.csv", index=False)
    return folder


def test_load_generated_reports(tmp_path: Path) -> None:
    folder = _stage05(
        tmp_path,
        [
            ("t1", "test", "FINDINGS: Effusion.", "FINDINGS: Effusion."),
            ("v1", "validate", "FINDINGS: Normal.", ""),
        ],
    )
    loaded = results.load_generated_reports(folder, eval_split="test")
    assert list(loaded.columns) == list(baselines.REPORT_COLUMNS)
    assert loaded.generator.tolist() == ["llama_finetuned"] and loaded.dicom_id.tolist() == ["t1"]
    empty = results.load_generated_reports(tmp_path / "absent")
    assert empty.empty and list(empty.columns) == list(baselines.REPORT_COLUMNS)
    validate = results.load_generated_reports(folder, eval_split="validate")
    assert validate.generated.tolist() == [""]  # an empty generation stays an empty string


def test_evaluate_reports_and_common_images(stage03: Path, tmp_path: Path) -> None:
    base = baselines.baseline_reports(SAMPLES, stage03)
    reference_t1 = base.loc[base.dicom_id == "t1", "reference"].iloc[0]
    llama = results.load_generated_reports(
        _stage05(tmp_path, [("t1", "test", reference_t1, reference_t1)])
    )
    reports = results.common_images(pd.concat([base, llama], ignore_index=True))
    # Only t1 is covered by every generator; generators keep their order.
    assert reports.dicom_id.unique().tolist() == ["t1"]
    assert reports.generator.tolist() == [*baselines.BASELINES, "llama_finetuned"]
    evaluation = results.evaluate_reports(reports, meteor=False)
    assert list(evaluation.nlg.columns) == list(results.NLG_COLUMNS)
    nlg = evaluation.nlg.set_index("generator")
    assert nlg.loc["llama_finetuned", "bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert nlg.loc["constant_normal", "bleu4"] < 0.5
    ce = evaluation.ce.set_index(["generator", "labels", "average", "uncertain_as"])
    assert ce.loc[("llama_finetuned", "chexpert14", "micro", "negative"), "f1"] == 1.0
    assert ce.loc[("constant_normal", "competition5", "micro", "negative"), "recall"] == 0.0
    assert ce.loc[("cnn_template", "competition5", "micro", "negative"), "f1"] == 1.0
    assert len(evaluation.ce) == 4 * 8  # 4 generators x 2 label sets x 2 averages x 2 conventions
    assert len(evaluation.per_finding) == 4 * 14 * 2
    assert len(evaluation.labels) == len(reports) == len(evaluation.reference_labels)

    scores = results.report_scores(evaluation, results.length_statistics(reports))
    assert list(scores.columns) == list(results.REPORT_SCORE_COLUMNS)
    assert scores.generator.tolist() == [*baselines.BASELINES, "llama_finetuned"]
    row = scores.set_index("generator").loc["llama_finetuned"]
    assert (row.reports, row.distinct_per_100, row.uncertain_as) == (1, 100.0, "negative")
    assert row.bleu4 == nlg.loc["llama_finetuned", "bleu4"]
    assert row.ce_f1_micro_chexpert14 == 1.0
    with pytest.raises(ValueError, match="no CE scores with uncertain_as='sometimes'"):
        results.report_scores(
            evaluation, results.length_statistics(reports), uncertain_as="sometimes"
        )


def test_common_images_without_overlap() -> None:
    frame = pd.DataFrame(
        {
            "generator": ["a", "b"],
            "study_id": [1, 2],
            "dicom_id": ["x", "y"],
            "split": "test",
            "reference": "r",
            "generated": "g",
        }
    )
    with pytest.raises(ValueError, match="share no image"):
        results.common_images(frame)


def test_length_statistics() -> None:
    frame = pd.DataFrame(
        {
            "generator": ["a", "a"],
            "study_id": [1, 2],
            "dicom_id": ["x", "y"],
            "split": "test",
            "reference": ["FINDINGS: One two three.", "FINDINGS: One."],
            "generated": ["Four words are here.", "Four words are here."],
        }
    )
    stats = results.length_statistics(frame).set_index("text")
    assert stats.loc["reference", ["mean_words", "min_words", "max_words"]].tolist() == [2, 1, 3]
    assert stats.loc["a", ["mean_words", "distinct_reports"]].tolist() == [4, 1]


def test_published_anchors() -> None:
    table = results.published_anchors()
    assert {"system", "bleu4", "rouge_l", "ce_f1_micro14", "ce_f1_macro14"} <= set(table.columns)
    r2gen = table.set_index("system").loc["R2Gen (2020)"]
    assert (r2gen.bleu1, r2gen.bleu4, r2gen.ce_f1_macro14) == (0.353, 0.103, 0.276)


def test_guided_reports_keep_the_hint_their_prompt_carried(tmp_path: Path) -> None:
    folder = _stage05(tmp_path, [("t1", "test", "FINDINGS: Effusion.", "FINDINGS: Effusion.")])
    guided = pd.read_csv(folder / "generated_reports.csv").assign(
        hint="An image classifier says: pleural effusion yes."
    )
    guided.to_csv(folder / "generated_reports_guided.csv", index=False)
    loaded = results.load_generated_reports(folder, eval_split="test")
    assert loaded.generator.tolist() == ["llama_finetuned", "llama_finetuned_guided"]
    assert loaded[HINT_COLUMN].isna().tolist() == [True, False]
    assert loaded[HINT_COLUMN].iloc[1].endswith("pleural effusion yes.")
