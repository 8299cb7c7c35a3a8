"""The ordered list of pipeline stages and how a user names a selection of them."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline.

    ``upstream`` names the stages whose outputs it reads (a change there re-runs it);
    ``outputs`` are the files (relative to its stage folder) it must write to count as done.
    """

    name: str
    upstream: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    #: notebook file relative to the notebooks folder; defaults to ``<name>.ipynb``
    notebook: str = ""

    def __post_init__(self) -> None:
        if not self.notebook:
            object.__setattr__(self, "notebook", f"{self.name}.ipynb")

    @property
    def number(self) -> str:
        """``01`` for ``01_preprocessing``."""
        return self.name.split("_", 1)[0]

    @property
    def short_name(self) -> str:
        """``preprocessing`` for ``01_preprocessing``."""
        return self.name.split("_", 1)[-1]


# Adding a stage is one line here (in pipeline order), once its notebook exists.
STAGES: tuple[Stage, ...] = (
    Stage(
        "01_preprocessing",
        outputs=(
            "cohort.csv",
            "counts.csv",
            "report_samples.csv",
            "images",
            "subject_splits.csv",
        ),
    ),
    Stage(
        "02_cnn_tuning",
        upstream=("01_preprocessing",),
        outputs=("architecture_comparison.csv", "grid_results.csv", "best_params.csv"),
    ),
    Stage(
        "03_cnn_train_test",
        upstream=("01_preprocessing", "02_cnn_tuning"),
        outputs=(
            "metrics.csv",
            "predictions.csv",
            "checkpoints",
            "report_image_probs.csv",
            "report_image_embeddings.npz",
        ),
    ),
    Stage(
        "04_llama_setup",
        upstream=("01_preprocessing",),
        outputs=("model.json", "lora_config.json", "zero_shot.csv"),
    ),
    Stage(
        "05_llama_training",
        # 03: the CNN's findings for guided prompting (guided = True)
        upstream=("01_preprocessing", "03_cnn_train_test", "04_llama_setup"),
        outputs=("adapter", "training_log.csv", "loss_curve.png", "generated_reports.csv"),
    ),
    Stage(
        "06_results_analysis",
        upstream=("01_preprocessing", "03_cnn_train_test", "05_llama_training"),
        outputs=("ce_metrics.csv", "nlg_metrics.csv", "ce_per_finding.csv"),
    ),
)


def find_stage(name: str, stages: Sequence[Stage] = STAGES) -> Stage:
    """The stage called ``name``: ``01_preprocessing``, ``01`` or ``preprocessing``."""
    for stage in stages:
        if name in (stage.name, stage.number, stage.short_name):
            return stage
    names = [s.name for s in stages]
    close = difflib.get_close_matches(name, names + [s.short_name for s in stages], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown stage {name!r}{hint}; stages: {', '.join(names)} "
        "(a number like 01 or a short name like preprocessing works too)"
    )


def select_stages(
    stages: Sequence[Stage],
    *,
    only: Sequence[str] | None = None,
    start: str | None = None,
    stop: str | None = None,
) -> list[Stage]:
    """The stages to run, in pipeline order: ``only`` a list, or the range ``start``..``stop``."""
    if only and (start or stop):
        raise ValueError("--only cannot be combined with --from/--until; use one or the other")
    if only:
        wanted = {find_stage(name, stages).name for name in only}
        return [s for s in stages if s.name in wanted]
    names = [s.name for s in stages]
    first = names.index(find_stage(start, stages).name) if start else 0
    last = names.index(find_stage(stop, stages).name) if stop else len(names) - 1
    if first > last:
        raise ValueError(f"--from {start} comes after --until {stop}; nothing to run")
    return list(stages[first : last + 1])


def check_stages(stages: Sequence[Stage]) -> None:
    """Fail on duplicate names or an upstream that is not an earlier stage (a developer error)."""
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            raise ValueError(f"stage {stage.name!r} is listed twice")
        for up in stage.upstream:
            if up not in seen:
                raise ValueError(
                    f"stage {stage.name!r}: upstream {up!r} must be an earlier stage of the list"
                )
        seen.add(stage.name)
