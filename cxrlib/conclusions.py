"""What a run can and cannot show, from what it ran on.

One text for two places: the closing section of notebook 06 and the banner of the run's
summary page. It depends on the data (the synthetic look-alike or real MIMIC-CXR) and on the
report model (the offline tiny stand-in or a real Llama-3.2-Vision), read from the resolved
parameters that ``run.json`` records; every statement points at the table that supports it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cxrlib import artifacts as a
from cxrlib.choices import TINY_MODEL, TINY_PRETRAINED
from cxrlib.classify.paper_results import implied_test_size, paper_results
from cxrlib.paths import stage_dir


@dataclass(frozen=True)
class RunFacts:
    """What a run ran on."""

    synthetic: bool
    tiny_model: bool  # one of the project's tiny stand-ins, not a real Llama-3.2-Vision
    pretrained_on_lookalike: bool = False  # the shipped stand-in, pre-trained on look-alike data


def run_facts(parameters: Mapping[str, Mapping[str, Any]]) -> RunFacts:
    """``RunFacts`` from the per-stage parameters (``run.json``'s ``parameters``)."""
    data_root = parameters.get(a.PREPROCESSING, {}).get("data_root", "synthetic")
    model = str(parameters.get(a.LLAMA_SETUP, {}).get("model", TINY_PRETRAINED))
    return _facts(data_root == "synthetic", model)


def _facts(synthetic: bool, model: str) -> RunFacts:
    return RunFacts(
        synthetic=synthetic,
        tiny_model=model in (TINY_MODEL, TINY_PRETRAINED),
        pretrained_on_lookalike=model == TINY_PRETRAINED,
    )


def run_facts_of_folder(run_dir: str | os.PathLike[str]) -> RunFacts:
    """``RunFacts`` from a run folder's own outputs (notebook 06, also without ``run.json``):
    stage 01's data source and the model stage 04 recorded (the demo's if none)."""
    from cxrlib import preprocessing

    synthetic = bool(preprocessing.read_data_source(run_dir).get("synthetic", True))
    record = stage_dir(run_dir, a.LLAMA_SETUP) / a.MODEL_FILE
    model = TINY_PRETRAINED
    if record.is_file():
        model = str(json.loads(record.read_text(encoding="utf-8")).get("model", model))
    return _facts(synthetic, model)


def what_you_may_conclude(facts: RunFacts) -> dict[str, list[str]]:
    """``{"You may conclude": [...], "You may not conclude": [...]}``: sentences, each
    naming the table or figure that supports it."""
    sizes = [implied_test_size(r.accuracy, r.f1) for r in paper_results().itertuples()]
    known = [s for s in sizes if s]
    may = [
        "that every step of the study runs end to end on this data: cohorts, CNN tuning and "
        f"testing, report-model fine-tuning and scoring ({a.CNN_TRAIN_TEST}/{a.METRICS_FILE}, "
        f"{a.RESULTS_ANALYSIS}/{a.CE_FILE});",
        "how the CNNs and the report generators of this run rank against each other and "
        "against the baselines, where their 95 % intervals do not overlap;",
        "whether the fine-tuned report model's reports depend on the image: "
        f"{a.RESULTS_ANALYSIS}/{a.CONTROLS_FILE} scores each report against one written from "
        "another image's input, and an interval above 0 says they do.",
    ]
    may_not = []
    if facts.synthetic:
        may_not.append(
            "how well the paper's methods work on real radiographs: the images are the "
            "project's synthetic look-alike, findings drawn on a phantom and reports written "
            "from the labels, and its findings are easier to see than real ones (cardiomegaly, "
            "the paper's hardest finding, is a drawn enlarged heart here);"
        )
        may_not.append(
            "that this run beats or misses the paper: the data differ, and the paper's own "
            f"test sets were small (its accuracy and F1 imply {min(known)} to {max(known)} "
            "test images per finding), so its numbers carry wide intervals it does not report;"
        )
    if facts.tiny_model:
        may_not.append(
            "how good Llama-3.2-11B-Vision's reports are: the report model here is an offline "
            "tiny stand-in with the same architecture and about 1.5 million parameters;"
        )
        if facts.synthetic and facts.pretrained_on_lookalike:
            may_not.append(
                "how much fine-tuning adds for the real model: the shipped stand-in was "
                "pre-trained on another sample of the same synthetic look-alike (other "
                "patients), a head start on this data that no public model has on real "
                f"radiographs ({a.RESULTS_ANALYSIS}/{a.REPORT_SCORES_FILE}, row "
                "llama_zero_shot);"
            )
    may_not.append(
        "differences smaller than the intervals, nor any number to its last digit on another "
        "machine: trained models differ slightly from one CPU to another."
    )
    return {"You may conclude": may, "You may not conclude": may_not}


def as_markdown(conclusions: Mapping[str, list[str]]) -> str:
    """The conclusions as Markdown (notebook 06 displays it)."""
    parts = []
    for heading, sentences in conclusions.items():
        parts.append(f"**{heading}**\n")
        parts += [f"- {s}" for s in sentences]
        parts.append("")
    return "\n".join(parts)
