"""CNN abnormality classification (paper sections 4.2 and 4.4): zoo, training, tuning,
evaluation and Grad-CAM. Knows about images and labels, never about report text.

Modules, imported one by one (this package imports nothing, so that reading the paper's table
in :mod:`cxrlib.classify.paper_results` does not load torch): ``zoo`` (the CNN factory),
``train`` (one training run with early stopping), ``experiment`` (cohorts to trained models),
``tuning`` (architecture comparison and grid search), ``evaluate`` (metrics, thresholds,
bootstrap intervals), ``gradcam``, ``paper_results`` (the published numbers), ``stage`` (what
notebooks 02 and 03 call).
"""
