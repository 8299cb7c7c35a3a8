"""GPU check: the paper's GPU code paths, run for a few minutes on a CUDA machine.

    pip install -e '.[gpu]'        # Unsloth and bitsandbytes, once
    python bench/gpu_check.py      # about 5 minutes on a fresh machine

1. **Report model, Unsloth backend**, through cxrlib's own code path on the shipped pre-trained
   tiny Llama-3.2-Vision (``tiny-pretrained``): ``FastVisionModel.from_pretrained`` in 4-bit with
   Unsloth's gradient checkpointing, LoRA on vision and language layers
   (``FastVisionModel.get_peft_model``, the paper's r = alpha = 16), a few optimizer steps of
   TRL's ``SFTTrainer`` with ``UnslothVisionDataCollator`` and mixed precision on synthetic
   image-report pairs, greedy generation (``FastVisionModel.for_inference``), the adapter saved,
   reloaded from disk and compared with the in-memory model (logits and reports).
2. **CNN**: the ``paper`` profile's network (architecture, batch size and learning rate of
   ``parameters/paper.yaml``) on 224 px images with float16 autocast, one epoch on a synthetic
   look-alike (random initial weights: the check needs no download).

Each part prints its steps/s and the peak GPU memory, or the step that failed and why; the exit
status is 0 only when every part passed. Without CUDA it stops at once with one message.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PARTS: tuple[str, ...] = ("unsloth", "cnn")
NO_CUDA = (
    "bench/gpu_check.py needs a CUDA GPU, and torch sees none (torch.cuda.is_available() is "
    "False): run it on a machine with an NVIDIA GPU after `pip install -e '.[gpu]'`"
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (checked before anything heavy is imported)."""
    parser = argparse.ArgumentParser(
        prog="python bench/gpu_check.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to check"
    )
    parser.add_argument("--lora-steps", type=int, default=8, help="SFTTrainer optimizer steps")
    parser.add_argument(
        "--report-subjects", type=int, default=80, help="synthetic patients for the LoRA pairs"
    )
    parser.add_argument(
        "--cnn-subjects", type=int, default=600, help="synthetic patients for the CNN epoch"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the data here")
    args = parser.parse_args(argv)
    for name in ("lora_steps", "report_subjects", "cnn_subjects"):
        if getattr(args, name) < 1:
            option = "--" + name.replace("_", "-")
            raise ValueError(f"{option} must be a positive integer, got {getattr(args, name)}")
    return args


def require_cuda() -> None:
    """One clear error when there is no CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(NO_CUDA)


class Checks:
    """Runs named steps, records each one's outcome, never stops at the first failure."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            value = action()
        except Exception as exc:  # a GPU check reports every failure, then goes on
            self.failed.append(name)
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(limit=6)
            return None
        print(f"ok   {name} ({time.perf_counter() - start:.1f} s)", flush=True)
        return value


def _peak_memory() -> str:
    import torch

    return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"


def check_unsloth(checks: Checks, work: Path, *, steps: int, subjects: int) -> None:
    """The report model's Unsloth path on the shipped tiny model (see the module docstring)."""
    import torch

    from cxrlib import artifacts as a
    from cxrlib.images.cache import ImageCache
    from cxrlib.reportgen import backends, stage, train
    from cxrlib.reportgen.pretrain_data import PretrainingData, build_pretraining_set

    torch.cuda.reset_peak_memory_stats()
    data = checks.step(
        "synthetic image-report pairs",
        lambda: build_pretraining_set(
            work / "pairs", PretrainingData(subjects=subjects, seed=7, val_ratio=0.2), workers=4
        ),
    )
    if data is None:
        return
    samples = data.samples
    cache = ImageCache.open(work / "pairs" / "images")
    record = {
        "path": str(backends.resolve_model_path(backends.TINY_PRETRAINED)),
        "backend": "unsloth",
        "device": "cuda",
        "load_in_4bit": True,
    }
    lora = backends.LoraSettings()  # the paper's r = alpha = 16, vision and language layers
    settings = train.TrainSettings(
        max_steps=steps, max_epochs=100.0, batch_size=8, grad_accum=1, lr=2e-4,
        eval_steps=max(1, steps // 2), patience=0, max_length=512, mixed_precision=True,
    )  # fmt: skip
    out = work / "adapter_run"
    out.mkdir(parents=True, exist_ok=True)
    trained = checks.step(
        "FastVisionModel 4-bit + LoRA + SFTTrainer/UnslothVisionDataCollator steps",
        lambda: stage.fine_tune(
            record, lora, samples, cache, settings, out, gradient_checkpointing=True,
            progress=False,
        ),
    )  # fmt: skip
    if trained is None:
        return
    loaded, result = trained
    rate = result.steps / max(result.seconds, 1e-9)
    print(
        f"     trainer {result.trainer}, {result.steps} steps at {rate:.2f} steps/s "
        f"(validation included), peak GPU memory {_peak_memory()}"
    )
    frame = stage.split(samples, "validate").iloc[:8]
    texts = checks.step(
        "greedy generation (FastVisionModel.for_inference)",
        lambda: stage.generate_table(loaded, frame, cache, max_new_tokens=48, progress=False),
    )
    if texts is None:
        return
    print(f"     first report: {texts['generated'].iloc[0][:120]!r}")
    reload = checks.step(
        "adapter saved, reloaded and compared",
        lambda: stage.reload_check(
            loaded, record, out / a.ADAPTER_DIRS[False], frame, cache,
            texts["generated"].tolist(), max_new_tokens=48,
        ),
    )  # fmt: skip
    if reload is not None:
        print(f"     {reload}")
        if not reload["same_reports"]:
            checks.failed.append("reloaded adapter writes the same reports")
            print("FAIL reloaded adapter writes the same reports")
    print(f"     peak GPU memory {_peak_memory()}")


def check_cnn(checks: Checks, work: Path, *, subjects: int) -> None:
    """One epoch of the paper profile's CNN at 224 px with mixed precision."""
    import torch

    from cxrlib import config
    from cxrlib.classify.experiment import train_model, training_frames
    from cxrlib.classify.train import TrainConfig
    from cxrlib.cohort import build_cohort
    from cxrlib.images.cache import build_cache
    from cxrlib.mimic import layout
    from cxrlib.mimic.synth import generate

    paper = config.load_profile("paper").stages
    tuning, training = paper["02_cnn_tuning"], paper["03_cnn_train_test"]
    size = int(paper["01_preprocessing"]["image_size"])
    root = work / "mimic"

    def data():
        generate(root, subjects, 3, min_size=512, max_size=768, prevalence="enriched",
                 progress=False, workers=8)  # fmt: skip
        result = build_cohort(root, seed=0)
        items = result.cohort[[layout.DICOM_ID, layout.PATH]].drop_duplicates(layout.DICOM_ID)
        return result.cohort, build_cache(items, root, work / "cache", size, workers=8,
                                          progress=False)  # fmt: skip

    made = checks.step(f"synthetic look-alike of {subjects} patients cached at {size} px", data)
    if made is None:
        return
    cohort, cache = made
    disease = layout.PAPER_FINDINGS[0]
    cnn = TrainConfig(
        architecture=str(tuning["architecture"]),
        weights="none",  # the paper fine-tunes ImageNet weights; the check needs no download
        lr=float(tuning["lr"]),
        batch_size=int(tuning["batch_size"]),
        max_epochs=1,
        patience=1,
        pos_weight=str(training["pos_weight"]),
        image_size=size,
        diseases=[disease],
    )
    frames, _ = training_frames(cohort, cnn)
    batches = -(-len(frames["train"]) // cnn.batch_size)
    torch.cuda.reset_peak_memory_stats()
    trained = checks.step(
        f"{cnn.architecture} ({disease}), one epoch, float16 autocast",
        lambda: train_model(cache, cohort, cnn, device="cuda", progress=False),
    )
    if trained is not None:
        seconds = float(trained.result.history["seconds"].iloc[0])
        print(
            f"     {batches} training batches of {cnn.batch_size} at {size} px: "
            f"{batches / seconds:.2f} steps/s (epoch with validation {seconds:.1f} s), "
            f"peak GPU memory {_peak_memory()}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checked parts; 0 when all passed, 1 when one failed."""
    args = parse_args(argv)
    require_cuda()
    import torch

    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}")
    checks = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        if "unsloth" in args.parts:
            check_unsloth(
                checks, work / "unsloth", steps=args.lora_steps, subjects=args.report_subjects
            )
        if "cnn" in args.parts:
            check_cnn(checks, work / "cnn", subjects=args.cnn_subjects)
    if checks.failed:
        print(f"{len(checks.failed)} check(s) failed: {'; '.join(checks.failed)}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    from cxrlib.cli import USER_ERRORS, user_message

    try:
        sys.exit(main())
    except (*USER_ERRORS, RuntimeError) as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        sys.exit(2)
