"""The ordered list of pipeline stages and how a user names a selection of them."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cxrlib import artifacts as a
from cxrlib.paths import NOTEBOOKS_DIR

if TYPE_CHECKING:
    from cxrlib.config import Parameter


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline.

    ``upstream`` names the stages whose outputs it reads (a change there re-runs it);
    ``outputs`` are the files (relative to its stage folder) it must write to count as done;
    ``reusable`` the outputs that check themselves and may serve a re-run instead of being
    rebuilt (see :mod:`cxrlib.pipeline.staging`).
    """

    name: str
    upstream: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    reusable: tuple[str, ...] = ()
    #: the section of the paper the stage reproduces, and what it does, in a line
    paper_section: str = ""
    purpose: str = ""
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
        a.PREPROCESSING,
        paper_section="4.1",
        purpose="cohorts (PA, label 1 or 0, one image per patient), patient-level split, "
        "report sections, resized image cache",
        outputs=(
            a.COHORT_FILE,
            a.COUNTS_FILE,
            a.REPORT_SAMPLES_FILE,
            a.CACHE_DIR,
            a.SUBJECT_SPLITS_FILE,
            a.DATA_SOURCE_FILE,
        ),
        # the image cache resumes an unfinished build and rebuilds itself when its inputs change
        reusable=(a.CACHE_DIR,),
    ),
    Stage(
        a.CNN_TUNING,
        paper_section="4.2",
        purpose="CNN architectures compared on validation, then a hyperparameter grid",
        upstream=(a.PREPROCESSING,),
        outputs=(a.COMPARISON_FILE, a.GRID_FILE, a.BEST_PARAMS_FILE),
    ),
    Stage(
        a.CNN_TRAIN_TEST,
        paper_section="4.4, Results",
        purpose="the chosen CNN trained; test accuracy, F1 and AUC with intervals, beside the "
        "paper's",
        upstream=(a.PREPROCESSING, a.CNN_TUNING),
        outputs=(
            a.METRICS_FILE,
            a.PREDICTIONS_FILE,
            a.CHECKPOINT_DIR,
            a.PROBS_FILE,
            a.EMBEDDINGS_FILE,
        ),
    ),
    Stage(
        a.LLAMA_SETUP,
        paper_section="4.3",
        purpose="Llama-3.2-Vision loaded, LoRA configured, conversation format, zero-shot reports",
        # 03: the findings the tiny model's guided pre-training names (tiny_pretrain_guided)
        upstream=(a.PREPROCESSING, a.CNN_TRAIN_TEST),
        outputs=(a.MODEL_FILE, a.LORA_FILE, a.ZERO_SHOT_FILE),
    ),
    Stage(
        a.LLAMA_TRAINING,
        paper_section="4.5",
        purpose="LoRA fine-tuning, reports generated for the test images",
        # 03: the CNN's findings for guided prompting (guided = True)
        upstream=(a.PREPROCESSING, a.CNN_TRAIN_TEST, a.LLAMA_SETUP),
        outputs=(
            a.ADAPTER_DIRS[False],
            a.TRAINING_LOG_FILES[False],
            a.LOSS_CURVE_FILE,
            a.GENERATED_FILES[False],
        ),
    ),
    Stage(
        a.RESULTS_ANALYSIS,
        paper_section="5",
        purpose="reports scored (NLG, clinical efficacy) against baselines; what the image adds",
        # 04: the zero-shot reports, scored as their own row
        upstream=(a.PREPROCESSING, a.CNN_TRAIN_TEST, a.LLAMA_SETUP, a.LLAMA_TRAINING),
        outputs=(a.CE_FILE, a.NLG_FILE, a.PER_FINDING_FILE),
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


def parameter_schemas(
    notebooks_dir: str | os.PathLike[str] = NOTEBOOKS_DIR, stages: Sequence[Stage] = STAGES
) -> dict[str, dict[str, Parameter]]:
    """Each stage's parameters as its notebook declares them (name -> schema, pipeline order):
    what :func:`cxrlib.config.resolve_parameters` checks a profile against."""
    from cxrlib.config import notebook_parameters

    return {s.name: notebook_parameters(Path(notebooks_dir) / s.notebook) for s in stages}
