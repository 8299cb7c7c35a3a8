"""Cohort -> models -> predictions, the grid and the choice of settings, on a tiny cache."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fixtures_classify import DISEASES, SIZE, build, cohort_rows

from cxrlib.classify import experiment, tuning
from cxrlib.classify.train import TrainConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(cache, cohort): 48 subjects, 32 px; each finding is a bright patch in its own corner."""
    return build(tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("cache"))


def test_multilabel_frame_puts_nan_where_an_image_is_not_in_a_cohort():
    cohort = pd.DataFrame(cohort_rows(8))
    wide = experiment.multilabel_frame(cohort, DISEASES, "train")
    assert list(wide.columns) == ["subject_id", "study_id", "dicom_id", "path", "split", *DISEASES]
    # train = subjects 0..3; Edema labels 0 1 0 1; Fracture only for 0 and 2: labels 0, 1
    assert wide["Edema"].tolist() == [0, 1, 0, 1]
    assert wide["Fracture"].fillna(-9).tolist() == [0, -9, 1, -9]


@pytest.mark.parametrize(
    ("diseases", "drop_split", "message"),
    [
        (["Edema", "Pneumonia"], None, r"disease 'Pneumonia' is not in the cohort"),
        (["Fracture"], "test", r"disease 'Fracture' has no images in split 'test'"),
    ],
)
def test_check_cohort_errors(diseases, drop_split, message):
    cohort = pd.DataFrame(cohort_rows(16))
    if drop_split:
        cohort = cohort[~((cohort["disease"] == "Fracture") & (cohort["split"] == drop_split))]
    with pytest.raises(ValueError, match=message):
        experiment.check_cohort(cohort, diseases)


def test_check_cohort_names_missing_columns():
    with pytest.raises(ValueError, match=r"cohort lacks column\(s\) \['label'\]"):
        experiment.check_cohort(pd.DataFrame(cohort_rows(8)).drop(columns="label"), DISEASES)


def test_binary_model_trains_and_predicts_its_cohort(tiny):
    cache, cohort = tiny
    config = TrainConfig(
        diseases=["Edema"], max_epochs=4, patience=4, batch_size=8, image_size=SIZE
    )
    trained = experiment.train_model(cache, cohort, config, device="cpu", progress=False)
    assert 1 <= trained.fit.best_epoch <= 4
    rows = experiment.prediction_rows(trained, cache, cohort)
    expected = cohort[(cohort["disease"] == "Edema") & cohort["split"].isin(["validate", "test"])]
    assert len(rows) == len(expected) == 24
    assert list(rows.columns) == [
        "disease",
        "subject_id",
        "study_id",
        "dicom_id",
        "split",
        "label",
        "prob",
    ]
    assert rows["prob"].between(0, 1).all()


def test_multilabel_model_predicts_each_finding_on_its_own_cohort(tiny):
    cache, cohort = tiny
    config = TrainConfig(
        diseases=DISEASES,
        max_epochs=2,
        patience=2,
        batch_size=8,
        image_size=SIZE,
        pos_weight="balanced",
    )
    trained = experiment.train_model(cache, cohort, config, device="cpu", progress=False)
    assert trained.model.num_outputs == 2
    rows = experiment.prediction_rows(trained, cache, cohort, splits=["test"])
    assert rows.groupby("disease").size().to_dict() == {"Edema": 12, "Fracture": 6}


def test_grid_search_and_best_params_on_the_tiny_set(tiny):
    cache, cohort = tiny
    grid = tuning.param_grid(lr=[1e-3], weight_decay=[0.0], batch_size=[8, 16], dropout=[0.0])
    base = TrainConfig(max_epochs=1, patience=1, image_size=SIZE)
    results = tuning.grid_search(
        cache, cohort, diseases=DISEASES, grid=grid, base=base, progress=False
    )
    assert len(results) == 4 and set(results["grid_point"]) == {0, 1}
    assert results["val_auc"].between(0, 1).all()
    best = tuning.best_params(results)
    assert list(best.columns) == list(tuning.BEST_PARAMS_COLUMNS)
    assert best["disease"].tolist() == DISEASES
    multi = tuning.grid_search(
        cache,
        cohort,
        diseases=DISEASES,
        grid=grid[:1],
        base=base,
        task="multilabel",
        progress=False,
    )
    assert multi["disease"].tolist() == DISEASES and multi["seconds"].nunique() == 1
    # one shared network per grid point: its time counts once, not once per finding
    assert tuning.training_seconds(multi) == pytest.approx(multi["seconds"].iloc[0])
    assert tuning.training_seconds(results) == pytest.approx(results["seconds"].sum())


