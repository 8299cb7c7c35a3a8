"""Training loop: the loss goes down, early stopping restores the best epoch, checkpoints."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from cxrlib.classify import train, zoo


def _batches(n: int, *, seed: int, size: int = 16, batch_size: int = 8) -> list[dict]:
    """Random grey images; cases have a bright centre (a learnable signal), labels (B,)."""
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 2).float()
    images = torch.randn(n, 1, size, size, generator=gen) * 0.5
    images[labels == 1, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += 1.5
    return [
        {"image": images[i : i + batch_size], "label": labels[i : i + batch_size]}
        for i in range(0, n, batch_size)
    ]


def test_loss_decreases_on_a_tiny_set():
    torch.manual_seed(0)
    model = zoo.create_model("resnet18")
    config = train.TrainConfig(lr=1e-3, max_epochs=6, patience=6, image_size=16)
    result = train.fit(
        model, _batches(32, seed=0), _batches(16, seed=1), config, device="cpu", progress=False
    )
    losses = result.history["train_loss"].to_numpy()
    assert losses[-1] < 0.5 * losses[0]
    assert result.history["val_auc"].max() > 0.9
    assert list(result.history.columns) == list(train.HISTORY_COLUMNS)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_learning_rate_schedule_per_epoch(schedule):
    torch.manual_seed(0)
    config = train.TrainConfig(
        lr=1e-3, max_epochs=4, patience=4, image_size=16, lr_schedule=schedule
    )
    result = train.fit(
        zoo.create_model("resnet18"), _batches(8, seed=0), _batches(8, seed=1), config,
        device="cpu", progress=False,
    )  # fmt: skip
    # the rate each epoch trained with: cosine from lr towards 0 over max_epochs
    expected = {"constant": [1e-3] * 4, "cosine": [1e-3, 8.5355e-4, 5e-4, 1.4645e-4]}[schedule]
    assert result.history["lr"].tolist() == pytest.approx(expected, rel=1e-4)


def test_early_stopping_restores_the_best_epoch(monkeypatch, tmp_path):
    """Scripted validation AUCs peak at epoch 2; patience 2 stops after epoch 4."""
    scores = iter([0.60, 0.80, 0.70, 0.75, 0.99])
    monkeypatch.setattr(train, "mean_auc", lambda labels, probs: next(scores))
    snapshots = []
    original = train._train_epoch

    def recording(model, *args):
        loss = original(model, *args)
        snapshots.append(copy.deepcopy(model.state_dict()))
        return loss

    monkeypatch.setattr(train, "_train_epoch", recording)
    torch.manual_seed(0)
    model = zoo.create_model("resnet18")
    config = train.TrainConfig(max_epochs=10, patience=2, image_size=16)
    log = tmp_path / "log.csv"
    result = train.fit(
        model,
        _batches(16, seed=0),
        _batches(8, seed=1),
        config,
        device="cpu",
        log_path=log,
        progress=False,
    )
    assert (result.best_epoch, result.stopped_early, len(result.history)) == (2, True, 4)
    assert result.best_score == pytest.approx(0.80)
    assert result.history["is_best"].tolist() == [True, True, False, False]
    restored = model.state_dict()
    assert all(torch.equal(restored[k], snapshots[1][k].cpu()) for k in restored)
    assert not all(torch.equal(restored[k], snapshots[3][k].cpu()) for k in restored)
    assert pd.read_csv(log)["epoch"].tolist() == [1, 2, 3, 4]


def test_masked_bce_ignores_unknown_labels():
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    labels = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    known = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.5, 2.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])
    )
    assert train.masked_bce(logits, labels) == pytest.approx(float(known))
    none_known = torch.full((2, 2), float("nan"))
    assert float(train.masked_bce(logits, none_known)) == 0.0


def test_balanced_pos_weight_is_negatives_over_positives_per_output():
    labels = np.array([[1, 0], [0, np.nan], [0, 0], [0, 1]], dtype=float)
    # output 0: 1 positive, 3 negatives -> 3; output 1: 1 positive, 2 negatives -> 2
    assert train.balanced_pos_weight(labels).tolist() == [3.0, 2.0]
    assert train.balanced_pos_weight(np.zeros(4)).tolist() == [1.0]  # no positive: neutral


def test_balanced_pos_weight_without_the_tensor_is_an_error():
    config = train.TrainConfig(pos_weight="balanced", max_epochs=1)
    with pytest.raises(ValueError, match="needs the pos_weight tensor"):
        train.fit(zoo.create_model("resnet18"), [], [], config, device="cpu", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pos_weight": "auto"}, r"pos_weight must be one of \['none', 'balanced'\], got 'auto'"),
        ({"monitor": "f1"}, r"monitor must be one of \['auc', 'loss'\]"),
        ({"lr": 0}, "lr must be > 0"),
        ({"patience": 0}, "patience must be >= 1"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"lr_schedule": "step"}, r"lr_schedule must be one of \['constant', 'cosine'\]"),
    ],
)
def test_bad_config_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train.TrainConfig(**kwargs)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    config = train.TrainConfig(architecture="resnet18", dropout=0.1, diseases=["Edema", "Fracture"])
    model = config.build_model()
    path = train.save_checkpoint(
        tmp_path / "ckpt" / "multilabel.safetensors", model, config, best_epoch=3
    )
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["config"]["diseases"] == ["Edema", "Fracture"] and meta["best_epoch"] == 3
    loaded, loaded_config, extra = train.load_checkpoint(path)
    assert loaded_config == config and extra == {"best_epoch": 3}
    images = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model.eval()(images))
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "multilabel.json",
        "multilabel.safetensors",
    ]


def test_missing_checkpoint_names_the_file_and_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.safetensors not found; run the training"):
        train.load_checkpoint(tmp_path / "nothing.safetensors")


def test_predict_logits_returns_features_too():
    model = zoo.create_model("resnet18", num_outputs=2)
    batches = _batches(10, seed=0, batch_size=4)
    logits, labels = train.predict_logits(model, batches, device=torch.device("cpu"))
    features, _ = train.predict_logits(model, batches, device=torch.device("cpu"), features=True)
    assert logits.shape == (10, 2) and labels.shape == (10, 1) and features.shape == (10, 512)


def test_same_seed_on_one_machine_gives_identical_numbers():
    """What the README promises: same seed and machine, same tables (bit for bit). Across CPUs
    only the invariants of cxrlib.invariants hold (the stored notebooks check those)."""

    def run() -> pd.DataFrame:
        torch.manual_seed(0)
        config = train.TrainConfig(lr=1e-3, max_epochs=2, patience=2, image_size=16)
        return train.fit(
            zoo.create_model("resnet18"), _batches(16, seed=0), _batches(8, seed=1), config,
            device="cpu", progress=False,
        ).history.drop(columns="seconds", errors="ignore")  # fmt: skip

    pd.testing.assert_frame_equal(run(), run(), check_exact=True)
