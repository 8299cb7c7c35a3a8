"""The labeler agrees with the synthetic generator's CheXpert labels on its reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlib.labeler import label_agreement, label_reports
from cxrlib.mimic.layout import CHEXPERT_LABELS
from cxrlib.mimic.synth import generate
from cxrlib.mimic.tables import MimicCxr, read_table


@pytest.mark.parametrize("prevalence", ["mimic", "enriched"])
def test_agreement_with_synthetic_labels(tmp_path: Path, prevalence: str) -> None:
    root = tmp_path / "mimic"
    generate(root, 40, 11, min_size=32, max_size=40, progress=False, prevalence=prevalence)
    data = MimicCxr(root)
    chexpert = read_table(root, "chexpert")
    ids = zip(chexpert.subject_id, chexpert.study_id, strict=True)
    texts = [data.read_report(subject, study) for subject, study in ids]
    assert len(texts) > 60  # 40 subjects have 1-5 studies each
    agreement = label_agreement(chexpert, label_reports(texts))
    assert list(agreement.index) == list(CHEXPERT_LABELS)
    low = agreement[agreement < 0.98]
    assert low.empty, f"labels agreeing on < 98% of synthetic reports:\n{low}"
