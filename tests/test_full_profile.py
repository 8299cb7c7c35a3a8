"""The ``full`` profile (all frontal images, 14 labels, DenseNet-121, DDP) on a small synthetic
look-alike: stages 01-03 through ``run_all.py``, stage 03 training on two processes launched
from its notebook (torchrun, gloo)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from cxrlib.mimic import layout
from cxrlib.paths import PARAMETERS_DIR, PROJECT_ROOT

pytestmark = pytest.mark.slow

#: What a CPU test can afford: the tiny profile's look-alike and sizes, one epoch, no ImageNet.
SMALL = {
    "01_preprocessing": {
        "data_root": "synthetic", "synthetic_subjects": 60, "synthetic_seed": 0,
        "synthetic_min_size": 128, "synthetic_max_size": 160, "synthetic_prevalence": "enriched",
        "image_size": 32, "workers": 2,
    },
    "02_cnn_tuning": {
        "weights": "none", "comparison_train_images": 16, "batch_size": 16, "grid_lr": [0.0003],
        "grid_batch_size": [16], "max_epochs": 1,
    },
    "03_cnn_train_test": {
        "weights": "none", "max_epochs": 1, "n_boot": 20, "gradcam_examples": 1,
        "nproc_per_node": 2,  # the training cell starts torchrun; 0 (the profile's) = 1 on a CPU
    },
}  # fmt: skip


def test_full_profile_trains_every_frontal_image_on_14_labels(tmp_path):
    profile = yaml.safe_load((PARAMETERS_DIR / "full.yaml").read_text())
    for stage, values in SMALL.items():
        profile["stages"][stage].update(values)
    profile["cell_timeout"] = 900
    path = tmp_path / "full_small.yaml"
    path.write_text(yaml.safe_dump(profile))
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "run_all.py", "--profile", str(path), "--run-dir", str(run_dir),
         "--until", "03"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    cohort = pd.read_csv(run_dir / "01_preprocessing" / "cohort.csv")
    assert sorted(cohort["disease"].unique()) == sorted(layout.CHEXPERT_LABELS)
    # every image of a subject, not one: more images than subjects
    assert cohort["dicom_id"].nunique() > cohort["subject_id"].nunique()
    stage_03 = run_dir / "03_cnn_train_test"
    metrics = pd.read_csv(stage_03 / "metrics.csv")
    assert sorted(metrics["disease"]) == sorted(layout.CHEXPERT_LABELS)
    checkpoint = json.loads((stage_03 / "checkpoints" / "multilabel.json").read_text())
    assert checkpoint["config"]["architecture"] == "densenet121"
    assert checkpoint["processes"] == 2  # trained by the torchrun job the notebook started
    assert sorted(p.name for p in (stage_03 / "checkpoints").iterdir()) == [
        "multilabel.json", "multilabel.safetensors",
    ]  # fmt: skip