def test_comparison_on_a_sample_of_training_images(tiny):
    cache, cohort = tiny
    base = TrainConfig(max_epochs=1, patience=1, image_size=SIZE)
    table = tuning.compare_architectures(
        cache,
        cohort,
        diseases=["Edema"],
        architectures=["resnet18"],
        base=base,
        progress=False,
        max_train_images=8,
    )
    assert table[["disease", "architecture"]].values.tolist() == [["Edema", "resnet18"]]
    with pytest.raises(ValueError, match=r"architecture must be one of"):
        tuning.compare_architectures(
            cache, cohort, diseases=["Edema"], architectures=["vgg"], base=base, progress=False
        )


def test_param_grid_is_every_combination_in_a_fixed_order():
    grid = tuning.param_grid(
        lr=[1e-3, 1e-4], weight_decay=[0.0], batch_size=[16, 32], dropout=[0.0, 0.5]
    )
    assert len(grid) == 8
    assert grid[0] == {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 16, "dropout": 0.0}
    assert list(grid[0]) == list(tuning.GRID_KEYS)
    with pytest.raises(ValueError, match="grid values of 'lr' must be a non-empty list"):
        tuning.param_grid(lr=[], weight_decay=[0.0], batch_size=[8], dropout=[0.0])


def _results(aucs: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for disease, values in aucs.items():
        for point, auc in enumerate(values):
            rows.append(
                {
                    "disease": disease,
                    "architecture": "resnet18",
                    "lr": 10.0**-point,
                    "weight_decay": 0.0,
                    "batch_size": 16,
                    "dropout": 0.0,
                    "grid_point": point,
                    "val_auc": auc,
                    "best_epoch": 1,
                }
            )
    return pd.DataFrame(rows)


def test_best_params_per_finding_and_for_a_shared_network():
    results = _results({"Edema": [0.7, 0.9, 0.9], "Fracture": [math.nan, 0.6, 0.8]})
    best = tuning.best_params(results)
    # Edema: tie between points 1 and 2 -> the earlier (lr 0.1); Fracture: point 2 (lr 0.01)
    assert best["lr"].tolist() == [0.1, 0.01]
    assert best["task"].unique().tolist() == ["binary"]
    shared = tuning.best_params(results, task="multilabel")
    # mean AUC per point (NaN as -1): -0.15, 0.75, 0.85 -> point 2 for both findings
    assert shared["lr"].tolist() == [0.01, 0.01]


def test_choose_architecture_takes_the_best_mean_auc():
    comparison = pd.DataFrame(
        {
            "disease": ["Edema", "Fracture"] * 3,
            "architecture": ["vgg16"] * 2 + ["resnet18"] * 2 + ["densenet121"] * 2,
            "val_auc": [0.9, 0.6, 0.8, 0.8, 0.85, 0.75],
        }
    )
    assert tuning.choose_architecture(comparison) == "resnet18"  # 0.8 vs 0.75 and 0.8 (tie ->
    # zoo order puts vgg16 first, but its mean is 0.75)
    tie = comparison.assign(val_auc=[0.8] * 6)
    assert tuning.choose_architecture(tie) == "vgg16"


def test_configs_for_needs_parameters_of_every_finding():
    base = TrainConfig()
    params = {
        "Edema": {"architecture": "resnet18", "lr": np.float64(0.01), "batch_size": np.int64(8)}
    }
    (config,) = experiment.configs_for("binary", ["Edema"], params, base)
    assert (config.lr, config.batch_size, config.diseases) == (0.01, 8, ["Edema"])
    assert type(config.batch_size) is int
    with pytest.raises(ValueError, match="no tuned parameters for disease 'Fracture'"):
        experiment.configs_for("binary", DISEASES, params, base)
    with pytest.raises(ValueError, match=r"task must be one of \['binary', 'multilabel'\]"):
        experiment.configs_for("multi", DISEASES, params, base)
