"""The kernel's side of the CNN jobs, run in this one process: the call's settings go through
the job's JSON and pickles, the job runs the library function, and what comes back equals what
the same call computes in the kernel (no torchrun here; the torchrun tests are
test_distributed_cnn.py)."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest
import torch
from fixtures_classify import DISEASES, SIZE, build

from cxrlib.classify import experiment, tuning
from cxrlib.classify.train import TrainConfig
from cxrlib.distributed import launch
from cxrlib.distributed.__main__ import read_job


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build(tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("c") / "c")


@pytest.fixture
def in_process(monkeypatch):
    """torchrun replaced by one process running the job as rank 0 would."""

    def run(the_launch, work, out):
        job = read_job(work / launch.JOB_FILE)
        result = work / launch.RESULT_DIR
        result.mkdir()
        module = importlib.import_module(job["entry"])
        module.run_job(job["settings"], job["tables"], result, work)

    monkeypatch.setattr(launch, "_run_torchrun", run)


def test_jobs_return_what_the_kernel_computes(toy, in_process, tmp_path):
    cache, cohort = toy
    two = launch.Launch(2)
    base = TrainConfig(max_epochs=1, patience=1, batch_size=8, image_size=SIZE, seed=3)
    common = {"diseases": DISEASES, "base": base, "task": "multilabel", "progress": False}

    def same(job: pd.DataFrame, here: pd.DataFrame) -> None:
        pd.testing.assert_frame_equal(job.drop(columns="seconds"), here.drop(columns="seconds"))

    here = tuning.compare_architectures(cache, cohort, architectures=["resnet18"], **common)
    job = tuning.compare_architectures(
        cache, cohort, architectures=["resnet18"], launch=two, **common
    )
    same(job, here)
    assert job["model"].tolist() == ["multilabel", "multilabel"]  # the task reached the job
    grid = tuning.param_grid(lr=[0.001], weight_decay=[0.0], batch_size=[8], dropout=[0.0])
    same(
        tuning.grid_search(cache, cohort, grid=grid, launch=two, **common),
        tuning.grid_search(cache, cohort, grid=grid, **common),
    )

    config = TrainConfig(diseases=DISEASES, max_epochs=1, patience=1, batch_size=8,
                         image_size=SIZE, seed=3)  # fmt: skip
    kernel = experiment.train_all(cache, cohort, [config], device="cpu", progress=False)[0]
    job = experiment.train_all(
        cache, cohort, [config], device="cpu", progress=False, launch=two,
        log_dir=tmp_path / "logs",
    )[0]  # fmt: skip
    history = kernel.fit.history.drop(columns="seconds")
    pd.testing.assert_frame_equal(job.fit.history.drop(columns="seconds"), history)
    assert (job.fit.best_epoch, job.config) == (kernel.fit.best_epoch, kernel.config)
    for name, weight in kernel.model.state_dict().items():
        assert torch.equal(job.model.state_dict()[name], weight), name
    logged = pd.read_csv(tmp_path / "logs" / "multilabel.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(logged, history, check_dtype=False)
