"""Benchmark the CheXpert-style labeler: speed against the 500 reports/s target, and agreement.

Reports come from the synthetic generator's own code (the same report writer and per-study
random streams as ``python -m cxrlib.mimic.synth``, without rendering images), so thousands
of reports with known labels cost seconds. Both timings run in this one process on the same
texts, alternating; ratios are per repeat, then the median. Speed is reports per CPU second of
the process (``time.process_time``), i.e. reports/s on one core, which other work sharing the
machine does not distort the way it distorts wall-clock time.

    python bench/labeler.py                      # 2,000 subjects (~4,400 reports)
    python bench/labeler.py --subjects 500 --repeats 5 --prevalence enriched
    taskset -c 0 python bench/labeler.py         # one core (the labeler is single-threaded)

Prints: reports/s with section selection (what the pipeline uses) and on the whole text, the
ratio of each to the target, and the per-label agreement with the generator's CheXpert labels.
Then, when the real development set is present (``../shared/realdata/iu_reports_dev.csv``
beside the project, or ``--gold``), its reports/s and the per-finding precision / recall / F1
against its gold labels under both uncertainty conventions (``python -m cxrlib.labeler.score``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.cli import run_cli
from cxrlib.labeler import label_agreement, label_reports
from cxrlib.labeler._io import read_csv_text
from cxrlib.labeler.score import format_table, score_csv
from cxrlib.mimic.layout import CHEXPERT_LABELS
from cxrlib.mimic.synth import cohort, reports
from cxrlib.mimic.synth.labels import PREVALENCES

TARGET_REPORTS_PER_S = 500.0
#: Real reports with gold labels (not shipped; a user's clone will not have them).
REAL_DEV_SET = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "iu_reports_dev.csv"
)


def synthetic_reports(
    subjects: int, seed: int, prevalence: str = "mimic"
) -> tuple[list[str], pd.DataFrame]:
    """Report texts and CheXpert labels of the studies that have a CheXpert row."""
    texts, labels = [], []
    for subject in cohort.plan_dataset(subjects, seed, 32, 32, prevalence):
        for study in subject.studies:
            if not study.has_chexpert:
                continue
            rng = np.random.default_rng([seed, cohort.STREAM_REPORT, subject.index, study.index])
            texts.append(reports.write_report(study, rng))
            labels.append(study.chexpert)
    return texts, pd.DataFrame(labels, columns=list(CHEXPERT_LABELS), dtype=float)


def _rate(texts: list[str], *, sections: bool) -> float:
    """Reports per CPU second of this process: reports/s on one core (the labeler is
    single-threaded), and unlike wall-clock time not slowed by other processes on the machine."""
    start = time.process_time()
    label_reports(texts, sections=sections)
    return len(texts) / (time.process_time() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2000, help="synthetic patients")
    parser.add_argument("--seed", type=int, default=0, help="synthetic seed")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per method")
    parser.add_argument(
        "--prevalence", default="mimic", choices=PREVALENCES, help="synthetic label rates"
    )
    parser.add_argument(
        "--gold",
        type=Path,
        default=REAL_DEV_SET,
        help="CSV of real reports ('report_text') with '<label> (gold)' columns to score "
        "(default: the real development set, when present)",
    )
    args = parser.parse_args(argv)
    if args.subjects < 1 or args.repeats < 1:
        raise ValueError(
            f"--subjects and --repeats must be >= 1, got {args.subjects}, {args.repeats}"
        )

    texts, reference = synthetic_reports(args.subjects, args.seed, args.prevalence)
    print(
        f"{len(texts)} synthetic reports from {args.subjects} subjects (seed {args.seed}, "
        f"{args.prevalence} prevalence)"
    )
    rates: dict[str, list[float]] = {"sections": [], "whole text": []}
    for repeat in range(args.repeats):
        order = ["sections", "whole text"][:: 1 if repeat % 2 == 0 else -1]
        for name in order:
            rates[name].append(_rate(texts, sections=name == "sections"))
    for name, values in rates.items():
        rate = statistics.median(values)
        print(
            f"{name:>10}: {rate:8.0f} reports/s on one core = {rate / TARGET_REPORTS_PER_S:5.1f}x "
            f"the {TARGET_REPORTS_PER_S:.0f} reports/s target"
        )
    ratios = [a / b for a, b in zip(rates["whole text"], rates["sections"], strict=True)]
    print(f"section selection costs: whole-text / sections speed = {statistics.median(ratios):.2f}")

    agreement = label_agreement(reference, label_reports(texts))
    print("agreement with the generator's CheXpert labels (share of reports, blank == blank):")
    print(agreement.map("{:.4f}".format).to_string())
    print(f"lowest: {agreement.min():.4f} ({agreement.idxmin()}); target >= 0.99 per label")

    if not args.gold.is_file():
        print(f"no real reports with gold labels at {args.gold}: real-text scores skipped")
        return 0
    real = read_csv_text(args.gold)["report_text"].tolist()
    rate = statistics.median(_rate(real, sections=True) for _ in range(args.repeats))
    table = score_csv(args.gold, text_column="report_text")
    print(
        f"\nreal reports: {args.gold.name}, {len(real)} reports, {rate:.0f} reports/s on one core "
        f"= {rate / TARGET_REPORTS_PER_S:.1f}x the target"
    )
    print(format_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
