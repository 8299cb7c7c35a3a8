"""Benchmark of CNN training on 1 and 2 processes (torchrun, DDP) and of what they exchange.

From one run, side by side:

1. training images/s of the project's training step (``cxrlib.classify.train``: sharded
   loader with augmentation, DDP, the loss over the whole batch) with 1 and with 2 processes
   at the same global batch, each started by torchrun exactly as the notebooks start it;
   rounds alternate (1, 2, 1, 2, ...) and the median epoch counts, so load from other
   processes hits both sides alike. Each process computes on one CPU thread (one core, as each
   GPU process has one GPU), so on CPU the ratio is the speed-up of P cores over one, what is
   left after DDP's communication;
2. the bytes DDP all-reduces per optimizer step, measured with a DDP communication hook
   (PyTorch's ``register_comm_hook``) that counts every bucket before all-reducing it, and
   what the full profile's DenseNet-121 (14 outputs) exchanges per step: its gradients, and
   on CUDA the batch-norm statistics of SyncBatchNorm;
3. the input pipeline's images/s per CPU core at 224 px (cache read + flip + rotation), the
   CPU side a GPU must be fed from.

    python bench/distributed.py                  # resnet18, 64 px, CPU (gloo)
    python bench/distributed.py --device cuda --architecture densenet121 --image-size 224 \\
        --images 4096 --batch-size 240 --processes 1 8    # on a GPU machine: the real figure
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrlib import distributed
from cxrlib.atomic import write_json
from cxrlib.classify import train
from cxrlib.classify.zoo import create_model
from cxrlib.cli import run_cli
from cxrlib.distributed.launch import Launch, torchrun_job
from cxrlib.images.cache import ImageCache, build_cache
from cxrlib.images.dataset import CachedImageDataset, make_loader, set_epoch
from cxrlib.images.transforms import train_transform
from cxrlib.mimic.layout import CHEXPERT_LABELS
from cxrlib.paths import PROJECT_ROOT

#: Labels of the full profile's network (one output each).
FULL_OUTPUTS = len(CHEXPERT_LABELS)


def _read_npy(path: Path) -> np.ndarray:
    return np.load(path)


def random_cache(folder: Path, count: int, image_size: int) -> ImageCache:
    """``count`` random images at ``image_size`` px, cached as stage 01 caches them."""
    rng = np.random.default_rng(0)
    (folder / "data").mkdir(parents=True)
    rows = []
    for k in range(count):
        dicom_id = f"{k:08x}-00000000-00000000-00000000-00000000"
        np.save(folder / "data" / f"{dicom_id}.npy", rng.random((image_size,) * 2, np.float32))
        rows.append({"dicom_id": dicom_id, "path": f"{dicom_id}.npy"})
    frame = pd.DataFrame(rows)
    return build_cache(
        frame, folder / "data", folder / "cache", image_size, workers=1, progress=False,
        reader=_read_npy,
    )  # fmt: skip


# --- inside the torchrun job ------------------------------------------------------------------
def run_job(
    settings: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    result: Path | None,
    job_dir: Path | None = None,
) -> None:
    """Train ``epochs`` epochs; rank 0 writes each epoch's seconds and the bytes per step."""
    cache = ImageCache.open(settings["cache"])
    frame = tables["frame"]
    device = distributed.device_for(settings["device"])
    dataset = CachedImageDataset(cache, frame, transform=train_transform())
    loader = make_loader(dataset, settings["batch_size"], shuffle=True, seed=0)
    torch.manual_seed(0)
    model = create_model(settings["architecture"], num_outputs=1).to(device)
    network = train._distributed_model(model, device)
    counted = {"bytes": 0, "steps": 0}
    if network is not model:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        def counting(state, bucket):
            buffer = bucket.buffer()
            state["bytes"] += buffer.numel() * buffer.element_size()
            return default_hooks.allreduce_hook(None, bucket)

        network.register_comm_hook(counted, counting)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    seconds = []
    for epoch in range(settings["epochs"]):
        set_epoch(loader, epoch)
        distributed.barrier()
        tick = time.perf_counter()
        train._train_epoch(network, loader, optimizer, scaler, None, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        distributed.barrier()
        seconds.append(time.perf_counter() - tick)
        counted["steps"] += len(loader)
    if result is not None:
        per_step = counted["bytes"] / max(counted["steps"], 1)
        write_json(result / "bench.json", {"seconds": seconds, "bytes_per_step": per_step})


# --- the caller ---------------------------------------------------------------------------------
def measure(
    cache: ImageCache, processes: int, args: argparse.Namespace
) -> tuple[list[float], float]:
    """(seconds of each epoch, all-reduced bytes per step) of one torchrun job."""
    settings = {
        "cache": str(cache.root), "device": args.device, "architecture": args.architecture,
        "batch_size": args.batch_size, "epochs": args.epochs,
    }  # fmt: skip
    frame = pd.DataFrame({"dicom_id": list(cache.dicom_ids), "label": 1.0})
    frame.loc[::2, "label"] = 0.0
    with torchrun_job(
        "bench.distributed", settings, Launch(processes), tables={"frame": frame}, out=_Quiet()
    ) as result:
        record = json.loads((result / "bench.json").read_text())
    return record["seconds"], record["bytes_per_step"]


class _Quiet:
    """Swallows the jobs' own output (the bench prints its table)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def gradient_bytes(architecture: str, outputs: int) -> int:
    """Bytes of float32 gradients of a network: what DDP all-reduces per step."""
    model = create_model(architecture, num_outputs=outputs)
    return sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)


def batchnorm_layers(architecture: str) -> tuple[int, int]:
    """(batch-norm layers, their channels in all) of a network."""
    model = create_model(architecture)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    return len(norms), sum(m.num_features for m in norms)


def loader_rate(image_size: int, count: int = 512, batch_size: int = 32) -> float:
    """Images/s of cache read + augmentation in one process, no worker (one CPU core)."""
    with tempfile.TemporaryDirectory() as folder:
        cache = random_cache(Path(folder), count, image_size)
        frame = pd.DataFrame({"dicom_id": list(cache.dicom_ids), "label": 1.0})
        frame.loc[::2, "label"] = 0.0
        dataset = CachedImageDataset(cache, frame, transform=train_transform())
        loader = make_loader(dataset, batch_size, shuffle=True, seed=0)
        with _one_thread():
            next(iter(loader))
            tick = time.perf_counter()
            for _ in loader:
                pass
            return count / (time.perf_counter() - tick)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=512, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument("--epochs", type=int, default=3, help="per job; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="jobs per process count")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    # the torchrun processes import this file as bench.distributed
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    if args.device == "cpu":
        os.environ["OMP_NUM_THREADS"] = "1"  # one core per process (see the docstring)
    print(
        f"{args.architecture} at {args.image_size} px, {args.images} images per epoch, global "
        f"batch {args.batch_size}, {args.device} ({'nccl' if args.device == 'cuda' else 'gloo'})"
    )
    with tempfile.TemporaryDirectory() as folder:
        cache = random_cache(Path(folder), args.images, args.image_size)
        epochs: dict[int, list[float]] = {p: [] for p in args.processes}
        sent: dict[int, float] = {}
        for _ in range(args.rounds):
            for p in args.processes:
                seconds, per_step = measure(cache, p, args)
                epochs[p] += seconds[1:]  # the first epoch warms up
                sent[p] = per_step
    rates = {p: args.images / statistics.median(s) for p, s in epochs.items()}
    base = rates[args.processes[0]]
    print("processes  images/s  ratio   all-reduced per step")
    for p in args.processes:
        print(f"{p:9d}  {rates[p]:8.1f}  {rates[p] / base:5.2f}   {sent[p] / 1e6:6.2f} MB")

    grads = gradient_bytes(args.architecture, 1)
    print(
        f"\n{args.architecture} (1 output): {grads / 1e6:.2f} MB of float32 gradients; DDP "
        "all-reduces each once per step (the hook's count above). A ring all-reduce sends and "
        "receives 2(P-1)/P of it per process: "
        + ", ".join(f"P={p}: {2 * (p - 1) / p * grads / 1e6:.1f} MB" for p in (2, 8))
    )
    full = gradient_bytes("densenet121", FULL_OUTPUTS)
    layers, channels = batchnorm_layers("densenet121")
    # SyncBatchNorm per layer of C channels: forward all-gathers (mean, invstd, count) = 2C + 1
    # floats from every rank; backward all-reduces 2C floats
    gathered = 7 * (2 * channels + layers) * 4
    reduced = 2 * 7 / 8 * 2 * channels * 4
    print(
        f"full profile, densenet121 ({FULL_OUTPUTS} outputs): {full / 1e6:.2f} MB of gradients "
        f"per step (ring, P=8: {2 * 7 / 8 * full / 1e6:.1f} MB per GPU); on CUDA SyncBatchNorm "
        f"adds {layers} layers x (1 all-gather forward + 1 all-reduce backward) = "
        f"{2 * layers} small collectives per step ({channels} channels, "
        f"{(gathered + reduced) / 1e6:.2f} MB per GPU at P=8): latency, not volume"
    )
    rate = loader_rate(224)
    print(
        f"\ninput pipeline at 224 px (cache read, flip, rotation): {rate:.0f} images/s per CPU "
        "core (one process, no loader worker)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
