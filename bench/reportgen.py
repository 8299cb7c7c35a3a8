"""Benchmark of the tiny Llama on the CPU under three OpenMP waiting settings, alone and two
processes at once.

The tiny model's operations are small (about 100 microseconds each), so how torch's OpenMP
threads wait between them matters more than the arithmetic. libgomp reads its settings once,
when a process starts, so each measurement (20 LoRA steps, then reports for 96 images) runs in
a fresh process, under: libgomp's default (spin 300,000 rounds, then sleep), ``PASSIVE``
(sleep at once) and the project's setting (``cxrlib.openmp``). "Two at once" starts two
measuring processes together on the same cores, as when a user runs the tests beside a demo.
Settings alternate within each repeat, so load from other processes hits all alike.

Checks: the project's setting alone is within 15 % of the fastest alone, and two at once take
at most 2.5x its own time alone (two processes sharing two cores: 2x is the floor).

    python bench/reportgen.py                      # a toy tiny model, random images
    python bench/reportgen.py --run-dir runs/demo  # stage 04's model on stage 01's samples
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.cli import run_cli
from cxrlib.openmp import OPENMP_ENVIRONMENT

SETTINGS: dict[str, dict[str, str]] = {
    "libgomp default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "project": dict(OPENMP_ENVIRONMENT),
}
MEASURES = ("train_s", "generate_s")
_FINDINGS = (
    "The lungs are clear.",
    "There is a small left pleural effusion.",
    "The heart is enlarged.",
)


class _RandomImages:
    def get(self, dicom_id: str) -> np.ndarray:
        seed = int(dicom_id.split("-")[0], 16)
        return np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)


def _toy_samples(count: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "subject_id": range(10000000, 10000000 + count),
            "study_id": range(50000000, 50000000 + count),
            "dicom_id": [f"{i:08x}-00000000-00000000-00000000-00000000" for i in range(count)],
            "path": "x.dcm",
            "split": ["train"] * (count - count // 4) + ["validate"] * (count // 4),
            "findings": [" ".join(rng.choice(_FINDINGS, size=3)) for _ in range(count)],
            "impression": "No acute cardiopulmonary process.",
        }
    )


def measure(run_dir: Path | None, steps: int, images: int) -> dict[str, float]:
    """Seconds for ``steps`` LoRA steps (batch 8) and for reports of ``images`` images."""
    import torch

    from cxrlib.reportgen import backends, stage, train
    from cxrlib.reportgen.dataset import ConversationDataset, reports
    from cxrlib.reportgen.generate import generate_reports
    from cxrlib.reportgen.tiny_model import build_tiny_model

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if run_dir is None:
            samples, source = _toy_samples(256), _RandomImages()
            model_dir = build_tiny_model(reports(samples), Path(tmp) / "model", progress=False)
            loaded = backends.load_model(model_dir, device="cpu")
            loaded = backends.add_lora(loaded, backends.LoraSettings())
        else:
            samples, source = stage.report_samples(run_dir), stage.image_cache(run_dir)
            record, lora = stage.read_setup(run_dir)
            loaded = backends.add_lora(backends.load_model(record["path"], device="cpu"), lora)
        train_part = stage.split(samples, "train")
        settings = train.TrainSettings(
            max_epochs=100, max_steps=steps, batch_size=8, grad_accum=1, lr=1e-3,
            warmup_steps=0, eval_steps=10 * steps, patience=0,
        )  # fmt: skip
        start = time.perf_counter()
        train.train_adapter(
            loaded,
            ConversationDataset(train_part, source),
            ConversationDataset(stage.split(samples, "validate").iloc[:8], source),
            settings,
            work_dir=Path(tmp) / "work",
            progress=False,
        )
        train_s = time.perf_counter() - start
        prompts = ConversationDataset(train_part.iloc[:images], source, with_report=False)
        start = time.perf_counter()
        generate_reports(loaded, prompts, batch_size=32, max_new_tokens=64, progress=False)
        gen_s = time.perf_counter() - start
    return {"train_s": train_s, "generate_s": gen_s}


def _start(setting: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(SETTINGS[setting])
    command = [sys.executable, __file__, "--child", "--steps", str(args.steps)]
    command += ["--images", str(args.images)]
    if args.run_dir is not None:
        command += ["--run-dir", str(args.run_dir)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _measure(setting: str, args: argparse.Namespace, processes: int) -> dict[str, float]:
    """Mean of each measure over ``processes`` processes started together."""
    running = [_start(setting, args) for _ in range(processes)]
    found = []
    for process in running:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"measurement under {setting} failed:\n{stderr[-2000:]}")
        found.append(json.loads(stdout.strip().splitlines()[-1]))
    return {m: statistics.mean(f[m] for f in found) for m in MEASURES}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, help="run folder with finished stages 01 and 04")
    parser.add_argument("--steps", type=int, default=20, help="LoRA steps per measurement")
    parser.add_argument("--images", type=int, default=96, help="images per generation measure")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all settings")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.run_dir, args.steps, args.images)))
        return 0
    modes = {"alone": 1, "two at once": 2}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for setting in SETTINGS:
            for mode, processes in modes.items():
                runs.setdefault((setting, mode), []).append(_measure(setting, args, processes))
    median = {
        key: {m: statistics.median(r[m] for r in found) for m in MEASURES}
        for key, found in runs.items()
    }
    print(
        f"seconds ({args.steps} LoRA steps | reports for {args.images} images), median of "
        f"{args.repeats}; project = {OPENMP_ENVIRONMENT}"
    )
    for setting in SETTINGS:
        cells = []
        for mode in modes:
            seconds = median[setting, mode]
            cells.append(f"{mode} {seconds['train_s']:6.2f} | {seconds['generate_s']:6.2f}")
        print(f"  {setting:24s} " + "   ".join(cells))
    failed = False
    for m in MEASURES:
        best = min(median[s, "alone"][m] for s in SETTINGS)
        alone, shared = median["project", "alone"][m], median["project", "two at once"][m]
        checks = (
            (alone / best, 1.15, "project alone / fastest alone"),
            (shared / alone, 2.5, "project two at once / alone"),
        )
        for ratio, limit, what in checks:
            ok = ratio <= limit
            failed |= not ok
            print(f"{m}: {what} {ratio:.2f}x (target <= {limit}x) {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
