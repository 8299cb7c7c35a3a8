"""Stage glue of 02/03: inputs from stage 01, checkpoints, report-image outputs, Grad-CAM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_classify import DISEASES, SIZE, build

from cxrlib import artifacts as a
from cxrlib.classify import evaluate, experiment, stage
from cxrlib.classify.train import TrainConfig, load_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder whose 01_preprocessing holds the tiny cohort, report samples and cache."""
    run_dir = tmp_path_factory.mktemp("run")
    folder = run_dir / a.PREPROCESSING
    cache, cohort = build(tmp_path_factory.mktemp("data"), folder / a.CACHE_DIR)
    cohort.to_csv(folder / a.COHORT_FILE, index=False)
    samples = cohort.drop_duplicates("dicom_id").head(10)
    samples = samples.drop(columns=["disease", "label"]).assign(findings="", impression="x")
    samples.to_csv(folder / a.REPORT_SAMPLES_FILE, index=False)
    return run_dir


@pytest.fixture(scope="module")
def models(run):
    data = stage.load_preprocessed(run, DISEASES)
    base = TrainConfig(max_epochs=1, patience=1, image_size=SIZE)
    params = {d: {"architecture": "resnet18"} for d in DISEASES}
    configs = experiment.configs_for("binary", DISEASES, params, base)
    return data, experiment.train_all(
        data.cache, data.cohort, configs, device="cpu", progress=False
    )


def test_missing_stage_01_names_the_file_and_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cohort.csv not found: run stage 01_preprocess"):
        stage.load_preprocessed(tmp_path, DISEASES)
    with pytest.raises(FileNotFoundError, match=r"best_params.csv not found: run stage 02"):
        stage.read_best_params(tmp_path)


def test_checkpoints_and_report_image_outputs(run, models, tmp_path):
    data, trained = models
    paths = stage.save_models(tmp_path, trained)
    assert [p.name for p in paths] == ["edema.safetensors", "fracture.safetensors"]
    model, config, extra = load_checkpoint(paths[1])
    assert config.diseases == ["Fracture"] and extra["best_epoch"] == 1
    probs, embeddings = stage.report_image_outputs(trained, data.cache, data.report_samples)
    assert list(probs.columns) == ["dicom_id", *DISEASES] and len(probs) == 10
    # two binary models: two L2-normalised 512-wide blocks side by side
    assert embeddings.shape == (10, 1024) and embeddings.dtype == np.float32
    assert np.linalg.norm(embeddings[:, :512], axis=1) == pytest.approx(np.ones(10), abs=1e-5)
    path = stage.write_embeddings(tmp_path / a.EMBEDDINGS_FILE, probs["dicom_id"], embeddings)
    with np.load(path, allow_pickle=False) as saved:  # readable without pickle
        assert saved["dicom_id"].tolist() == probs["dicom_id"].tolist()
        assert np.array_equal(saved["embedding"], embeddings)


def test_gradcam_examples_fill_an_aligned_grid(models):
    data, trained = models
    predictions = pd.concat(
        [experiment.prediction_rows(m, data.cache, data.cohort) for m in trained]
    )
    thresholds = {d: 0.0 for d in DISEASES}  # everything positive: TPs and FPs exist
    rows, columns = stage.gradcam_examples(trained, data.cache, predictions, thresholds, n=2)
    assert columns == ["TP 1", "TP 2", "FP 1", "FP 2"]
    assert list(rows) == DISEASES and all(len(cells) == 4 for cells in rows.values())
    image, caption = rows["Edema"][0]
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert caption.startswith("p = ")
    # no false positive when nothing negative is called positive: empty FP cells, TP kept
    thresholds = {d: 1.1 for d in DISEASES}  # nothing positive: no TP, no FP
    rows, _ = stage.gradcam_examples(trained, data.cache, predictions, thresholds, n=2)
    assert all(cell is None for cells in rows.values() for cell in cells)


def test_metrics_display_keeps_the_headline_columns_in_file_order():
    metrics = pd.DataFrame([dict.fromkeys(evaluate.METRICS_COLUMNS, 0.12345)])
    shown = stage.metrics_display(metrics)
    assert list(shown.columns) == [
        "accuracy",
        "f1",
        "auc",
        "auc_ci_low",
        "auc_ci_high",
        "threshold",
        "accuracy_at_0_5",
        "f1_at_0_5",
        "n_test",
        "cases_test",
    ]
    assert shown.index.name == "disease" and shown.iloc[0, 0] == 0.123
