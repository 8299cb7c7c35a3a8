"""Report evaluation: CheXpert-style labeler, NLG and clinical-efficacy metrics, baselines."""
