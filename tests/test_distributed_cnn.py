"""CNN training on several processes (torchrun, gloo on this machine's loopback).

What a second GPU must not change: the same global batch and seed give the same per-epoch
losses and validation AUC as one process; two machines give what one machine with as many
processes gives; one checkpoint and one log come back; a failing rank is named and leaves
nothing behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from ddp_jobs import JOB_VARIABLE, toy_fit
from fixtures_classify import DISEASES, SIZE, build

from cxrlib import artifacts as a
from cxrlib import config, preprocessing
from cxrlib.classify import ddp, experiment, stage
from cxrlib.classify.train import TrainConfig
from cxrlib.cohort import SplitRatios, build_cohort
from cxrlib.distributed.launch import DistributedJobError, Launch, torchrun_job
from cxrlib.images.cache import build_cache
from cxrlib.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow
TESTS_DIR = PROJECT_ROOT / "tests"


@pytest.fixture
def workers_import_tests(monkeypatch):
    """torchrun's processes find the test modules (ddp_jobs, fixtures)."""
    paths = [str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    cache, cohort = build(tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("c") / "c")
    return cache, cohort


def test_two_processes_train_like_one_with_the_same_global_batch(
    toy, workers_import_tests, monkeypatch
):
    cache, cohort = toy
    # 24 training images: 3 batches of 8 per epoch; each process loads 4 of every batch
    cfg = TrainConfig(
        diseases=DISEASES, batch_size=8, max_epochs=3, patience=3, lr=3e-3, image_size=SIZE,
        pos_weight="balanced", seed=5,
    )  # fmt: skip
    one, one_weights = toy_fit(cache, cohort, cfg)
    monkeypatch.setenv(JOB_VARIABLE, "toy_fit")
    settings = {"cache": str(cache.root), "config": cfg.__dict__}
    with torchrun_job("ddp_jobs", settings, Launch(2), tables={"cohort": cohort}) as result:
        two = torch.load(result / "fit.pt", weights_only=False)
    columns = ["train_loss", "val_loss", "val_auc"]
    difference = (one.history[columns] - two["history"][columns]).abs().to_numpy().max()
    print(f"largest per-epoch difference, 1 vs 2 processes: {difference:.2e}")
    # float sums in another order (half batches, gradients summed by gloo): about 1e-7
    assert difference < 1e-4
    assert one.history["is_best"].tolist() == two["history"]["is_best"].tolist()
    assert (one.best_epoch, two["fit"].processes, one.processes) == (two["fit"].best_epoch, 2, 1)
    for name, weight in one_weights.items():
        torch.testing.assert_close(weight, two["weights"][name], atol=1e-4, rtol=1e-4)


# --- the tiny profile's CNN -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny profile's stage-01 cohort and cache, and its CNN settings (stages 02-03)."""
    profile = config.load_profile("tiny")
    params = profile.stages[a.PREPROCESSING]
    root = preprocessing.resolve_data_root(
        params["data_root"],
        preprocessing.SyntheticSpec(
            params["synthetic_subjects"], params["synthetic_seed"], params["synthetic_min_size"],
            params["synthetic_max_size"], params["synthetic_prevalence"],
        ),
    )  # fmt: skip
    seed = profile.common["seed"]
    ratios = SplitRatios(params["val_ratio"], params["test_ratio"])
    cohort = build_cohort(root, split_source=params["split_source"], ratios=ratios, seed=seed)
    folder = tmp_path_factory.mktemp("tiny")
    items = cohort.cohort[["dicom_id", "path"]].drop_duplicates()
    cache = build_cache(items, root, folder / "images", params["image_size"], progress=False)
    tuning = profile.stages["02_cnn_tuning"]
    findings = sorted(cohort.cohort["disease"].unique())
    cfg = TrainConfig(
        architecture=tuning["architectures"][0], diseases=findings, lr=tuning["grid_lr"][0],
        max_epochs=2, patience=2, image_size=cache.image_size, seed=seed,
    )  # fmt: skip
    return cache, cohort.cohort, cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_train_the_tiny_profile_cnn_as_one_machine_does(tiny, tmp_path, monkeypatch):
    cache, cohort, cfg = tiny
    # one thread per process either way (one machine would give each of its two processes one
    # of the two cores, each "machine" here both): float sums in the same order
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one_machine = experiment.train_all(
        cache, cohort, [cfg], device="cpu", progress=False, launch=Launch(2),
        log_dir=tmp_path / "one" / "logs",
    )[0]  # fmt: skip
    stage.save_models(tmp_path / "one", [one_machine])

    # machine 1: the plain command a second machine runs; machine 0: the notebook's call
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    two = Launch(1, nnodes=2, rdzv_endpoint=f"127.0.0.1:{_free_port()}")
    follower = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *two.torchrun_args(node_rank=1),
         "-m", "cxrlib.distributed"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(follower.stdout.read()))
    reader.start()
    try:
        two_machines = experiment.train_all(
            cache, cohort, [cfg], device="cpu", progress=False, launch=two
        )[0]
    finally:
        try:
            follower.wait(timeout=120)
        except subprocess.TimeoutExpired:  # machine 0 failed before machine 1 could join
            os.killpg(follower.pid, signal.SIGKILL)  # torchrun and its process
            follower.wait()
        reader.join()
    assert follower.returncode == 0, output

    history = ["train_loss", "val_loss", "val_auc", "is_best"]
    pd.testing.assert_frame_equal(
        one_machine.fit.history[history], two_machines.fit.history[history], atol=1e-6, rtol=0
    )
    for name, weight in one_machine.model.state_dict().items():
        torch.testing.assert_close(two_machines.model.state_dict()[name], weight)
    assert two_machines.fit.processes == one_machine.fit.processes == 2
    # one checkpoint and one log, written by this process; the job's folder is gone
    written = sorted(
        p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*")
    )
    assert written == [
        "checkpoints", "checkpoints/multilabel.json", "checkpoints/multilabel.safetensors",
        "logs", "logs/multilabel.csv",
    ]  # fmt: skip
    logged = pd.read_csv(tmp_path / "one" / "logs" / "multilabel.csv")
    assert np.allclose(logged["val_auc"], one_machine.fit.history["val_auc"], equal_nan=True)


def test_a_failing_rank_stops_the_job_names_it_and_leaves_no_output(
    toy, tmp_path, workers_import_tests, monkeypatch
):
    cache, cohort = toy
    monkeypatch.setenv(JOB_VARIABLE, "failing_cnn")
    monkeypatch.setattr(ddp, "_ENTRY", "ddp_jobs")
    cfg = TrainConfig(diseases=DISEASES, batch_size=8, max_epochs=3, image_size=SIZE)
    with pytest.raises(DistributedJobError, match=r"rank 1 of 2 .* injected failure in epoch 2"):
        experiment.train_all(
            cache, cohort, [cfg], device="cpu", progress=False, launch=Launch(2),
            log_dir=tmp_path / "logs",
        )  # fmt: skip
    assert not (tmp_path / "logs").exists()
    # a global batch the processes cannot share is refused before anything starts
    with pytest.raises(ValueError, match="batch_size = 9 .* over 2 processes; use a multiple"):
        experiment.train_all(cache, cohort, [replace(cfg, batch_size=9)], launch=Launch(2))
